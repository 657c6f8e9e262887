"""What the OpenAI SDK raises becomes an embedsql error with its own message, and keeps its context.

Every exception class the ``openai`` package exports for a failed request is listed here with the
message it must give: a new class in a newer SDK fails the test until it has one. The errors are
the SDK's own classes built on real HTTP requests and answers, translated by the client embedsql
talks to OpenAI through; the end-to-end test drives a job into a refused key on the local server.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import httpx2
import openai
import pytest

import embedsql
from embedsql.config import load_settings
from embedsql.errors import RemoteError
from embedsql.runners.openai import OpenAIClient

from fake_openai import FakeOpenAI
from helpers import FakeTime, fetch, texts_table

BASE = "http://127.0.0.1:9/v1"
URL = f"{BASE}/files"
BODY = {"message": "The server says no.", "type": "invalid_request_error", "code": None}


def _answer(status: int, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(status, json={"error": BODY}, headers=headers, request=httpx2.Request("POST", URL))


def _status(cls: type[openai.APIStatusError], status: int) -> openai.APIStatusError:
    if cls is openai.OAuthError:
        return openai.OAuthError(response=_answer(status), body=BODY)
    return cls(f"Error code: {status}", response=_answer(status), body=BODY)


# Each exception class, an instance as the SDK raises it, and (message, retryable, status).
CASES: dict[type[openai.APIError], tuple[openai.APIError, str, bool, int | None]] = {
    openai.APITimeoutError: (
        openai.APITimeoutError(request=httpx2.Request("POST", URL)),
        f"the OpenAI API at {BASE} did not answer in time to upload the shard (APITimeoutError). Check the network "
        "and OPENAI_BASE_URL, or allow more time with EMBEDSQL_OPENAI_TIMEOUT.",
        True,
        None,
    ),
    openai.APIConnectionError: (
        openai.APIConnectionError(request=httpx2.Request("POST", URL)),
        f"could not reach the OpenAI API at {BASE} to upload the shard (APIConnectionError). Check the network "
        "and OPENAI_BASE_URL.",
        True,
        None,
    ),
    openai.APIResponseValidationError: (
        openai.APIResponseValidationError(response=_answer(200), body="<html>", message="Data is not a file object."),
        f"the API at {BASE} answered in a form the OpenAI API does not use while trying to upload the shard (200): "
        "Data is not a file object. Check that OPENAI_BASE_URL points at an OpenAI-compatible API.",
        False,
        200,
    ),
    openai.APIError: (
        openai.APIError("Something unexpected.", httpx2.Request("POST", URL), body=None),
        "the OpenAI API failed to upload the shard: Something unexpected.",
        False,
        None,
    ),
    openai.AuthenticationError: (
        _status(openai.AuthenticationError, 401),
        f"OpenAI refused the API key (401 while trying to upload the shard at {BASE}). Check OPENAI_API_KEY in the "
        "environment or .env: it may be mistyped, revoked, or for another project (OPENAI_PROJECT_ID).",
        False,
        401,
    ),
    openai.OAuthError: (
        _status(openai.OAuthError, 401),
        f"OpenAI refused the API key (401 while trying to upload the shard at {BASE}). Check OPENAI_API_KEY in the "
        "environment or .env: it may be mistyped, revoked, or for another project (OPENAI_PROJECT_ID).",
        False,
        401,
    ),
    openai.PermissionDeniedError: (
        _status(openai.PermissionDeniedError, 403),
        f"OpenAI denied access (403 while trying to upload the shard at {BASE}): The server says no. Check that "
        "the key's project may use the Batch API and this model.",
        False,
        403,
    ),
    openai.RateLimitError: (
        _status(openai.RateLimitError, 429),
        f"OpenAI answered 429 (rate limit) while trying to upload the shard at {BASE}: The server says no. "
        "Wait a while before going on.",
        True,
        429,
    ),
    openai.NotFoundError: (
        openai.NotFoundError(
            "Error code: 404",
            response=httpx2.Response(404, json={"error": BODY}, request=httpx2.Request("POST", f"{BASE}/embeddings")),
            body=BODY,
        ),
        f"{BASE} has no such endpoint or model (404 while trying to upload the shard): The server says no. Check "
        "OPENAI_BASE_URL and --model / EMBEDSQL_MODEL.",
        False,
        404,
    ),
    openai.BadRequestError: (
        _status(openai.BadRequestError, 400),
        f"OpenAI refused the request (400 while trying to upload the shard at {BASE}): The server says no.",
        False,
        400,
    ),
    openai.UnprocessableEntityError: (
        _status(openai.UnprocessableEntityError, 422),
        f"OpenAI refused the request (422 while trying to upload the shard at {BASE}): The server says no.",
        False,
        422,
    ),
    openai.ConflictError: (
        _status(openai.ConflictError, 409),
        f"OpenAI answered 409 (conflict) while trying to upload the shard at {BASE}: The server says no.",
        True,
        409,
    ),
    openai.InternalServerError: (
        _status(openai.InternalServerError, 503),
        f"OpenAI had a server error (503 while trying to upload the shard at {BASE}): The server says no.",
        True,
        503,
    ),
    openai.APIStatusError: (
        _status(openai.APIStatusError, 418),
        f"OpenAI answered 418 while trying to upload the shard at {BASE}: The server says no.",
        False,
        418,
    ),
}


def test_every_exception_class_of_the_sdk_has_a_case() -> None:
    exported = {cls for _, cls in inspect.getmembers(openai, inspect.isclass) if issubclass(cls, openai.APIError)}
    assert exported == set(CASES)


@pytest.mark.parametrize("cls", list(CASES), ids=lambda cls: cls.__name__)
def test_each_sdk_exception_maps_to_its_own_message(cls: type[openai.APIError]) -> None:
    error, message, retryable, status = CASES[cls]
    assert type(error) is cls
    client = OpenAIClient(load_settings({"openai_api_key": "sk-test-0123456789", "openai_base_url": BASE}, environ={}))
    try:
        translated = client._translate("upload the shard", error)
    finally:
        client.close()

    assert (str(translated), translated.retryable, translated.status) == (message, retryable, status)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", "/files", 404), ("POST", "/files", 405), ("GET", "/files", 404), ("POST", "/batches", 405)],
)
def test_a_server_without_a_batch_api_is_named_with_the_way_round_it(method: str, path: str, status: int) -> None:
    answer = httpx2.Response(status, json={"detail": "Not Found"}, request=httpx2.Request(method, f"{BASE}{path}"))
    error = openai.APIStatusError(f"Error code: {status}", response=answer, body={"detail": "Not Found"})
    client = OpenAIClient(load_settings({"openai_api_key": "sk-test-0123456789", "openai_base_url": BASE}, environ={}))
    try:
        translated = client._translate("upload the shard", error)
    finally:
        client.close()

    assert (str(translated), translated.retryable, translated.request) == (
        f"{BASE} has no Batch API ({status} on {method} /v1{path}): it serves no Files or Batches endpoint. "
        "Use --runner sync to embed through its /v1/embeddings.",
        False,
        f"{method} /v1{path}",
    )


def test_a_429_is_said_to_have_been_kept_up_only_when_the_request_was_tried_again() -> None:
    request = httpx2.Request("POST", URL, headers={"x-stainless-retry-count": "2"})
    answer = httpx2.Response(429, json={"error": BODY}, request=request)
    error = openai.RateLimitError("Error code: 429", response=answer, body=BODY)
    client = OpenAIClient(load_settings({"openai_api_key": "sk-test-0123456789", "openai_base_url": BASE}, environ={}))
    try:
        translated = client._translate("upload the shard", error)
    finally:
        client.close()

    assert str(translated).startswith(
        f"OpenAI kept answering 429 (rate limit) while trying to upload the shard at {BASE}: "
    )


def test_messages_of_different_classes_differ() -> None:
    messages = {case[1] for cls, case in CASES.items() if cls is not openai.OAuthError}
    assert len(messages) == len(CASES) - 1


def test_retry_after_reaches_the_caller() -> None:
    error = openai.RateLimitError("Error code: 429", response=_answer(429, {"retry-after": "1m3s"}), body=BODY)
    client = OpenAIClient(load_settings({"openai_api_key": "sk-test-0123456789", "openai_base_url": BASE}, environ={}))
    try:
        translated = client._translate("embed the texts", error)
    finally:
        client.close()
    assert (translated.status, translated.retry_after) == (429, 63.0)


def test_a_job_stopped_by_the_service_keeps_the_errors_context(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    """The error that stops a job is the service's own (type, status), with how to continue the job."""
    db = texts_table(tmp_path / "d.duckdb", {1: "alpha", 2: "beta"})
    result = embedsql.run("select id, body from docs", db=db, wait=False, **fake_time)
    openai_server.fail_requests("GET", f"/v1/batches/{_batch_id(db, result.job_id)}", status=401, times=1)

    with pytest.raises(RemoteError) as caught:
        embedsql.resume(result.job_id, db=db, **fake_time)

    job = result.job_id
    assert (caught.value.status, caught.value.retryable, caught.value.job_id) == (401, False, job)
    assert str(caught.value) == (
        f"OpenAI refused the API key (401 while trying to check the batch at {openai_server.base_url}). Check "
        "OPENAI_API_KEY in the environment or .env: it may be mistyped, revoked, or for another project "
        f"(OPENAI_PROJECT_ID). Job {job} keeps its place: continue it with `embedsql resume {job}`."
    )
    assert fetch(db, f"SELECT status FROM embedsql.jobs WHERE job_id = '{job}'") == [("prepared",)]


def _batch_id(db: Path, job_id: str) -> str:
    ((batch_id,),) = fetch(db, f"SELECT batch_id FROM embedsql.shards WHERE job_id = '{job_id}'")
    return str(batch_id)
