"""A batch's input: its file validated line by line, and its metadata, as the Batch API checks them."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .vectors import token_count
from .wire import ApiError


@dataclass
class LineRequest:
    """One line of a batch input file, as validation accepted it."""

    line: int
    custom_id: str
    body: dict


@dataclass
class ParsedInput:
    """A batch input file after validation: its requests, or why it fails."""

    requests: list[LineRequest]
    errors: list[dict]
    model: str | None
    tokens: int


def parse_input(content: bytes, endpoint: str, models: dict[str, int], max_lines: int, max_inputs: int) -> ParsedInput:
    """Validate a batch input file as the Batch API does while the batch is ``validating``."""
    errors: list[dict] = []

    def fail(code: str, message: str, line: int | None, param: str | None = None) -> None:
        errors.append({"code": code, "message": message, "param": param, "line": line})

    lines = content.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    requests: list[LineRequest] = []
    seen: set[str] = set()
    model: str | None = None
    inputs = 0
    tokens = 0
    if not lines:
        fail("empty_file", "The batch input file is empty.", None)
    if len(lines) > max_lines:
        fail("batch_too_large", f"The batch input file has {len(lines)} requests; the maximum is {max_lines}.", None)
    for number, raw in enumerate(lines, 1):
        try:
            line = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            fail("invalid_json_line", "This line is not parseable as valid JSON.", number)
            continue
        if not isinstance(line, dict):
            fail("invalid_json_line", "This line is not parseable as valid JSON.", number)
            continue
        missing = [key for key in ("custom_id", "method", "url", "body") if key not in line]
        if missing:
            fail("missing_required_parameter", f"Missing required parameter: '{missing[0]}'.", number, missing[0])
            continue
        custom_id, body = line["custom_id"], line["body"]
        if not isinstance(custom_id, str) or not custom_id:
            fail("invalid_custom_id", "Invalid 'custom_id': expected a non-empty string.", number, "custom_id")
            continue
        if line["method"] != "POST":
            fail("invalid_method", f"Invalid method '{line['method']}': only 'POST' is supported.", number, "method")
            continue
        if line["url"] != endpoint:
            fail(
                "invalid_url",
                f"The URL provided for this request ('{line['url']}') does not match the batch endpoint '{endpoint}'.",
                number,
                "url",
            )
            continue
        if custom_id in seen:
            fail(
                "duplicate_custom_id",
                f"The custom_id '{custom_id}' is duplicated: custom_id must be unique within a batch.",
                number,
                "custom_id",
            )
            continue
        seen.add(custom_id)
        if not isinstance(body, dict) or "model" not in body:
            fail("missing_required_parameter", "Missing required parameter: 'body.model'.", number, "body.model")
            continue
        line_model = body["model"]
        if not isinstance(line_model, str) or line_model not in models:
            fail(
                "model_not_found",
                f"The provided model '{line_model}' is not supported by the Batch API.",
                number,
                "body.model",
            )
            continue
        if model is None:
            model = line_model
        elif line_model != model:
            fail(
                "mismatched_model",
                f"The provided model '{line_model}' does not match the model '{model}' of the other requests in "
                "this batch. A batch must use one model.",
                number,
                "body.model",
            )
            continue
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts if isinstance(texts, list) else []
        inputs += len(texts)
        tokens += sum(token_count(text) for text in texts if isinstance(text, str))
        requests.append(LineRequest(number, custom_id, body))
    if inputs > max_inputs:
        fail(
            "batch_too_large", f"The batch input file has {inputs} embedding inputs; the maximum is {max_inputs}.", None
        )
    return ParsedInput(requests, errors, model, tokens)


def check_metadata(metadata: object) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise ApiError(400, "Invalid type for 'metadata': expected an object.", param="metadata", code="invalid_type")
    if len(metadata) > 16:
        raise ApiError(
            400,
            "Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got an "
            f"object with {len(metadata)} properties instead.",
            param="metadata",
            code="object_above_max_properties",
        )
    for key, value in metadata.items():
        if len(key) > 64:
            raise ApiError(
                400,
                f"Invalid 'metadata': key '{key[:20]}...' is too long. Expected at most 64 characters, but got "
                f"{len(key)} characters instead.",
                param="metadata",
                code="string_above_max_length",
            )
        if not isinstance(value, str):
            raise ApiError(
                400,
                f"Invalid type for 'metadata.{key}': expected a string, but got {type(value).__name__} instead.",
                param=f"metadata.{key}",
                code="invalid_type",
            )
        if len(value) > 512:
            raise ApiError(
                400,
                f"Invalid 'metadata.{key}': string too long. Expected a string with maximum length 512, but got a "
                f"string with length {len(value)} instead.",
                param=f"metadata.{key}",
                code="string_above_max_length",
            )
