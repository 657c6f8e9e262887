"""The sync runner's token counts: requests packed to the exact limit, and each output line's usage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import embedsql
from embedsql.config import load_settings
from embedsql.models import MODELS
from embedsql.runners.openai import MAX_TOKENS_PER_REQUEST, OpenAIClient, pack
from embedsql.runners.sync import SyncRunner

from fake_openai import FakeOpenAI, expected_vector
from fake_openai.vectors import token_count
from helpers import texts_table, vectors_by_key

MODEL = "text-embedding-3-small"
# "ꙮ" is three bytes and three tokens: a text of it is as long in tokens as its bytes say, the case
# where the bytes bound the tokens tightly. "é" is two bytes and one token, ASCII words about four
# bytes a token: their bytes overstate their tokens.
TIGHT, LOOSE = "ꙮ", "é"


def greedy(texts: list[str], *, max_inputs: int, max_tokens: int) -> list[tuple[int, int]]:
    """Requests as long as each text's exact token count allows, counted by the server's tokenizer."""
    bounds, start, tokens = [], 0, 0
    for i, text in enumerate(texts):
        count = token_count(text)
        if i > start and (i - start >= max_inputs or tokens + count > max_tokens):
            bounds.append((start, i))
            start, tokens = i, 0
        tokens += count
    return [*bounds, (start, len(texts))] if texts else []


# Pieces that tokenise at one to four bytes a token, a special token's text (plain text here), and any text.
pieces = st.sampled_from(["a", " ", "bc", "é", TIGHT, "🧿", "12", "\n", "<|endoftext|>"])
texts_strategy = st.lists(
    st.one_of(st.lists(pieces, min_size=1, max_size=12).map("".join), st.text(min_size=1)), max_size=30
)


@settings(max_examples=200)
@given(texts=texts_strategy, max_inputs=st.integers(1, 6), max_tokens=st.integers(1, 40))
def test_packs_are_as_long_as_the_exact_token_counts_allow(texts: list[str], max_inputs: int, max_tokens: int) -> None:
    model = MODELS[MODEL]

    assert pack(model, texts, max_inputs=max_inputs, max_tokens=max_tokens) == greedy(
        texts, max_inputs=max_inputs, max_tokens=max_tokens
    )


def test_a_request_filled_to_the_token_limit_exactly() -> None:
    # 37 texts of 8,100 tokens and one of 300: 300,000 tokens, exactly the limit, in 300,000 bytes;
    # one more token is over it. Then texts of twice as many bytes as tokens: the tokens decide.
    full = [TIGHT * 2700] * 37 + [TIGHT * 100]
    texts = [*full, "x", *[LOOSE * 4000] * 80]
    assert sum(token_count(t) for t in full) == MAX_TOKENS_PER_REQUEST == sum(len(t.encode()) for t in full)

    bounds = pack(MODELS[MODEL], texts, max_inputs=2048)

    assert bounds == [(0, 38), (38, 113), (113, 119)]  # 300,000; 1 + 74 * 4,000; the other 6
    assert bounds == greedy(texts, max_inputs=2048, max_tokens=MAX_TOKENS_PER_REQUEST)


def test_texts_near_the_limit_in_bytes_are_sent_in_requests_the_server_takes(
    tmp_path: Path, openai_server: FakeOpenAI
) -> None:
    db = tmp_path / "d.duckdb"
    # Distinct texts of about 8 kB: ~8,000 tokens (as many as bytes), ~1,600 and ~4,000; and short ones.
    kinds = [lambda i: TIGHT * (2700 - i), lambda i: f"{i:04} " + "word " * 1599, lambda i: LOOSE * (4000 - i)]
    texts = {i: kinds[i % 4](i) if i % 4 < 3 else TIGHT * i for i in range(100)}
    texts_table(db, texts)

    # One thread: its requests hold as many inputs as the tokens allow (several threads share a shard's).
    result = embedsql.run("select id, body from docs", db=db, runner="sync", concurrency=1)

    assert (result.target_rows, result.failed_texts) == (100, 0)
    served = [tokens for _, _, tokens in openai_server.embedding_requests]
    assert max(served) <= MAX_TOKENS_PER_REQUEST < max(served) + 8100  # full, and never over
    assert sum(served) == sum(token_count(t) for t in texts.values())
    vectors = vectors_by_key(db, "docs_embeddings")
    for key, text in texts.items():
        np.testing.assert_array_equal(vectors[key], expected_vector(MODEL, text, 1536))


def write_shard(path: Path, texts: list[str]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i, text in enumerate(texts):
            body = {"model": MODEL, "input": text, "encoding_format": "base64"}
            f.write(json.dumps({"custom_id": f"t{i}", "method": "POST", "url": "/v1/embeddings", "body": body}) + "\n")
    return path


def run_shard(server: FakeOpenAI, tmp_path: Path, texts: list[str], *, max_inputs: int) -> list[dict[str, Any]]:
    """The output lines of one shard of ``texts`` sent by the sync runner, one request at a time."""
    settings = load_settings(
        {"openai_base_url": server.base_url, "openai_api_key": server.api_key}, environ={}, cwd=tmp_path
    )
    runner = SyncRunner(OpenAIClient(settings), MODELS[MODEL], dimensions=None, concurrency=1, max_inputs=max_inputs)
    output, errors = tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    try:
        runner.run_shard(write_shard(tmp_path / "shard.jsonl", texts), output, errors, on_lines=lambda n: None)
    finally:
        runner.close()
    assert errors.read_text() == ""
    return [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]


def usage(line: dict[str, Any]) -> int:
    body = line["response"]["body"]
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"]
    return int(body["usage"]["prompt_tokens"])


def bill(body: dict[str, Any], factor: int) -> dict[str, Any]:
    tokens = factor * body["usage"]["prompt_tokens"] + 1
    return {**body, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def test_the_lines_of_a_request_add_up_to_the_tokens_the_server_billed_for_it(
    tmp_path: Path, openai_server: FakeOpenAI
) -> None:
    texts = [f"text {i} " + ["abc", LOOSE * 7, TIGHT * 5, "the quick brown fox " * 3][i % 4] for i in range(40)]
    # A server that counts in a tokenizer of its own: not what embedsql would count.
    openai_server.rewrite_answers("POST", "/v1/embeddings", lambda status, body: bill(body, 2), times=6)

    lines = run_shard(openai_server, tmp_path, texts, max_inputs=7)

    assert [line["custom_id"] for line in lines] == [f"t{i}" for i in range(40)]  # one request at a time
    billed = [2 * tokens + 1 for _, _, tokens in openai_server.embedding_requests]
    assert len(billed) == 6
    assert [sum(usage(line) for line in lines[i : i + 7]) for i in range(0, 40, 7)] == billed
    assert all(usage(line) > 0 for line in lines)


def test_without_usage_in_the_answer_each_line_counts_its_own_text(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    texts = [f"text {i} " + ["abc", LOOSE * 7, TIGHT * 5][i % 3] for i in range(10)]
    openai_server.rewrite_answers(
        "POST", "/v1/embeddings", lambda status, body: {k: v for k, v in body.items() if k != "usage"}, times=2
    )

    lines = run_shard(openai_server, tmp_path, texts, max_inputs=5)

    assert [usage(line) for line in lines] == [token_count(t) for t in texts]


@pytest.mark.parametrize(("concurrency", "sizes"), [(1, [100]), (3, [34, 34, 32]), (4, [25] * 4), (8, [13] * 7 + [9])])
def test_every_thread_gets_a_share_of_a_shard(
    tmp_path: Path, openai_server: FakeOpenAI, concurrency: int, sizes: list[int]
) -> None:
    db = tmp_path / "d.duckdb"
    texts = {i: f"text number {i}" for i in range(100)}
    texts_table(db, texts)

    result = embedsql.run("select id, body from docs", db=db, runner="sync", concurrency=concurrency)

    assert (result.target_rows, result.failed_texts) == (100, 0)
    assert sorted((n for _, n, _ in openai_server.embedding_requests), reverse=True) == sizes
    vectors = vectors_by_key(db, "docs_embeddings")
    for key, text in texts.items():
        np.testing.assert_array_equal(vectors[key], expected_vector(MODEL, text, 1536))
