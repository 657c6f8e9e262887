"""The OpenAI API's wire format: error bodies, JSON answers, request bodies and list pages.

An endpoint raises :class:`ApiError` for any refusal; the server turns it into the HTTP answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from typing import Any

import numpy as np

ORGANIZATION = "org-fake"
INVALID_JSON_BODY = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library "
    "correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble "
    "figuring out how to fix this, please contact us through our help center at help.openai.com.)"
)


def error_body(
    message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict:
    """The ``error`` object of an OpenAI error answer."""
    return {"message": message, "type": type_, "param": param, "code": code}


class ApiError(Exception):
    """An HTTP error the server answers with the OpenAI error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": error_body(message, type_, param, code)}
        self.headers = headers or {}


@dataclass
class Response:
    """An answer, and how the HTTP handler is to deliver it (the fault switches set the last three)."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    cut: bool = False  # send about half the body without Content-Length, then close
    drop: bool = False  # send nothing, close the connection
    delay: float = 0.0  # real seconds to wait before answering


def json_response(status: int, obj: object, headers: dict[str, str] | None = None) -> Response:
    return Response(status, dumps(obj).encode(), headers=headers or {})


def dumps(obj: object) -> str:
    # Float vectors stay numpy arrays until written: no list of Python floats per line in memory.
    return json.dumps(obj, default=np.ndarray.tolist)


def json_body(body: bytes) -> dict:
    """The JSON object of a request body, or the 400 OpenAI answers for anything else."""
    try:
        params = json.loads(body)
    except ValueError:
        raise ApiError(400, INVALID_JSON_BODY) from None
    if not isinstance(params, dict):
        raise ApiError(400, INVALID_JSON_BODY)
    return params


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``{field name: (filename, bytes)}`` of a multipart/form-data body, parsed by the email package."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(400, "Invalid Content-Type header: expected multipart/form-data.")
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ApiError(400, "Could not parse multipart form.")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            fields[name] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields


def page(items: list[dict], query: dict[str, str], *, default: int, maximum: int) -> dict:
    """One page of a list endpoint (``limit`` and ``after`` from the query), as OpenAI shapes it."""
    try:
        limit = int(query.get("limit", default))
    except ValueError:
        raise ApiError(400, f"Invalid 'limit': expected an integer, got '{query['limit']}'.", param="limit") from None
    if not 1 <= limit <= maximum:
        raise ApiError(
            400,
            f"Invalid 'limit': {limit}. Expected a value between 1 and {maximum}.",
            param="limit",
            code="invalid_value",
        )
    after = query.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    chosen = items[:limit]
    return {
        "object": "list",
        "data": chosen,
        "first_id": chosen[0]["id"] if chosen else None,
        "last_id": chosen[-1]["id"] if chosen else None,
        "has_more": len(items) > limit,
    }


class ApiObject:
    """A record the API shows as a JSON object: ``view()`` builds it, ``record["field"]`` reads one field."""

    def view(self) -> dict:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.view()[key]
