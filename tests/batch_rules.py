"""The Batch API's rules for an /v1/embeddings input file, written from OPENAI_BATCH.md.

Independent of embedsql's writer on purpose: a test checks shards against these rules, not against
the code that made them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tiktoken
from tiktoken.load import load_tiktoken_bpe

MAX_LINES = 50_000
MAX_INPUTS = 50_000
MAX_BYTES = 200_000_000
MAX_INPUTS_PER_REQUEST = 2_048
MAX_TOKENS_PER_INPUT = 8_192
MAX_TOKENS_PER_REQUEST = 300_000
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


def _cl100k() -> tiktoken.Encoding:
    path = Path(__file__).resolve().parents[1] / "embedsql" / "models" / "cl100k_base.tiktoken"
    return tiktoken.Encoding(
        name="cl100k_base_test",
        pat_str=(
            r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
            r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
        ),
        mergeable_ranks=load_tiktoken_bpe(str(path), expected_hash=CL100K_SHA256),
        special_tokens={"<|endoftext|>": 100257},
    )


ENCODING = _cl100k()


def violations(path: Path, *, max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES) -> list[str]:
    """Every rule the file at ``path`` breaks (empty when it is valid Batch API input)."""
    problems: list[str] = []
    raw = path.read_bytes()
    if len(raw) > max_bytes:
        problems.append(f"{len(raw)} bytes > {max_bytes}")
    if raw and not raw.endswith(b"\n"):
        problems.append("last line has no newline")
    lines = raw.decode("utf-8").split("\n")[:-1] if raw else []
    if len(lines) > max_lines:
        problems.append(f"{len(lines)} lines > {max_lines}")
    seen: set[str] = set()
    models: set[str] = set()
    inputs = 0
    for number, line in enumerate(lines, 1):
        try:
            request: Any = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"line {number}: invalid JSON ({e})")
            continue
        if set(request) != {"custom_id", "method", "url", "body"}:
            problems.append(f"line {number}: keys {sorted(request)}")
            continue
        custom_id = request["custom_id"]
        if not isinstance(custom_id, str) or not custom_id:
            problems.append(f"line {number}: custom_id {custom_id!r}")
        elif custom_id in seen:
            problems.append(f"line {number}: duplicate custom_id {custom_id}")
        seen.add(custom_id)
        if request["method"] != "POST" or request["url"] != "/v1/embeddings":
            problems.append(f"line {number}: {request['method']} {request['url']}")
        body = request["body"]
        models.add(body.get("model"))
        if set(body) - {"model", "input", "encoding_format", "dimensions", "user"}:
            problems.append(f"line {number}: unknown body keys {sorted(set(body))}")
        if body.get("encoding_format", "float") not in ("float", "base64"):
            problems.append(f"line {number}: encoding_format {body['encoding_format']!r}")
        if "dimensions" in body and (not isinstance(body["dimensions"], int) or body["dimensions"] < 1):
            problems.append(f"line {number}: dimensions {body['dimensions']!r}")
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or len(texts) > MAX_INPUTS_PER_REQUEST:
            problems.append(f"line {number}: input {body.get('input')!r:.60}")
            continue
        inputs += len(texts)
        counts = [len(ENCODING.encode_ordinary(t)) if isinstance(t, str) else -1 for t in texts]
        for text, count in zip(texts, counts, strict=True):
            if not isinstance(text, str) or not text:
                problems.append(f"line {number}: empty or non-string input")
            elif count > MAX_TOKENS_PER_INPUT:
                problems.append(f"line {number}: {count} tokens > {MAX_TOKENS_PER_INPUT}")
        if sum(counts) > MAX_TOKENS_PER_REQUEST:
            problems.append(f"line {number}: {sum(counts)} tokens in one request")
    if inputs > MAX_INPUTS:
        problems.append(f"{inputs} inputs > {MAX_INPUTS}")
    if len(models) > 1:
        problems.append(f"several models in one file: {sorted(map(str, models))}")
    return problems
