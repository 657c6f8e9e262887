"""Tests of ``embedsql.results.read_results`` on hand-written Batch API output and error files.

The lines follow the format in OPENAI_BATCH.md: successes in the output file with the vector as
base64 (little-endian float32) or as a JSON float list, HTTP failures in the error file with
``response.body.error``, and non-HTTP failures (``batch_expired``) with ``response: null``.
"""

from __future__ import annotations

import base64
import json
import random
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_array_equal

from embedsql.errors import LoadError
from embedsql.results import Failure, Results, iter_results, read_results

EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."
DAMAGED_SUFFIX = (
    " The file is damaged or not in the Batch API output format; `embedsql resume JOB` downloads or recomputes it."
)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


def b64(vector: Sequence[float] | np.ndarray) -> str:
    """The vector as the API sends it with ``encoding_format: base64``."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def float_list(vector: Sequence[float] | np.ndarray) -> list[float]:
    """The vector as a JSON float list; json writes each float with ``repr`` (shortest round-trip)."""
    return [float(x) for x in np.asarray(vector, dtype=np.float32)]


def success(custom_id: str, embedding: Any, *, data: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    if data is None:
        data = [{"object": "embedding", "index": 0, "embedding": embedding}]
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": {
            "status_code": 200,
            "request_id": f"req_{custom_id}",
            "body": {
                "object": "list",
                "data": data,
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 5, "total_tokens": 5},
            },
        },
        "error": None,
    }


def http_error(
    custom_id: str, status: int, code: str | None, message: str, kind: str = "invalid_request_error"
) -> dict[str, Any]:
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": {
            "status_code": status,
            "request_id": f"req_{custom_id}",
            "body": {"error": {"message": message, "type": kind, "param": None, "code": code}},
        },
        "error": None,
    }


def expired(custom_id: str) -> dict[str, Any]:
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": "batch_expired", "message": EXPIRED_MESSAGE},
    }


def write_jsonl(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def vectors_by_id(results: Results) -> dict[str, np.ndarray]:
    ids = results.custom_ids.to_pylist()
    assert len(ids) == len(set(ids)) == len(results.vectors)
    return dict(zip(ids, results.vectors, strict=True))


def sorted_failures(results: Results) -> list[Failure]:
    # The order of failures is not part of the contract; their content is.
    return sorted(results.failures, key=lambda f: f.custom_id)


def assert_no_results(results: Results, dimensions: int) -> None:
    assert results.custom_ids.to_pylist() == []
    assert results.vectors.shape == (0, dimensions)
    assert results.vectors.dtype == np.float32


VECTORS = {
    "doc-1": np.array([0.1, -0.2, 0.3, 0.9], dtype=np.float32),
    "doc-2": np.array([1e-3, 2.5, -7.25, 0.0], dtype=np.float32),
    "doc-3": np.array([-0.5, 0.5, -0.5, 0.5], dtype=np.float32),
    "doc-4": np.array([0.333333, 0.1234567, -0.987654, 1.0], dtype=np.float32),
    "doc-5": np.array([3.0, 4.0, 0.0, 0.0], dtype=np.float32),
    "doc-6": np.array([0.7071068, 0.0, -0.7071068, 1e-8], dtype=np.float32),
}


def test_successes_and_failures_from_output_and_error_files(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    successes = [
        success(custom_id, b64(vector) if i % 2 else float_list(vector))
        for i, (custom_id, vector) in enumerate(VECTORS.items())
    ]
    random.Random(7).shuffle(successes)
    output = write_jsonl(tmp_path / "batch_out.jsonl", successes)
    errors = write_jsonl(
        tmp_path / "batch_err.jsonl",
        [
            expired("doc-9"),
            http_error("doc-7", 400, "context_length_exceeded", "This model's maximum context length is 8192 tokens."),
            http_error("doc-8", 500, "server_error", "The server had an error.", kind="server_error"),
        ],
    )

    results = read_results(con, [output, errors], dimensions=4)

    assert results.vectors.dtype == np.float32
    got = vectors_by_id(results)
    assert sorted(got) == sorted(VECTORS)
    for custom_id, vector in VECTORS.items():
        assert_array_equal(got[custom_id], vector, strict=True)
    assert sorted_failures(results) == [
        Failure("doc-7", 400, "context_length_exceeded", "This model's maximum context length is 8192 tokens."),
        Failure("doc-8", 500, "server_error", "The server had an error."),
        Failure("doc-9", None, "batch_expired", EXPIRED_MESSAGE),
    ]


def test_results_are_streamed_in_batches_of_lines(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    vectors = {f"doc-{i}": np.array([i, 1, -i, 0.5], dtype=np.float32) for i in range(1, 12)}
    lines = [success(custom_id, b64(vector)) for custom_id, vector in vectors.items()]
    lines.insert(5, expired("doc-x"))
    path = write_jsonl(tmp_path / "out.jsonl", lines)

    parts = list(iter_results(con, [path], dimensions=4, batch_rows=5))

    assert [len(p.custom_ids) + len(p.failures) for p in parts] == [5, 5, 2]
    got = {c: v for p in parts for c, v in vectors_by_id(p).items()}
    assert sorted(got) == sorted(vectors)
    for custom_id, vector in vectors.items():
        assert_array_equal(got[custom_id], vector, strict=True)
    assert [f for p in parts for f in p.failures] == [Failure("doc-x", None, "batch_expired", EXPIRED_MESSAGE)]


def test_files_and_lines_in_any_order_give_the_same_results(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    lines = [success(custom_id, b64(vector)) for custom_id, vector in VECTORS.items()]
    lines.insert(3, expired("doc-9"))
    first = write_jsonl(tmp_path / "a.jsonl", lines[:4])
    second = write_jsonl(tmp_path / "b.jsonl", lines[4:][::-1])

    forward = read_results(con, [first, second], dimensions=4)
    backward = read_results(con, [second, first], dimensions=4)

    for results in (forward, backward):
        got = vectors_by_id(results)
        assert sorted(got) == sorted(VECTORS)
        for custom_id, vector in VECTORS.items():
            assert_array_equal(got[custom_id], vector, strict=True)
        assert results.failures == [Failure("doc-9", None, "batch_expired", EXPIRED_MESSAGE)]


def test_one_form_only(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    for form in (b64, float_list):
        path = write_jsonl(tmp_path / f"{form.__name__}.jsonl", [success("doc-1", form(VECTORS["doc-1"]))])

        results = read_results(con, [path], dimensions=4)

        assert results.custom_ids.to_pylist() == ["doc-1"]
        assert_array_equal(results.vectors, VECTORS["doc-1"][np.newaxis, :], strict=True)
        assert results.failures == []


def test_an_http_error_without_a_code_is_reported_by_its_type(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    # OpenAI's error objects often carry "code": null; the error's "type" then names the failure.
    path = write_jsonl(
        tmp_path / "err.jsonl", [http_error("doc-1", 500, None, "The server had an error.", kind="server_error")]
    )

    results = read_results(con, [path], dimensions=4)

    assert_no_results(results, 4)
    assert results.failures == [Failure("doc-1", 500, "server_error", "The server had an error.")]


def test_a_success_status_with_an_error_is_a_failure(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    line = success("doc-1", b64(VECTORS["doc-1"]))
    line["error"] = {"code": "batch_cancelled", "message": "cancelled"}
    path = write_jsonl(tmp_path / "out.jsonl", [line])

    results = read_results(con, [path], dimensions=4)

    assert_no_results(results, 4)
    assert results.failures == [Failure("doc-1", 200, "batch_cancelled", "cancelled")]


def test_a_line_with_neither_response_nor_error_is_a_failure(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    path = write_jsonl(tmp_path / "out.jsonl", [{"id": "batch_req_1", "custom_id": "doc-1", "response": None}])

    results = read_results(con, [path], dimensions=4)

    assert_no_results(results, 4)
    assert results.failures == [Failure("doc-1", None, "no_embedding", "the line has neither a response nor an error")]


def test_a_success_with_two_data_items_is_a_failure(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    data = [
        {"object": "embedding", "index": 0, "embedding": b64(VECTORS["doc-1"])},
        {"object": "embedding", "index": 1, "embedding": b64(VECTORS["doc-2"])},
    ]
    path = write_jsonl(
        tmp_path / "out.jsonl", [success("doc-1", None, data=data), success("doc-3", b64(VECTORS["doc-3"]))]
    )

    results = read_results(con, [path], dimensions=4)

    assert results.custom_ids.to_pylist() == ["doc-3"]
    assert_array_equal(results.vectors, VECTORS["doc-3"][np.newaxis, :], strict=True)
    assert results.failures == [Failure("doc-1", 200, "no_embedding", "expected one embedding in the response, got 2")]


def test_a_success_with_no_data_items_is_a_failure(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    path = write_jsonl(tmp_path / "out.jsonl", [success("doc-1", None, data=[])])

    results = read_results(con, [path], dimensions=4)

    assert_no_results(results, 4)
    assert results.failures == [Failure("doc-1", 200, "no_embedding", "expected one embedding in the response, got 0")]


def test_an_embedding_that_is_neither_form_is_a_failure(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    path = write_jsonl(tmp_path / "out.jsonl", [success("doc-1", {"values": [1.0]}), success("doc-2", None)])

    results = read_results(con, [path], dimensions=4)

    assert_no_results(results, 4)
    why = "the embedding is neither base64 nor a list of floats"
    assert sorted_failures(results) == [
        Failure("doc-1", 200, "no_embedding", why),
        Failure("doc-2", 200, "no_embedding", why),
    ]


@pytest.mark.parametrize(
    ("embedding", "answered"),
    [
        (b64([0.1, 0.2, 0.3]), "3 dimensions"),
        (b64([0.1, 0.2, 0.3]) + "AAA=", "14 bytes of float32 data"),
        (float_list([0.1, 0.2, 0.3, 0.4, 0.5]), "5 dimensions"),
    ],
    ids=["base64", "base64-not-whole-floats", "float-list"],
)
def test_a_vector_of_the_wrong_length_fails_alone(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, embedding: Any, answered: str
) -> None:
    path = write_jsonl(
        tmp_path / "out.jsonl",
        [
            success("doc-1", b64(VECTORS["doc-1"])),
            success("doc-short", embedding),
            success("doc-2", b64(VECTORS["doc-2"])),
        ],
    )
    asked = "16" if "bytes" in answered else "4"

    results = read_results(con, [path], dimensions=4)

    assert sorted(vectors_by_id(results)) == ["doc-1", "doc-2"]
    assert_array_equal(vectors_by_id(results)["doc-2"], VECTORS["doc-2"], strict=True)
    assert results.failures == [
        Failure(
            "doc-short",
            200,
            "wrong_dimensions",
            f"the server answered {answered} for it, the job asked for {asked}; it embeds with another model or "
            "size: check --model and --dimensions",
        )
    ]


@pytest.mark.parametrize("form", [b64, float_list], ids=["base64", "float-list"])
def test_a_zero_vector_is_an_invalid_vector_failure(tmp_path: Path, con: duckdb.DuckDBPyConnection, form: Any) -> None:
    path = write_jsonl(
        tmp_path / "out.jsonl",
        [success("doc-0", form([0.0, 0.0, 0.0, 0.0])), success("doc-1", form(VECTORS["doc-1"]))],
    )

    results = read_results(con, [path], dimensions=4)

    assert results.custom_ids.to_pylist() == ["doc-1"]
    assert_array_equal(results.vectors, VECTORS["doc-1"][np.newaxis, :], strict=True)
    assert results.failures == [Failure("doc-0", 200, "invalid_vector", "the vector is zero or not finite")]


def test_a_null_element_in_a_float_list_is_an_invalid_vector(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    path = write_jsonl(tmp_path / "out.jsonl", [success("doc-1", [0.5, None, 0.5, 0.5])])

    results = read_results(con, [path], dimensions=4)

    assert_no_results(results, 4)
    assert results.failures == [Failure("doc-1", 200, "invalid_vector", "the vector is zero or not finite")]


def test_empty_and_missing_files_give_no_results(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")

    for paths in ([], [empty], [tmp_path / "missing.jsonl"], [empty, tmp_path / "missing.jsonl"]):
        results = read_results(con, paths, dimensions=3)

        assert_no_results(results, 3)
        assert results.failures == []


def test_a_missing_error_file_beside_an_output_file_is_skipped(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    output = write_jsonl(tmp_path / "out.jsonl", [success("doc-1", b64(VECTORS["doc-1"]))])

    results = read_results(con, [output, tmp_path / "err.jsonl"], dimensions=4)

    assert results.custom_ids.to_pylist() == ["doc-1"]
    assert results.failures == []


@pytest.mark.parametrize(
    "content", ["this is not json\n", '{"custom_id": "doc-1", "response": \n', "<html>502 Bad Gateway</html>\n"]
)
def test_lines_that_are_not_json_are_left_out(tmp_path: Path, con: duckdb.DuckDBPyConnection, content: str) -> None:
    # A damaged line names no custom_id: it is neither a result nor a failure, so the loader counts
    # its request as missing and sends it again; the file's good lines still load.
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [success("doc-1", b64(VECTORS["doc-1"]))])
    with open(path, "a", encoding="utf-8") as f:
        f.write(content)
    write_jsonl(tmp_path / "more.jsonl", [success("doc-2", float_list(VECTORS["doc-2"]))])

    results = read_results(con, [path, tmp_path / "more.jsonl"], dimensions=4)

    assert vectors_by_id(results).keys() == {"doc-1", "doc-2"}
    assert_array_equal(vectors_by_id(results)["doc-1"], VECTORS["doc-1"], strict=True)
    assert results.failures == []


def test_bad_base64_is_refused(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    path = write_jsonl(tmp_path / "out.jsonl", [success("doc-1", "!!!not base64")])

    with pytest.raises(LoadError) as excinfo:
        read_results(con, [path], dimensions=4)

    assert str(excinfo.value).startswith("cannot read result file(s) out.jsonl: ")
    assert str(excinfo.value).endswith(DAMAGED_SUFFIX)


# Property: any finite, non-zero float32 vector comes back bit for bit, in either form.

# Any finite float32, subnormal and negative zero included.
_ELEMENTS = st.floats(width=32, allow_nan=False, allow_infinity=False)


@pytest.fixture(scope="module")
def memory() -> Iterator[duckdb.DuckDBPyConnection]:
    """One in-memory DuckDB for every example of the property (opening one costs more than an example)."""
    connection = duckdb.connect()
    yield connection
    connection.close()


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    matrix=st.integers(1, 16).flatmap(
        lambda dims: arrays(np.float32, st.tuples(st.integers(1, 6), st.just(dims)), elements=_ELEMENTS)
    ),
    forms=st.lists(st.booleans(), min_size=6, max_size=6),
    seed=st.integers(0, 1000),
)
def test_vectors_round_trip_exactly(
    memory: duckdb.DuckDBPyConnection, matrix: np.ndarray, forms: list[bool], seed: int
) -> None:
    assume(bool(matrix.any(axis=1).all()))
    expected = {f"id-{i}": row for i, row in enumerate(matrix)}
    lines = [
        success(custom_id, b64(row) if use_b64 else float_list(row))
        for (custom_id, row), use_b64 in zip(expected.items(), forms, strict=False)
    ]
    random.Random(seed).shuffle(lines)

    with tempfile.TemporaryDirectory() as tmp:
        path = write_jsonl(Path(tmp) / "out.jsonl", lines)
        results = read_results(memory, [path], dimensions=matrix.shape[1])

    assert results.failures == []
    got = vectors_by_id(results)
    assert sorted(got) == sorted(expected)
    for custom_id, row in expected.items():
        # Bit for bit: assert_array_equal alone would let -0.0 pass for 0.0.
        assert_array_equal(got[custom_id].view(np.uint32), row.view(np.uint32), strict=True)


@pytest.mark.parametrize("vector", [[1e-30, 0.0, 0.0, 0.0], [1e30, 0.0, 0.0, 0.0]], ids=["tiny", "huge"])
def test_a_finite_non_zero_vector_with_extreme_elements_is_kept(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, vector: list[float]
) -> None:
    path = write_jsonl(tmp_path / "out.jsonl", [success("doc-1", b64(vector))])

    results = read_results(con, [path], dimensions=4)

    assert results.failures == []
    assert_array_equal(results.vectors, np.array([vector], dtype=np.float32), strict=True)
