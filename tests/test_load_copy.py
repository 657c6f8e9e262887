"""The two readings of a batch's answer agree: ``copy_vectors`` (what loading does with a usual answer:
DuckDB copies the vectors into the cache by itself, and only the lines without their vectors come
into Python) and ``read_results`` (the reading that checks every line in Python, which loading uses
for any other answer).

Then, through the whole batch job against the local server, the vectors that the copy refuses (zero,
not finite, not base64) fail their lines alone, as the line-by-line reading fails them.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import embedsql
from embedsql.cache import ensure_cache
from embedsql.errors import LoadError
from embedsql.ledger import transaction
from embedsql.results import Copier, copy_vectors, line_failures, read_results

from batch_jobs import assert_exact_table, small_db
from fake_openai import FakeOpenAI
from helpers import FakeTime, fetch

DIMENSIONS = 4
Q = "select id, body from docs"


@contextlib.contextmanager
def _database() -> Iterator[duckdb.DuckDBPyConnection]:
    """A database with a place for caches, on a connection of its own (``Copier`` registers per connection)."""
    connection = duckdb.connect()
    connection.execute("CREATE SCHEMA embedsql")
    connection.execute("CREATE TABLE embedsql.caches (model VARCHAR, dimensions INTEGER, table_name VARCHAR)")
    try:
        yield connection
    finally:
        connection.close()


def _success(custom_id: str, embedding: Any, *, tokens: int | None = 3) -> dict[str, Any]:
    body: dict[str, Any] = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": embedding}]}
    if tokens is not None:
        body["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {
        "id": f"r-{custom_id}",
        "custom_id": custom_id,
        "response": {"status_code": 200, "body": body},
        "error": None,
    }


def _b64(vector: list[float]) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


# Each kind of line an answer can hold, made for a custom_id.
_FINITE = st.floats(width=32, allow_nan=False, allow_infinity=False)
_LINES = {
    "base64": st.lists(_FINITE, min_size=DIMENSIONS, max_size=DIMENSIONS).map(lambda v: lambda c: _success(c, _b64(v))),
    "http_error": st.sampled_from([429, 500, 400]).map(
        lambda status: (
            lambda c: {
                "id": f"r-{c}",
                "custom_id": c,
                "response": {"status_code": status, "body": {"error": {"message": f"no {status}", "code": None}}},
                "error": None,
            }
        )
    ),
    "expired": st.just(
        lambda c: {"id": f"r-{c}", "custom_id": c, "response": None, "error": {"code": "batch_expired", "message": "x"}}
    ),
    "unusable": st.sampled_from([[0.0] * 4, [float("nan"), 1, 2, 3], [1, float("inf"), 2, 3], [-0.0] * 4]).map(
        lambda v: lambda c: _success(c, _b64(v), tokens=None)
    ),
    "float_list": st.lists(_FINITE, min_size=DIMENSIONS, max_size=DIMENSIONS).map(lambda v: lambda c: _success(c, v)),
    "wrong_length": st.integers(1, 8)
    .filter(lambda n: n != DIMENSIONS)
    .map(lambda n: lambda c: _success(c, _b64([1.0] * n))),
    "no_data": st.just(lambda c: _success(c, None) | {"response": {"status_code": 200, "body": {"data": []}}}),
    "other_value": st.sampled_from([{"v": 1}, True, 12345678, None]).map(lambda e: lambda c: _success(c, e)),
}
# A line that is not JSON (written as it is): its request counts as missing.
_NOT_JSON = '{"custom_id": "c-cut-off", "response": {"status_code": 200, "body": {"data": [{"embedding": "AAAA'
_LINES["not_json"] = st.just(lambda c: _NOT_JSON)
# A success written with every "/" escaped and fields the format does not have (JSON allows both).
_LINES["escaped"] = st.lists(_FINITE, min_size=DIMENSIONS, max_size=DIMENSIONS).map(
    lambda v: lambda c: json.dumps(_success(c, _b64(v)) | {"extra": {"nested": [1, "/"]}}).replace("/", "\\/")
)
_LINES["two_items"] = st.just(
    lambda c: (
        _success(c, None)
        | {"response": {"status_code": 200, "body": {"data": [{"embedding": _b64([1, 2, 3, 4])}] * 2}}}
    )
)
# Failures need no vector: only a success in another form sends an answer to the line-by-line reading.
_USUAL = ("base64", "http_error", "expired", "unusable", "no_data", "not_json", "escaped", "two_items")
# Lines the copy takes: a success in base64 of the job's size each (whether usable or not).
_SUCCESSES = ("base64", "unusable", "escaped")


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(list(_LINES)), min_size=1, max_size=12), data=st.data())
def test_the_copy_and_the_line_by_line_reading_agree_on_every_line(
    tmp_path: Path, kinds: list[str], data: st.DataObject
) -> None:
    lines = [data.draw(_LINES[kind])(f"c{i}") for i, kind in enumerate(kinds)]
    path = tmp_path / "out.jsonl"
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines), encoding="utf-8"
    )
    wanted = {f"c{i}" for i in range(len(kinds))} - set(
        data.draw(st.lists(st.sampled_from([f"c{i}" for i in range(len(kinds))])))
    )
    with _database() as con:
        _assert_the_readings_agree(con, path, kinds, wanted)


def _assert_the_readings_agree(con: duckdb.DuckDBPyConnection, path: Path, kinds: list[str], wanted: set[str]) -> None:
    reference = read_results(con, [path], dimensions=DIMENSIONS)
    with transaction(con):
        cache = ensure_cache(con, "m", DIMENSIONS)
        copied = copy_vectors(con, [path], into=cache, wanted=wanted, copier=Copier(con, DIMENSIONS))
        stored = dict(con.execute(f"SELECT text_hash, embedding FROM {cache}").fetchall())

    kind = {f"c{i}": k for i, k in enumerate(kinds)}
    every = copied.lines
    assert sorted(every["custom_id"].to_pylist(), key=str) == sorted(
        (None if k == "not_json" else c for c, k in kind.items()), key=str
    )
    assert set(every["filename"].to_pylist()) == {str(path)}
    # Copied: each success in base64 of the job's size that is wanted; stored: those the copy could use,
    # bit for bit the vectors of the line-by-line reading (float32 both ways).
    assert {c for c, copy in zip(*every.select(["custom_id", "copied"]).to_pydict().values(), strict=True) if copy} == {
        c for c, k in kind.items() if k in _SUCCESSES and c in wanted
    }
    expected = dict(zip(reference.custom_ids.to_pylist(), reference.vectors.tolist(), strict=True))
    assert {c: list(v) for c, v in stored.items()} == {
        c: v for c, v in expected.items() if kind[c] != "float_list" and c in wanted
    }
    invalid = {f.custom_id for f in reference.failures if f.code == "invalid_vector"}
    assert copied.refused == {c for c in invalid if c in wanted and kind[c] in _SUCCESSES}
    scanned = every.filter(pc.is_valid(every["custom_id"]))
    ok = scanned["ok"]
    usual = pc.all(pc.or_(pc.invert(ok), scanned["base64"]), min_count=0).as_py()
    # An answer is usual exactly when each of its lines is of a kind the copy takes.
    assert usual == all(k in _USUAL for k in kinds)
    if usual:  # then the lines without their vectors say what the line-by-line reading says
        others = sorted(line_failures(scanned, pc.invert(ok)), key=lambda f: f.custom_id)
        assert others == sorted(
            (f for f in reference.failures if f.custom_id not in invalid), key=lambda f: f.custom_id
        )
        billed = pc.filter(scanned, pc.is_valid(scanned["tokens"]))
        assert sorted(billed.select(["custom_id", "tokens"]).to_pylist(), key=str) == sorted(
            reference.billed.to_pylist(), key=str
        )


def test_only_the_wanted_lines_are_copied_and_every_line_is_said(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    vectors = {f"c{i}": [float(i + 1), 0.5, -0.25, 2.0] for i in range(5)}
    path.write_text("".join(json.dumps(_success(c, _b64(v))) + "\n" for c, v in vectors.items()), encoding="utf-8")
    with _database() as con, transaction(con):
        cache = ensure_cache(con, "m", DIMENSIONS)
        copied = copy_vectors(con, [path], into=cache, wanted={"c1", "c3", "c9"}, copier=Copier(con, DIMENSIONS))
        rows = con.execute(f"SELECT text_hash, embedding FROM {cache} ORDER BY 1").fetchall()

    assert rows == [
        ("c1", (2.0, 0.5, -0.25, 2.0)),
        ("c3", (4.0, 0.5, -0.25, 2.0)),
    ]
    assert copied.refused == set()
    assert copied.lines.sort_by("custom_id").select(["custom_id", "status", "tokens", "ok", "copied"]).to_pylist() == [
        {"custom_id": f"c{i}", "status": 200, "tokens": 3, "ok": True, "copied": i in (1, 3)} for i in range(5)
    ]


# ------------------------------------------------------------------------------- through a batch job


def _spoil_first(embedding: Any) -> Any:
    """A rewrite of the output file: the first line's vector replaced by ``embedding``."""

    def rewrite(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        lines[0]["response"]["body"]["data"][0]["embedding"] = embedding
        return lines

    return rewrite


@pytest.mark.parametrize(
    "vector",
    [np.zeros(1536), np.full(1536, np.nan), np.r_[np.ones(1535), np.inf], np.r_[np.full(1535, -np.inf), 1.0]],
    ids=["zero", "nan", "inf", "minus-inf"],
)
def test_a_vector_the_copy_refuses_fails_its_line_alone_and_is_asked_again(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, vector: np.ndarray
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.rewrite_output_lines(_spoil_first(_b64(vector.tolist())), times=1)

    result = embedsql.run(Q, db=db, **fake_time)

    assert (result.embedded_texts, result.failed_texts, result.target_rows) == (40, 0, 40)
    assert fetch(db, "SELECT attempt, status, code, message, final FROM embedsql.errors") == [
        (1, 200, "invalid_vector", "the vector is zero or not finite", False)
    ]
    assert fetch(db, "SELECT shard, attempt, embedded, failed FROM embedsql.shards ORDER BY shard") == [
        (1, 1, 39, 0),
        (2, 2, 1, 0),
    ]
    assert openai_server.batches_created == 2
    assert_exact_table(db, "docs_embeddings", texts, "id")


@pytest.mark.parametrize(
    "embedding",
    ["!" * 8192, "A" * 8191 + "!", "=" * 8192],
    ids=["all-punctuation", "last-character", "padding-only"],
)
def test_a_string_of_the_right_length_that_is_not_base64_stops_the_job_with_its_place_kept(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, embedding: str
) -> None:
    db, _ = small_db(tmp_path / "d.duckdb")
    openai_server.rewrite_output_lines(_spoil_first(embedding), times=1)

    with pytest.raises(LoadError) as raised:
        embedsql.run(Q, db=db, **fake_time)

    message = str(raised.value)
    assert message.startswith("cannot read result file(s) ")
    assert message.endswith(
        " The file is damaged or not in the Batch API output format; `embedsql resume JOB` downloads or recomputes it."
    )
    # Nothing of the shard is loaded, nor any table written; the job keeps its place.
    assert fetch(db, "SELECT status FROM embedsql.shards") == [("downloaded",)]
    assert fetch(db, "SELECT status FROM embedsql.jobs") != [("complete",)]
    assert fetch(db, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'docs_embeddings'") == [(0,)]
    cache = fetch(db, "SELECT table_name FROM embedsql.caches")
    assert not cache or fetch(db, f'SELECT count(*) FROM embedsql."{cache[0][0]}"') == [(0,)]


@pytest.mark.parametrize("answer", ["usual", "a-line-twice"])
def test_a_text_already_in_the_cache_is_never_stored_twice(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, answer: str
) -> None:
    # Both jobs are planned before either loads, so both send the texts they share; the second to
    # load finds them in the cache. The cache has no index to refuse a second copy: the load must.
    db, texts = small_db(tmp_path / "d.duckdb", n=30)
    if answer == "a-line-twice":  # read line by line instead of copied
        openai_server.rewrite_output_lines(lambda lines: [*lines, lines[0]], times=2)
    run = {"db": db, **fake_time, "wait": False}
    first = embedsql.run("select id, body from docs where id < 20", into="first", **run)
    second = embedsql.run("select id, body from docs where id >= 10", into="second", **run)

    done = [embedsql.resume(j.job_id, db=db, **fake_time) for j in (second, first)]

    assert [(r.status, r.target_rows, r.failed_texts) for r in done] == [("complete", 20, 0), ("complete", 20, 0)]
    cache = "embedsql.cache_text_embedding_3_small_1536"
    assert fetch(db, f"SELECT count(*), count(DISTINCT text_hash) FROM {cache}") == [(30, 30)]
    assert_exact_table(db, "first", {i: texts[i] for i in range(20)}, "id")
    assert_exact_table(db, "second", {i: texts[i] for i in range(10, 30)}, "id")


def test_an_answer_with_lines_of_other_texts_is_read_line_by_line_and_the_cache_keeps_one_row_a_text(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    # The copy of the group takes every file's successes at once; a shard's answer that holds the line of
    # a text of the other shard, and of a text the cache held before (both with other vectors), is not
    # the usual one: the copy comes out again, the vectors in the cache before stay, each line counts once.
    db, texts = small_db(tmp_path / "d.duckdb")
    embedsql.run("select id, body from docs where id < 10", into="first", db=db, **fake_time)
    requests: dict[str, str] = {}  # text -> custom_id, from every request file uploaded or planned

    def with_other_texts(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        uploaded = [r.content for r in openai_server.files.values() if r.purpose == "batch"]
        planned = [p.read_bytes() for p in tmp_path.rglob("*.jsonl")]
        for raw in b"".join(uploaded + planned).splitlines():
            request = json.loads(raw)
            if "method" in request:
                requests[request["body"]["input"]] = request["custom_id"]
        own = {line["custom_id"] for line in lines}
        other = next(requests[texts[i]] for i in range(10, 40) if requests[texts[i]] not in own)
        foreign, cached = copy.deepcopy(lines[0]), copy.deepcopy(lines[1])
        foreign["custom_id"], cached["custom_id"] = other, requests[texts[0]]
        foreign["response"]["body"]["data"][0]["embedding"] = _b64([1.0] * 1536)
        cached["response"]["body"]["data"][0]["embedding"] = _b64([2.0] * 1536)
        return [*lines, foreign, cached]

    openai_server.rewrite_output_lines(with_other_texts, times=1)

    result = embedsql.run(Q, db=db, max_shard_lines=20, **fake_time)

    assert (result.target_rows, result.failed_texts) == (40, 0)
    assert openai_server.batches_created == 3
    assert fetch(db, "SELECT count(*) FROM embedsql.errors") == [(0,)]
    cache = "embedsql.cache_text_embedding_3_small_1536"
    assert fetch(db, f"SELECT count(*), count(DISTINCT text_hash) FROM {cache}") == [(40, 40)]
    assert_exact_table(db, "docs_embeddings", texts, "id")
    assert_exact_table(db, "first", {i: texts[i] for i in range(10)}, "id")
