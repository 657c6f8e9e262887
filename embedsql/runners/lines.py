"""Batch API output lines, for the runners that compute them in this process (local, sync).

Written in exactly the format the Batch API's output and error files use, so that one parser
(``embedsql.results``) reads what every runner produces.
"""

from __future__ import annotations

import base64
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


def output_line(request: dict[str, Any], vector: np.ndarray, tokens: int, model: str) -> dict[str, Any]:
    """A success line for ``request``: its vector as base64 or floats, as the request asked."""
    little_endian = vector.astype("<f4", copy=False)
    embedding: Any = (
        base64.b64encode(little_endian.tobytes()).decode("ascii")
        if request["body"].get("encoding_format") == "base64"
        else little_endian.tolist()
    )
    return {
        "id": f"batch_req_{uuid.uuid4().hex}",
        "custom_id": request["custom_id"],
        "response": {
            "status_code": 200,
            "request_id": uuid.uuid4().hex,
            "body": {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": embedding}],
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        },
        "error": None,
    }


def error_line(request: Any, line_no: int, status: int | None, code: str | None, message: str) -> dict[str, Any]:
    """An error-file line for ``request`` with the HTTP ``status`` the API answered (None: no answer)."""
    custom_id = request.get("custom_id") if isinstance(request, dict) else None
    return {
        "id": f"batch_req_{uuid.uuid4().hex}",
        "custom_id": custom_id if custom_id is not None else f"line-{line_no}",
        "response": {
            "status_code": status,
            "request_id": uuid.uuid4().hex,
            "body": {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}},
        },
        "error": None,
    }


def write_line(f: IO[str], line: dict[str, Any]) -> None:
    """One JSON line."""
    f.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")))
    f.write("\n")
