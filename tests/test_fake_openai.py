"""The fake OpenAI server, driven only through the real openai SDK over loopback."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_openai import API_KEY, EPOCH, FakeOpenAI, expected_vector, mask_key, token_count

SMALL = "text-embedding-3-small"
INVALID_INPUT = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def client(server: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's backoff before a retry without ``retry-after`` (0.5 s at first) cut to a millisecond."""
    monkeypatch.setattr("openai._base_client.INITIAL_RETRY_DELAY", 0.001)


def line(custom_id: str, text: object, *, model: str = SMALL, **body: object) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": model, "input": text, **body},
    }


def jsonl(lines: list[dict]) -> bytes:
    return "".join(json.dumps(x) + "\n" for x in lines).encode()


def submit(client: openai.OpenAI, content: bytes | list[dict], **metadata: str) -> openai.types.Batch:
    raw = content if isinstance(content, bytes) else jsonl(content)
    file = client.files.create(file=("input.jsonl", raw), purpose="batch")
    return client.batches.create(
        input_file_id=file.id, endpoint="/v1/embeddings", completion_window="24h", metadata=metadata or None
    )


def results(client: openai.OpenAI, file_id: str | None) -> list[dict]:
    assert file_id is not None
    return [json.loads(x) for x in client.files.content(file_id).read().decode().splitlines()]


def counts(batch: openai.types.Batch) -> dict[str, int]:
    assert batch.request_counts is not None
    return batch.request_counts.model_dump()


def vector_of(data: dict) -> np.ndarray:
    embedding = data["embedding"]
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4")
    return np.asarray(embedding, dtype=np.float32)


# ------------------------------------------------------------------------------------------------------------- files


def test_file_upload_retrieve_download_delete_round_trip(client: openai.OpenAI, tmp_path: Path) -> None:
    content = jsonl([line("a", "héllo\r\nwörld")]) + b"\r\n"
    path = tmp_path / "shard.jsonl"
    path.write_bytes(content)

    file = client.files.create(file=path, purpose="batch")

    assert file.id.startswith("file-")
    assert (file.object, file.bytes, file.filename, file.purpose, file.status, file.created_at) == (
        "file",
        len(content),
        "shard.jsonl",
        "batch",
        "processed",
        int(EPOCH),
    )
    assert client.files.retrieve(file.id) == file
    assert client.files.content(file.id).read() == content
    assert [f.id for f in client.files.list()] == [file.id]
    deleted = client.files.delete(file.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (file.id, "file", True)
    with pytest.raises(openai.NotFoundError) as e:
        client.files.retrieve(file.id)
    assert e.value.body == {
        "message": f"No such File object: {file.id}",
        "type": "invalid_request_error",
        "param": "id",
        "code": None,
    }


def test_a_file_is_uploaded_then_processed_and_only_then_usable(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.file_processing_seconds = 5
    file = client.files.create(file=("input.jsonl", jsonl([line("a", "x")])), purpose="batch")
    assert file.status == "uploaded"
    with pytest.raises(openai.BadRequestError, match="is still being processed"):
        client.batches.create(input_file_id=file.id, endpoint="/v1/embeddings", completion_window="24h")

    server.advance(5)

    assert client.files.retrieve(file.id).status == "processed"
    assert client.batches.create(input_file_id=file.id, endpoint="/v1/embeddings", completion_window="24h")


def test_files_list_by_purpose_gives_each_upload_with_its_filename(client: openai.OpenAI) -> None:
    first = client.files.create(file=("shard-0001.jsonl", jsonl([line("a", "x")])), purpose="batch")
    batch = client.batches.retrieve(submit(client, [line("b", "y")]).id)
    [second] = [f for f in client.files.list() if f.id == batch.input_file_id]

    listed = client.files.list(purpose="batch")

    assert [(f.id, f.filename, f.purpose, f.bytes) for f in listed] == [
        (second.id, "input.jsonl", "batch", second.bytes),
        (first.id, "shard-0001.jsonl", "batch", first.bytes),
    ]
    assert listed.data == [second, first]
    assert [f.id for f in client.files.list(purpose="batch", limit=1)] == [second.id, first.id]
    assert [f.id for f in client.files.list(purpose="batch", order="asc")] == [first.id, second.id]
    assert [(f.id, f.filename) for f in client.files.list(purpose="batch_output")] == [
        (batch.output_file_id, f"batch_{batch.id}_output.jsonl")
    ]
    client.files.delete(first.id)
    assert [f.filename for f in client.files.list(purpose="batch")] == ["input.jsonl"]


def test_uploads_are_refused_when_too_large_or_not_for_batch(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.max_file_bytes = 10
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("input.jsonl", b"x" * 11), purpose="batch")
    assert e.value.body == {
        "message": "File is too large.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.BadRequestError, match="only accepts 'batch'"):
        client.files.create(file=("input.jsonl", b"x"), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError, match=r"Must be \.jsonl"):
        client.files.create(file=("input.csv", b"x"), purpose="batch")
    assert client.files.create(file=("input.jsonl", b"x" * 10), purpose="batch").bytes == 10


# ----------------------------------------------------------------------------------------------------------- batches


def test_a_batch_goes_validating_in_progress_finalizing_completed_on_the_fake_clock(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.validating_seconds, server.in_progress_seconds, server.finalizing_seconds = 10, 100, 50
    texts = ["alpha", "beta gamma", "delta"]
    batch = submit(client, [line(f"k{i}", t) for i, t in enumerate(texts)], job="j1")
    t0 = int(EPOCH)

    assert batch.id.startswith("batch_")
    assert (batch.status, batch.created_at, batch.expires_at, batch.in_progress_at) == (
        "validating",
        t0,
        t0 + 86_400,
        None,
    )
    assert (batch.endpoint, batch.completion_window, batch.metadata, batch.errors) == (
        "/v1/embeddings",
        "24h",
        {"job": "j1"},
        None,
    )
    assert server.batches_created == 1
    tokens = sum(token_count(t) for t in texts)
    assert server.batch_tokens(batch.id) == tokens
    server.advance(9.5)
    assert client.batches.retrieve(batch.id).status == "validating"

    server.advance(0.5)
    batch = client.batches.retrieve(batch.id)
    assert (batch.status, batch.in_progress_at, counts(batch)) == (
        "in_progress",
        t0 + 10,
        {"total": 3, "completed": 0, "failed": 0},
    )
    assert server.inputs_by_text == {}

    server.advance(100)
    batch = client.batches.retrieve(batch.id)
    assert (batch.status, batch.finalizing_at, counts(batch), batch.output_file_id) == (
        "finalizing",
        t0 + 110,
        {"total": 3, "completed": 3, "failed": 0},
        None,
    )
    assert server.inputs_by_text == dict.fromkeys(texts, 1)

    server.advance(49)
    assert client.batches.retrieve(batch.id).status == "finalizing"
    server.advance(1)
    batch = client.batches.retrieve(batch.id)
    assert (batch.status, batch.completed_at, batch.error_file_id) == ("completed", t0 + 160, None)
    assert counts(batch) == {"total": 3, "completed": 3, "failed": 0}
    assert batch.usage is not None
    assert (batch.usage.input_tokens, batch.usage.total_tokens) == (tokens, tokens)
    output = client.files.retrieve(batch.output_file_id or "")
    assert (output.purpose, output.filename) == ("batch_output", f"batch_{batch.id}_output.jsonl")
    assert sorted(r["custom_id"] for r in results(client, batch.output_file_id)) == ["k0", "k1", "k2"]
    assert server.inputs_by_text == dict.fromkeys(texts, 1)


def test_output_is_shuffled_and_every_vector_is_the_expected_one(server: FakeOpenAI, client: openai.OpenAI) -> None:
    lines = [line(f"f{i}", f"text {i}") for i in range(10)]
    lines += [line(f"b{i}", f"text {i}", encoding_format="base64") for i in range(10)]
    lines += [line("array", ["one", "two", "three"], dimensions=256, encoding_format="base64")]
    batch = client.batches.retrieve(submit(client, lines).id)

    assert batch.status == "completed"
    output = results(client, batch.output_file_id)
    assert [r["custom_id"] for r in output] != [x["custom_id"] for x in lines]
    by_id = {r["custom_id"]: r for r in output}
    assert sorted(by_id) == sorted(x["custom_id"] for x in lines)
    for i in range(10):
        for custom_id, kind in ((f"f{i}", list), (f"b{i}", str)):
            result = by_id[custom_id]
            assert result["id"].startswith("batch_req_")
            assert result["error"] is None
            response = result["response"]
            assert response["status_code"] == 200
            body = response["body"]
            assert (body["object"], body["model"]) == ("list", SMALL)
            tokens = token_count(f"text {i}")
            assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
            [data] = body["data"]
            assert (data["object"], data["index"], type(data["embedding"])) == ("embedding", 0, kind)
            np.testing.assert_array_equal(vector_of(data), expected_vector(SMALL, f"text {i}", 1536))
    data = by_id["array"]["response"]["body"]["data"]
    assert [d["index"] for d in data] == [0, 1, 2]
    for d, text in zip(data, ["one", "two", "three"], strict=True):
        np.testing.assert_array_equal(vector_of(d), expected_vector(SMALL, text, 256))
    assert server.inputs_by_text["text 3"] == 2
    assert server.inputs_by_text["two"] == 1


def test_expected_vector_is_a_deterministic_unit_float32_vector() -> None:
    vector = expected_vector(SMALL, "x", 1536)
    assert (vector.dtype, vector.shape) == (np.float32, (1536,))
    assert abs(float(np.linalg.norm(vector)) - 1) < 1e-6
    np.testing.assert_array_equal(vector, expected_vector(SMALL, "x", 1536))
    assert not np.array_equal(vector[:256], expected_vector(SMALL, "x", 256))
    assert not np.array_equal(vector, expected_vector("text-embedding-ada-002", "x", 1536))


def test_bad_inputs_and_injected_faults_land_in_the_error_file_unbilled(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    long_text = "hello " * 8_200
    tokens = token_count(long_text)
    assert tokens > 8_192
    server.fail_lines(["flaky"], status=500)
    batch = submit(
        client,
        [
            line("ok", "fine"),
            line("empty", ""),
            line("empty-in-array", ["fine", ""]),
            line("long", long_text),
            line("flaky", "flaky"),
            line("too-many-dimensions", "fine", dimensions=1537),
        ],
    )
    batch = client.batches.retrieve(batch.id)

    assert counts(batch) == {"total": 6, "completed": 1, "failed": 5}
    assert [r["custom_id"] for r in results(client, batch.output_file_id)] == ["ok"]
    errors = {r["custom_id"]: r for r in results(client, batch.error_file_id)}
    assert sorted(errors) == ["empty", "empty-in-array", "flaky", "long", "too-many-dimensions"]
    for custom_id in ("empty", "empty-in-array"):
        assert errors[custom_id]["error"] is None
        assert errors[custom_id]["response"]["status_code"] == 400
        assert errors[custom_id]["response"]["body"] == {
            "error": {"message": INVALID_INPUT, "type": "invalid_request_error", "param": None, "code": None}
        }
    assert errors["long"]["response"]["body"]["error"] == {
        "message": (
            f"This model's maximum context length is 8192 tokens, however you requested {tokens} tokens "
            f"({tokens} in your prompt; 0 for the completion). Please reduce your prompt; or completion length."
        ),
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert errors["flaky"]["response"]["status_code"] == 500
    assert errors["flaky"]["response"]["body"]["error"] == {
        "message": "The server had an error while processing your request.",
        "type": "server_error",
        "param": None,
        "code": "server_error",
    }
    assert errors["too-many-dimensions"]["response"]["status_code"] == 400
    assert server.inputs_by_text == {"fine": 1}

    # The fault was used up: the same text succeeds in the next batch.
    again = client.batches.retrieve(submit(client, [line("flaky", "flaky")]).id)
    assert (counts(again), again.error_file_id) == ({"total": 1, "completed": 1, "failed": 0}, None)


def test_dimensions_on_ada_002_fail_the_line(client: openai.OpenAI) -> None:
    batch = client.batches.retrieve(submit(client, [line("a", "x", model="text-embedding-ada-002", dimensions=8)]).id)

    assert (batch.status, batch.output_file_id) == ("completed", None)
    [error] = results(client, batch.error_file_id)
    assert error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["message"] == "This model does not support specifying dimensions."


@pytest.mark.parametrize(
    ("content", "code", "line_number"),
    [
        (jsonl([line("a", "x")]) + b"{not json\n", "invalid_json_line", 2),
        (
            jsonl([{"custom_id": "a", "method": "POST", "body": {"model": SMALL, "input": "x"}}]),
            "missing_required_parameter",
            1,
        ),
        (jsonl([line("a", "x"), {**line("b", "y"), "url": "/v1/chat/completions"}]), "invalid_url", 2),
        (jsonl([line("a", "x", model="no-such-model")]), "model_not_found", 1),
        (jsonl([line("a", "x"), line("b", "y", model="text-embedding-3-large")]), "mismatched_model", 2),
        (jsonl([line("a", "x"), line("b", "y"), line("a", "z")]), "duplicate_custom_id", 3),
        (jsonl([line(str(i), "x") for i in range(4)]), "batch_too_large", None),
        (jsonl([line("a", ["x", "y", "z"]), line("b", ["x", "y"])]), "batch_too_large", None),
        (b"", "empty_file", None),
    ],
)
def test_invalid_input_files_fail_validation_with_the_api_codes(
    server: FakeOpenAI, client: openai.OpenAI, content: bytes, code: str, line_number: int | None
) -> None:
    server.validating_seconds = 60
    server.max_lines, server.max_inputs = 3, 4
    batch = submit(client, content)
    assert client.batches.retrieve(batch.id).status == "validating"

    server.advance(60)

    batch = client.batches.retrieve(batch.id)
    assert (batch.status, batch.failed_at, batch.output_file_id, batch.error_file_id) == (
        "failed",
        int(EPOCH) + 60,
        None,
        None,
    )
    assert counts(batch) == {"total": 0, "completed": 0, "failed": 0}
    assert batch.errors is not None
    assert batch.errors.object == "list"
    assert [(e.code, e.line) for e in batch.errors.data or []] == [(code, line_number)]
    assert server.inputs_by_text == {}


def test_create_refuses_bad_parameters_at_once(client: openai.OpenAI) -> None:
    file = client.files.create(file=("input.jsonl", jsonl([line("a", "x")])), purpose="batch")

    def create(**overrides: object) -> None:
        params: dict = {"input_file_id": file.id, "endpoint": "/v1/embeddings", "completion_window": "24h"}
        client.batches.create(**{**params, **overrides})

    with pytest.raises(openai.BadRequestError, match=r"Invalid value: '48h'\. Supported values are: '24h'\."):
        create(completion_window="48h")
    with pytest.raises(openai.BadRequestError, match="only '/v1/embeddings'"):
        create(endpoint="/v1/chat/completions")
    with pytest.raises(openai.BadRequestError, match="at most 16 properties"):
        create(metadata={f"k{i}": "v" for i in range(17)})
    with pytest.raises(openai.BadRequestError, match="maximum length 512"):
        create(metadata={"k": "v" * 513})
    with pytest.raises(openai.BadRequestError, match="No such File object: file-nope"):
        create(input_file_id="file-nope")


def test_enqueued_token_limit_fails_the_batch_that_overflows_it(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.in_progress_seconds = 100
    content = [line(str(i), f"some words number {i}") for i in range(5)]
    first = submit(client, content)
    server.enqueued_token_limit = int(server.batch_tokens(first.id) * 1.5)
    second = submit(client, content)

    assert client.batches.retrieve(first.id).status == "in_progress"
    second = client.batches.retrieve(second.id)
    assert second.status == "failed"
    assert second.errors is not None
    assert [e.model_dump() for e in second.errors.data or []] == [
        {
            "code": "token_limit_exceeded",
            "line": None,
            "message": (
                f"Enqueued token limit reached for {SMALL} in organization org-fake. "
                f"Limit: {server.enqueued_token_limit:,} enqueued tokens. "
                "Please try again once some in_progress batches have been completed."
            ),
            "param": None,
        }
    ]

    server.advance(100)
    assert client.batches.retrieve(first.id).status == "completed"
    third = submit(client, content)
    assert client.batches.retrieve(third.id).status == "in_progress"
    assert server.batches_created == 3


def test_expiry_keeps_the_lines_done_and_reports_the_rest(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.completion_window_seconds = 1_000
    server.validating_seconds, server.in_progress_seconds = 200, 1_600
    texts = [f"text {i}" for i in range(10)]
    batch = submit(client, [line(f"k{i}", t) for i, t in enumerate(texts)])
    assert batch.expires_at == int(EPOCH) + 1_000

    server.advance(999)
    assert client.batches.retrieve(batch.id).status == "in_progress"
    server.advance(1)

    batch = client.batches.retrieve(batch.id)
    assert (batch.status, batch.expired_at, batch.completed_at) == ("expired", int(EPOCH) + 1_000, None)
    assert counts(batch) == {"total": 10, "completed": 5, "failed": 5}
    assert sorted(r["custom_id"] for r in results(client, batch.output_file_id)) == [f"k{i}" for i in range(5)]
    errors = results(client, batch.error_file_id)
    assert sorted(r["custom_id"] for r in errors) == [f"k{i}" for i in range(5, 10)]
    for error in errors:
        assert error["response"] is None
        assert error["error"] == {
            "code": "batch_expired",
            "message": "This request could not be executed before the completion window expired.",
        }
    assert server.inputs_by_text == dict.fromkeys(texts[:5], 1)


def test_cancel_keeps_the_lines_done_and_refuses_a_second_cancel(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.in_progress_seconds, server.cancelling_seconds = 100, 30
    batch = submit(client, [line(f"k{i}", f"text {i}") for i in range(10)])
    server.advance(40)

    batch = client.batches.cancel(batch.id)

    assert (batch.status, batch.cancelling_at) == ("cancelling", int(EPOCH) + 40)
    assert client.batches.cancel(batch.id).status == "cancelling"
    server.advance(30)
    batch = client.batches.retrieve(batch.id)
    assert (batch.status, batch.cancelled_at) == ("cancelled", int(EPOCH) + 70)
    assert counts(batch) == {"total": 10, "completed": 4, "failed": 6}
    assert sorted(r["custom_id"] for r in results(client, batch.output_file_id)) == ["k0", "k1", "k2", "k3"]
    errors = results(client, batch.error_file_id)
    assert {r["error"]["code"] for r in errors} == {"batch_cancelled"}
    assert len(errors) == 6
    with pytest.raises(openai.ConflictError) as e:
        client.batches.cancel(batch.id)
    assert e.value.message == "Error code: 409 - Cannot cancel a batch with status 'cancelled'."


def test_cancel_while_validating_runs_no_line(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.validating_seconds = 60
    batch = submit(client, [line(f"k{i}", f"text {i}") for i in range(3)])
    assert client.batches.cancel(batch.id).status == "cancelling"

    batch = client.batches.retrieve(batch.id)

    assert (batch.status, batch.in_progress_at, batch.output_file_id) == ("cancelled", None, None)
    assert counts(batch) == {"total": 3, "completed": 0, "failed": 3}
    assert sorted(
        (r["custom_id"], r["response"], r["error"]["code"]) for r in results(client, batch.error_file_id)
    ) == [(f"k{i}", None, "batch_cancelled") for i in range(3)]
    assert server.inputs_by_text == {}


def test_omit_output_file_loses_the_successes_of_a_completed_batch(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.omit_output_file()
    batch = client.batches.retrieve(submit(client, [line("a", "x"), line("b", "")]).id)

    assert (batch.status, batch.output_file_id) == ("completed", None)
    assert counts(batch) == {"total": 2, "completed": 1, "failed": 1}
    assert [r["custom_id"] for r in results(client, batch.error_file_id)] == ["b"]
    assert server.inputs_by_text == {"x": 1}
    assert client.batches.retrieve(submit(client, [line("a", "x")]).id).output_file_id is not None


def test_corrupt_output_breaks_one_line_of_the_next_completed_outputs(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.corrupt_output(line=3, times=2)
    short = client.batches.retrieve(submit(client, [line("a", "one"), line("b", "two")]).id)
    texts = [f"text {i}" for i in range(5)]
    batch = client.batches.retrieve(submit(client, [line(f"k{i}", t, dimensions=8) for i, t in enumerate(texts)]).id)

    # Too short to have a line 3: left whole, and the fault is not used up by it.
    assert sorted(r["custom_id"] for r in results(client, short.output_file_id)) == ["a", "b"]
    assert (batch.status, counts(batch)) == ("completed", {"total": 5, "completed": 5, "failed": 0})
    assert batch.usage is not None
    assert batch.usage.input_tokens == sum(token_count(t) for t in texts)
    raw = client.files.content(batch.output_file_id or "").read()
    assert raw.endswith(b"\n")
    lines = raw.decode().split("\n")[:-1]
    assert len(lines) == 5
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[2])
    whole = [json.loads(x) for i, x in enumerate(lines) if i != 2]
    [lost] = {f"k{i}" for i in range(5)} - {r["custom_id"] for r in whole}
    assert lines[2].startswith('{"id": "batch_req_')
    assert f'"custom_id": "{lost}"' in lines[2]
    assert not lines[2].endswith("}")
    assert server.inputs_by_text == {"one": 1, "two": 1} | dict.fromkeys(texts, 1)

    second = client.batches.retrieve(submit(client, [line(f"k{i}", f"t{i}") for i in range(3)]).id)
    assert counts(second) == {"total": 3, "completed": 3, "failed": 0}
    with pytest.raises(json.JSONDecodeError):
        results(client, second.output_file_id)
    third = client.batches.retrieve(submit(client, [line(f"k{i}", f"t{i}") for i in range(3)]).id)
    assert len(results(client, third.output_file_id)) == 3
    with pytest.raises(ValueError, match="start at 1"):
        server.corrupt_output(line=0)


def test_batches_list_pages_newest_first(client: openai.OpenAI) -> None:
    ids = [submit(client, [line("a", "x")], n=str(i)).id for i in range(5)]
    newest_first = ids[::-1]

    page = client.batches.list(limit=2)

    assert ([b.id for b in page.data], page.has_more) == (newest_first[:2], True)
    page = client.batches.list(limit=2, after=page.data[-1].id)
    assert ([b.id for b in page.data], page.has_more) == (newest_first[2:4], True)
    page = client.batches.list(limit=2, after=page.data[-1].id)
    assert ([b.id for b in page.data], page.has_more) == (newest_first[4:], False)
    assert [b.id for b in client.batches.list(limit=2)] == newest_first
    assert [b.metadata for b in client.batches.list()] == [{"n": str(i)} for i in range(4, -1, -1)]
    with pytest.raises(openai.BadRequestError, match="between 1 and 100"):
        client.batches.list(limit=101)


def test_unknown_batch_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="No batch found with id 'batch_nope'"):
        client.batches.retrieve("batch_nope")


# ------------------------------------------------------------------------------------------------ auth and faults


def test_a_wrong_key_gets_the_real_401_body_with_the_key_partly_echoed(server: FakeOpenAI) -> None:
    key = "sk-wrong-key-0123456789-ABCDWXYZ"
    with (
        openai.OpenAI(api_key=key, base_url=server.base_url, max_retries=0) as sdk,
        pytest.raises(openai.AuthenticationError) as e,
    ):
        sdk.batches.list()

    masked = "sk-wrong********************WXYZ"
    assert mask_key(key) == masked
    message = (
        f"Incorrect API key provided: {masked}. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )
    assert e.value.body == {
        "message": message,
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert e.value.message == f"Error code: 401 - {message}"
    assert server.requests == [("GET", "/v1/batches", 401)]


def test_an_injected_429_with_retry_after_is_retried_by_the_sdk(server: FakeOpenAI) -> None:
    server.fail_requests("POST", r"^/v1/files$", 429, retry_after=0.01)
    with openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=1) as sdk:
        file = sdk.files.create(file=("input.jsonl", b"{}\n"), purpose="batch")

    assert file.bytes == 3
    assert server.requests == [("POST", "/v1/files", 429), ("POST", "/v1/files", 200)]


def test_injected_errors_carry_the_openai_body_and_headers(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.fail_requests("GET", r"/v1/batches", 429, times=2, retry_after=7)
    server.fail_requests("POST", r"/cancel$", 500)

    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as rate:
            client.batches.list()
        assert rate.value.response.headers["retry-after"] == "7"
        assert rate.value.code == "rate_limit_exceeded"
    assert client.batches.list().data == []
    with pytest.raises(openai.InternalServerError) as internal:
        client.batches.cancel("batch_whatever")
    assert internal.value.body == {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": "server_error",
    }


def test_a_dropped_connection_is_a_connection_error_with_no_effect(
    server: FakeOpenAI, client: openai.OpenAI, fast_retries: None
) -> None:
    file = client.files.create(file=("input.jsonl", jsonl([line("a", "x")])), purpose="batch")
    params: dict = {"input_file_id": file.id, "endpoint": "/v1/embeddings", "completion_window": "24h"}
    server.drop_connections("POST", r"^/v1/batches$")

    with pytest.raises(openai.APIConnectionError) as e:
        client.batches.create(**params)

    assert type(e.value) is openai.APIConnectionError  # not the APITimeoutError subclass
    assert (server.batches_created, server.batches) == (0, {})
    server.drop_connections("POST", r"^/v1/batches$", times=2)
    with openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=2) as sdk:
        batch = sdk.batches.create(**params)
    assert list(server.batches) == [batch.id]
    assert client.batches.list().data == [client.batches.retrieve(batch.id)]
    assert server.requests[1:] == [
        ("POST", "/v1/batches", 0),
        ("POST", "/v1/batches", 0),
        ("POST", "/v1/batches", 0),
        ("POST", "/v1/batches", 200),
        ("GET", "/v1/batches", 200),
        ("GET", f"/v1/batches/{batch.id}", 200),
    ]
    assert len(server.request_headers) == len(server.requests)
    server.stop()  # joins every handler thread, the dropped ones included
    assert server.unexpected_errors == []


def test_a_delayed_answer_times_the_client_out_but_the_create_took_effect(server: FakeOpenAI) -> None:
    # An answer far later than the test could ever take: a bound that no machine's speed can miss.
    delay = 300.0
    server.delay_responses("POST", r"^/v1/batches$", delay)
    with openai.OpenAI(api_key=API_KEY, base_url=server.base_url, timeout=0.2, max_retries=0) as sdk:
        file = sdk.files.create(file=("input.jsonl", jsonl([line("a", "x")])), purpose="batch")
        started = time.perf_counter()
        with pytest.raises(openai.APITimeoutError):
            sdk.batches.create(input_file_id=file.id, endpoint="/v1/embeddings", completion_window="24h")
        assert time.perf_counter() - started >= 0.2

        [batch] = sdk.batches.list()

    assert (batch.input_file_id, server.batches_created) == (file.id, 1)
    # stop() does not wait out the handler still sleeping on the timed-out request.
    server.stop()
    assert time.perf_counter() - started < delay
    with pytest.raises(ValueError, match="must not be negative"):
        server.delay_responses("GET", ".", -1)


def test_a_delayed_answer_is_retried_after_the_timeout_and_the_late_answer_is_dropped_quietly(
    server: FakeOpenAI, fast_retries: None
) -> None:
    server.delay_responses("POST", r"^/v1/batches$", 0.5)
    started = time.perf_counter()
    with openai.OpenAI(api_key=API_KEY, base_url=server.base_url, timeout=0.2, max_retries=1) as sdk:
        file = sdk.files.create(file=("input.jsonl", jsonl([line("a", "x")])), purpose="batch")
        batch = sdk.batches.create(input_file_id=file.id, endpoint="/v1/embeddings", completion_window="24h")
        assert sdk.batches.retrieve(batch.id).status == "completed"

    # The timed-out create made a batch too: a blind retry of a create doubles it. The client has
    # the retry's batch, not the late answer's: it did not wait for that one (however fast it ran).
    assert server.batches_created == 2
    assert batch.id == list(server.batches)[1]
    assert [status for method, path, status in server.requests if path == "/v1/batches"] == [200, 200]
    time.sleep(max(0.0, started + 0.6 - time.perf_counter()))  # the late answer meets a closed connection
    assert server.unexpected_errors == []


def test_a_cut_download_gives_a_clean_but_short_file(server: FakeOpenAI, client: openai.OpenAI, tmp_path: Path) -> None:
    batch = client.batches.retrieve(submit(client, [line(f"k{i}", f"text {i}") for i in range(20)]).id)
    assert batch.output_file_id is not None
    whole = client.files.content(batch.output_file_id).read()
    server.cut_downloads()

    with client.files.with_streaming_response.content(batch.output_file_id) as response:
        response.stream_to_file(tmp_path / "out.jsonl")

    short = (tmp_path / "out.jsonl").read_bytes()
    assert short == whole[: len(whole) // 2]
    assert short.count(b"\n") < 20
    assert client.files.content(batch.output_file_id).read() == whole


# ---------------------------------------------------------------------------------------------- sync embeddings


def test_sync_embeddings_with_array_input_and_dimensions(server: FakeOpenAI, client: openai.OpenAI) -> None:
    response = client.embeddings.create(model=SMALL, input=["a b", "c", "a b"], dimensions=64)

    assert response.model == SMALL
    assert (response.usage.prompt_tokens, response.usage.total_tokens) == (5, 5)
    assert [d.index for d in response.data] == [0, 1, 2]
    for data, text in zip(response.data, ["a b", "c", "a b"], strict=True):
        np.testing.assert_array_equal(np.asarray(data.embedding, dtype=np.float32), expected_vector(SMALL, text, 64))
    floats = client.embeddings.create(model=SMALL, input="c", encoding_format="float")
    np.testing.assert_array_equal(
        np.asarray(floats.data[0].embedding, dtype=np.float32), expected_vector(SMALL, "c", 1536)
    )
    assert server.inputs_by_text == {"a b": 2, "c": 2}


def test_sync_embeddings_of_a_registered_model_and_errors(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.models["nomic-embed-text"] = 768
    response = client.embeddings.create(model="nomic-embed-text", input="x")
    np.testing.assert_array_equal(
        np.asarray(response.data[0].embedding, dtype=np.float32), expected_vector("nomic-embed-text", "x", 768)
    )
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=SMALL, input=["x", ""])
    assert e.value.body == {"message": INVALID_INPUT, "type": "invalid_request_error", "param": None, "code": None}
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="no-such-model", input="x")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="does not support specifying dimensions"):
        client.embeddings.create(model="text-embedding-ada-002", input="x", dimensions=8)
    assert server.inputs_by_text == {"x": 1}


TEXTS = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)


def test_any_unicode_text_and_custom_id_round_trip_with_its_exact_vector() -> None:
    with FakeOpenAI() as server, openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0) as client:

        @settings(max_examples=25)
        @given(st.dictionaries(TEXTS, TEXTS, min_size=1, max_size=5))
        def round_trip(texts_by_id: dict[str, str]) -> None:
            batch = client.batches.retrieve(
                submit(client, [line(k, t, dimensions=16) for k, t in texts_by_id.items()]).id
            )
            output = results(client, batch.output_file_id)
            assert sorted(r["custom_id"] for r in output) == sorted(texts_by_id)
            for result in output:
                [data] = result["response"]["body"]["data"]
                np.testing.assert_array_equal(
                    vector_of(data), expected_vector(SMALL, texts_by_id[result["custom_id"]], 16)
                )
            sync = client.embeddings.create(model=SMALL, input=list(texts_by_id.values()), dimensions=16)
            for data, text in zip(sync.data, texts_by_id.values(), strict=True):
                np.testing.assert_array_equal(
                    np.asarray(data.embedding, dtype=np.float32), expected_vector(SMALL, text, 16)
                )

        round_trip()
        assert server.unexpected_errors == []


def test_a_lone_surrogate_in_a_batch_line_is_an_invalid_input(client: openai.OpenAI) -> None:
    # The SDK cannot even send one (it encodes its JSON body as UTF-8), but a JSONL file can escape it.
    batch = client.batches.retrieve(submit(client, [line("ok", "fine"), line("bad", ["fine", "\ud800"])]).id)

    assert counts(batch) == {"total": 2, "completed": 1, "failed": 1}
    [error] = results(client, batch.error_file_id)
    assert (error["custom_id"], error["response"]["status_code"]) == ("bad", 400)
    assert error["response"]["body"]["error"]["message"] == INVALID_INPUT


# ------------------------------------------------------------------------------------------------------- rate limits

RATE_HEADERS = [
    f"x-ratelimit-{what}-{kind}" for what in ("limit", "remaining", "reset") for kind in ("requests", "tokens")
]


def rate_headers(response: object) -> dict[str, str]:
    headers = response.headers  # type: ignore[attr-defined]
    return {name: headers[name] for name in RATE_HEADERS if name in headers}


def test_embeddings_are_unlimited_and_without_rate_headers_by_default(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    raw = client.embeddings.with_raw_response.create(model=SMALL, input=["a b", "c"])

    assert rate_headers(raw) == {}
    assert server.embedding_requests == [(EPOCH, 2, 3)]
    assert server.rate_limited == 0


def test_rate_headers_count_down_and_refill_on_the_fake_clock(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.tokens_per_minute, server.requests_per_minute = 600, 60  # refills 10 tokens and 1 request a second
    text = "one two three four five six seven eight nine ten"
    assert token_count(text) == 10

    first = rate_headers(client.embeddings.with_raw_response.create(model=SMALL, input=text))
    second = rate_headers(client.embeddings.with_raw_response.create(model=SMALL, input=[text, text]))
    server.advance(0.5)
    third = rate_headers(client.embeddings.with_raw_response.create(model=SMALL, input="x"))

    assert first == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-limit-tokens": "600",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-remaining-tokens": "590",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-reset-tokens": "1s",
    }
    assert second["x-ratelimit-remaining-requests"] == "58"
    assert second["x-ratelimit-remaining-tokens"] == "570"
    assert (second["x-ratelimit-reset-requests"], second["x-ratelimit-reset-tokens"]) == ("2s", "3s")
    # Half a second refilled 5 tokens and half a request; "x" took 1 token and 1 request.
    assert third["x-ratelimit-remaining-requests"] == "57"
    assert third["x-ratelimit-remaining-tokens"] == "574"
    assert (third["x-ratelimit-reset-requests"], third["x-ratelimit-reset-tokens"]) == ("2.5s", "2.6s")
    assert server.embedding_requests == [(EPOCH, 1, 10), (EPOCH, 2, 20), (EPOCH + 0.5, 1, 1)]
    # Each model has its own buckets.
    other = rate_headers(client.embeddings.with_raw_response.create(model="text-embedding-3-large", input="x"))
    assert (other["x-ratelimit-remaining-requests"], other["x-ratelimit-remaining-tokens"]) == ("59", "599")
    server.advance(60)
    full = rate_headers(client.embeddings.with_raw_response.create(model=SMALL, input="x"))
    assert (full["x-ratelimit-remaining-tokens"], full["x-ratelimit-reset-tokens"]) == ("599", "100ms")


def test_over_the_tpm_a_429_says_when_to_retry_and_then_the_request_succeeds(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.tokens_per_minute = 1_000
    filler = " ".join(["word"] * 990)
    assert token_count(filler) == 990
    client.embeddings.create(model=SMALL, input=filler)
    text = " ".join(["word"] * 250)  # 250 tokens, 10 left: 240 short, 14.4 s at 1000/60 a second
    assert token_count(text) == 250

    with pytest.raises(openai.RateLimitError) as e:
        client.embeddings.create(model=SMALL, input=[text, "x"])

    response = e.value.response
    assert response.status_code == 429
    assert response.headers["retry-after"] == "14.46"
    assert rate_headers(response) == {
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "10",
        "x-ratelimit-reset-tokens": "59.4s",
    }
    assert e.value.code == "rate_limit_exceeded"
    assert e.value.body == {
        "message": (
            f"Rate limit reached for {SMALL} in organization org-fake on tokens per min (TPM): Limit 1000, Used 990, "
            "Requested 251. Please try again in 14.46s. Visit https://platform.openai.com/account/rate-limits to "
            "learn more."
        ),
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert (server.rate_limited, server.inputs_by_text) == (1, {filler: 1})
    assert server.embedding_requests == [(EPOCH, 1, 990)]

    server.advance(14.459)
    with pytest.raises(openai.RateLimitError) as early:
        client.embeddings.create(model=SMALL, input=[text, "x"])
    assert early.value.response.headers["retry-after"] == "0.001"
    server.advance(0.001)
    raw = client.embeddings.with_raw_response.create(model=SMALL, input=[text, "x"])

    assert len(raw.parse().data) == 2
    assert rate_headers(raw)["x-ratelimit-remaining-tokens"] == "0"
    assert rate_headers(raw)["x-ratelimit-reset-tokens"] == "1m0s"
    assert server.rate_limited == 2
    assert server.inputs_by_text == {filler: 1, text: 1, "x": 1}
    assert server.embedding_requests == [(EPOCH, 1, 990), (EPOCH + 14.46, 2, 251)]


def test_over_the_rpm_a_429_of_type_requests(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.requests_per_minute = 3  # one request back every 20 s
    for i in range(3):
        client.embeddings.create(model=SMALL, input=f"t{i}")
    server.advance(5)

    with pytest.raises(openai.RateLimitError) as e:
        client.embeddings.create(model=SMALL, input="late")

    assert e.value.response.headers["retry-after"] == "15"
    assert rate_headers(e.value.response) == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "55s",
    }
    assert e.value.body["type"] == "requests"  # type: ignore[index]
    assert "on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 15s." in e.value.message
    assert "late" not in server.inputs_by_text
    server.advance(15)
    client.embeddings.create(model=SMALL, input="late")
    assert [when - EPOCH for when, _, _ in server.embedding_requests] == [0, 0, 0, 20]
    assert server.rate_limited == 1


def test_a_request_above_the_whole_tpm_is_too_large_and_never_served(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.tokens_per_minute = 100
    text = " ".join(["word"] * 101)

    with pytest.raises(openai.RateLimitError) as e:
        client.embeddings.create(model=SMALL, input=text)

    assert "retry-after" not in e.value.response.headers
    assert rate_headers(e.value.response)["x-ratelimit-remaining-tokens"] == "100"
    assert e.value.body == {
        "message": (
            f"Request too large for {SMALL} in organization org-fake on tokens per min (TPM): Limit 100, Requested "
            "101. The input or output tokens must be reduced in order to run successfully. Visit "
            "https://platform.openai.com/account/rate-limits to learn more."
        ),
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    server.advance(3_600)
    with pytest.raises(openai.RateLimitError, match="Request too large"):
        client.embeddings.create(model=SMALL, input=text)
    assert (server.rate_limited, server.inputs_by_text, server.embedding_requests) == (2, {}, [])
    client.embeddings.create(model=SMALL, input=text.split(" ", 1)[1])
    assert server.embedding_requests == [(EPOCH + 3_600, 1, 100)]


def test_refused_requests_cost_nothing_and_invalid_ones_are_400s_with_rate_headers(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.tokens_per_minute, server.requests_per_minute = 10, 2
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model=SMALL, input=" ".join(["word"] * 11))
    with pytest.raises(openai.BadRequestError) as bad:
        client.embeddings.create(model="text-embedding-ada-002", input="x", dimensions=8)
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="no-such-model", input="x")

    assert rate_headers(bad.value.response)["x-ratelimit-remaining-tokens"] == "10"
    assert rate_headers(missing.value.response) == {}
    raw = client.embeddings.with_raw_response.create(model=SMALL, input=" ".join(["word"] * 10))
    assert rate_headers(raw)["x-ratelimit-remaining-requests"] == "1"
    assert rate_headers(raw)["x-ratelimit-remaining-tokens"] == "0"
    assert (server.rate_limited, len(server.embedding_requests)) == (1, 1)
    # The batch API is not subject to these limits.
    batch = client.batches.retrieve(submit(client, [line(f"k{i}", "word " * 20) for i in range(3)]).id)
    assert counts(batch) == {"total": 3, "completed": 3, "failed": 0}


def test_the_sdk_retry_of_a_429_waits_real_time_which_does_not_refill_the_fake_clock() -> None:
    with FakeOpenAI(tokens_per_minute=6_000, requests_per_minute=600) as fake:
        assert (fake.tokens_per_minute, fake.requests_per_minute) == (6_000, 600)
        with openai.OpenAI(api_key=API_KEY, base_url=fake.base_url, max_retries=1) as sdk:
            sdk.embeddings.create(model=SMALL, input=" ".join(["word"] * 5_995))
            started = time.perf_counter()
            # 5 tokens left, 10 wanted: 50 ms at 100 a second. The SDK sleeps that in real time, but only
            # advance() refills the buckets, so its retry is refused too: a client must sleep on the fake clock.
            with pytest.raises(openai.RateLimitError, match="Please try again in 50ms"):
                sdk.embeddings.create(model=SMALL, input=" ".join(["word"] * 10))
            assert time.perf_counter() - started >= 0.05
        assert fake.rate_limited == 2
        assert [status for _, _, status in fake.requests] == [200, 429, 429]


# ------------------------------------------------------------------------------------------ other servers' faults


def test_rewrite_output_lines_writes_what_the_test_makes_of_a_completed_batch(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    def twice_and_short(lines: list[dict]) -> list[object]:
        first = dict(lines[0], response=dict(lines[0]["response"]))
        first["response"]["body"] = {**first["response"]["body"], "data": [{"index": 0, "embedding": [0.5]}]}
        return [first, lines[1], lines[1], "not json"]

    server.shuffle_output = False
    server.rewrite_output_lines(twice_and_short)
    batch = client.batches.retrieve(submit(client, [line("a", "x"), line("b", "y")]).id)
    raw = client.files.content(batch.output_file_id or "").read().decode().splitlines()

    assert counts(batch) == {"total": 2, "completed": 2, "failed": 0}
    assert [json.loads(x)["custom_id"] for x in raw[:3]] == ["a", "b", "b"]
    assert json.loads(raw[0])["response"]["body"]["data"] == [{"index": 0, "embedding": [0.5]}]
    assert raw[3] == "not json"
    again = client.batches.retrieve(submit(client, [line("a", "x")]).id)
    assert len(results(client, again.output_file_id)) == 1


def test_rewrite_answers_sends_what_the_test_returns_after_the_request_took_effect(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    from fake_openai.wire import Response

    server.rewrite_answers("POST", "/embeddings$", lambda status, body: {**body, "data": body["data"][:1]})
    page = Response(200, b"<html>oops</html>", "text/html")
    server.rewrite_answers("POST", "/embeddings$", lambda status, body: page)
    short = client.embeddings.create(model=SMALL, input=["a", "b"])
    html = client.embeddings.with_raw_response.create(model=SMALL, input=["c"])

    assert [d.index for d in short.data] == [0]
    assert html.http_response.text == "<html>oops</html>"
    assert server.inputs_by_text == {"a": 1, "b": 1, "c": 1}
    assert len(client.embeddings.create(model=SMALL, input=["a", "b"]).data) == 2


def test_an_outage_fails_every_matching_request_until_fake_time_has_passed(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.outage("*", "", 120, status=503)
    with pytest.raises(openai.InternalServerError) as refused:
        client.models.retrieve(SMALL)
    server.advance(119)
    with pytest.raises(openai.APIStatusError):
        client.batches.list()
    server.advance(1)

    assert refused.value.status_code == 503
    assert client.models.retrieve(SMALL).id == SMALL
    assert [status for _, _, status in server.requests] == [503, 503, 200]


def test_an_outage_with_status_0_closes_connections_unanswered(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.outage("GET", "/batches", 60, status=0)
    with pytest.raises(openai.APIConnectionError):
        client.batches.list()

    assert client.models.retrieve(SMALL).id == SMALL
    server.advance(60)
    assert client.batches.list().data == []


@pytest.mark.parametrize(("status", "detail"), [(404, "Not Found"), (405, "Method Not Allowed")])
def test_a_removed_endpoint_answers_as_a_fastapi_server_does(
    server: FakeOpenAI, client: openai.OpenAI, status: int, detail: str
) -> None:
    server.remove_endpoint("GET", "^/v1/files$", status=status)
    for _ in range(3):
        with pytest.raises(openai.APIStatusError) as refused:
            client.files.list()
        assert (refused.value.status_code, refused.value.body) == (status, {"detail": detail})

    assert client.files.create(file=("a.jsonl", jsonl([line("a", "x")])), purpose="batch").filename == "a.jsonl"


def test_a_server_without_a_key_takes_any_key() -> None:
    with FakeOpenAI(api_key=None) as server:
        for key in ("anything", "sk-other"):
            with openai.OpenAI(api_key=key, base_url=server.base_url, max_retries=0) as sdk:
                assert len(sdk.embeddings.create(model=SMALL, input="x").data) == 1


def test_input_token_limits_refuse_a_longer_input_with_vllms_words(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.models["all-MiniLM-L6-v2"] = 384
    server.input_token_limits["all-MiniLM-L6-v2"] = 5
    long = "word " * 6
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="all-MiniLM-L6-v2", input=["short", long])

    assert f"maximum context length is 5 tokens. However, you requested {token_count(long)} tokens" in str(
        refused.value
    )
    assert server.inputs_by_text == {}
    assert len(client.embeddings.create(model="all-MiniLM-L6-v2", input=["short"]).data[0].embedding) == 384
