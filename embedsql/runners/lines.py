"""Batch API output lines, for the runners that compute them in this process (local, sync).

Written in exactly the format the Batch API's output and error files use, so that one parser
(``embedsql.results``) reads what every runner produces.
"""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["error_line", "output_line", "read_requests", "write_line"]


def read_requests(shard: Path, size: int) -> Iterator[list[tuple[int, Any]]]:
    """The shard's request lines as ``(line number, parsed JSON)``, ``size`` at a time.

    A line that is not JSON comes back as ``{"custom_id": None, "_invalid": True}``.
    """
    chunk: list[tuple[int, Any]] = []
    with open(shard, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            try:
                request = json.loads(line)
            except json.JSONDecodeError:
                request = {"custom_id": None, "_invalid": True}
            chunk.append((number, request))
            if len(chunk) == size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def output_line(
    request: dict[str, Any], vector: np.ndarray, tokens: int, model: str, *, encoded: str | None = None
) -> str:
    """A success line for ``request`` (JSON text with its newline): its vector as base64 or floats, as the
    request asked; ``encoded``, the vector's base64 text as the server sent it, is written as it is.

    Filled in from a template rather than built as a dict and dumped: the vector, the bulk of the line,
    needs no escaping, and a runner writes tens of thousands of these a second.
    """
    if request["body"].get("encoding_format") == "base64":
        if encoded is None:
            encoded = base64.b64encode(vector.astype("<f4", copy=False).tobytes()).decode("ascii")
        embedding = f'"{encoded}"'
    else:
        embedding = _json(vector.astype("<f4", copy=False).tolist())
    return (
        f'{{"id":"batch_req_{_line_id()}","custom_id":{_json(request["custom_id"])},"response":{{"status_code":200,'
        f'"request_id":"{_line_id()}","body":{{"object":"list","data":[{{"object":"embedding","index":0,'
        f'"embedding":{embedding}}}],"model":{_json(model)},"usage":{{"prompt_tokens":{tokens},'
        f'"total_tokens":{tokens}}}}}}},"error":null}}\n'
    )


# One encoder for every line: json.dumps with options builds a new one per call, which costs more
# than encoding a custom_id.
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


# Ids of the lines this process writes: unique by a random prefix and a count, without a uuid (and a
# system call) per line. next() of an itertools.count is atomic, so threads may share it.
_ID_PREFIX = uuid.uuid4().hex[:20]
_ID_COUNT = itertools.count()


def _line_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNT):012x}"


def error_line(request: Any, line_no: int, status: int | None, code: str | None, message: str) -> dict[str, Any]:
    """An error-file line for ``request`` with the HTTP ``status`` the API answered (None: no answer)."""
    custom_id = request.get("custom_id") if isinstance(request, dict) else None
    return {
        "id": f"batch_req_{_line_id()}",
        "custom_id": custom_id if custom_id is not None else f"line-{line_no}",
        "response": {
            "status_code": status,
            "request_id": _line_id(),
            "body": {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}},
        },
        "error": None,
    }


def write_line(f: IO[str], line: dict[str, Any] | str) -> None:
    """One JSON line: a dict, or the text of one (with its newline) as ``output_line`` makes it."""
    if isinstance(line, str):
        f.write(line)
        return
    f.write(_json(line))
    f.write("\n")
