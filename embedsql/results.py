"""Batch output and error files, read back into vectors and failures.

One parser for every runner, since all of them write the Batch API's output format. DuckDB reads
the JSONL with an explicit schema (several times faster than auto-detection, and one pass covers
success lines, HTTP error lines and non-HTTP failures such as ``batch_expired``). Vectors may be
base64 (little-endian float32) or JSON float lists; both are accepted.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .duck import duck_message
from .errors import LoadError

__all__ = ["BATCH_ROWS", "WRONG_LENGTH", "Failure", "Results", "iter_results", "read_results", "wrong_length"]

# Lines read at a time: 8,192 lines of 1536-d base64 output are ~70 MB of JSON and ~50 MB of vectors.
BATCH_ROWS = 8_192

# The code of a line whose vector has another length than the job's dimensions.
WRONG_LENGTH = "wrong_dimensions"

_SCHEMA = (
    "{'custom_id': 'VARCHAR', "
    "'response': 'STRUCT(status_code INTEGER, body STRUCT(data STRUCT(\"index\" INTEGER, embedding JSON)[], "
    "error STRUCT(message VARCHAR, type VARCHAR, code VARCHAR), usage STRUCT(prompt_tokens BIGINT)))', "
    "'error': 'STRUCT(code VARCHAR, message VARCHAR)'}"
)


_NO_BILL = pa.table({"custom_id": pa.array([], pa.string()), "tokens": pa.array([], pa.int64())})


@dataclass(frozen=True)
class Failure:
    """A request line that came back without a usable vector."""

    custom_id: str
    status: int | None
    code: str | None
    message: str | None


@dataclass(frozen=True)
class Results:
    """Vectors by custom_id (row i of ``vectors`` belongs to ``custom_ids[i]``), and the failures;
    ``billed`` is (custom_id, tokens) of each line that reports the prompt tokens the service billed
    for it (``response.body.usage.prompt_tokens``), whether or not its vector is usable."""

    custom_ids: pa.Array
    vectors: np.ndarray
    failures: list[Failure] = field(default_factory=list)
    billed: pa.Table = field(default_factory=lambda: _NO_BILL)


def read_results(con: duckdb.DuckDBPyConnection, paths: list[Path], *, dimensions: int) -> Results:
    """Read output and error files (in any order, lines in any order) into one ``Results``."""
    parts = list(iter_results(con, paths, dimensions=dimensions))
    if not parts:
        return Results(pa.array([], pa.string()), np.zeros((0, dimensions), np.float32))
    return Results(
        pa.concat_arrays([p.custom_ids for p in parts]),
        np.concatenate([p.vectors for p in parts]),
        [f for p in parts for f in p.failures],
        pa.concat_tables([p.billed for p in parts]),
    )


def iter_results(
    con: duckdb.DuckDBPyConnection, paths: list[Path], *, dimensions: int, batch_rows: int = BATCH_ROWS
) -> Iterator[Results]:
    """Read output and error files as ``Results`` of at most ``batch_rows`` lines each, streamed: however
    big the files, only one batch of lines and its vectors are in memory at a time.

    The reader keeps ``con`` busy until it is exhausted: give it a cursor of its own if the caller
    writes in between (``con.cursor()``).
    """
    files = [p for p in paths if p.exists() and p.stat().st_size > 0]
    if not files:
        return
    file_list = "[" + ", ".join(_literal(str(p)) for p in files) + "]"
    sql = f"""
        SELECT custom_id,
               response.status_code AS status,
               coalesce(response.body.error.code, response.body.error.type, error.code) AS code,
               coalesce(response.body.error.message, error.message) AS message,
               len(response.body.data) AS items,
               response.body.usage.prompt_tokens AS tokens,
               json_type(response.body.data[1].embedding) AS kind,
               CASE WHEN json_type(response.body.data[1].embedding) = 'VARCHAR'
                    THEN from_base64(response.body.data[1].embedding ->> '$') END AS packed,
               CASE WHEN json_type(response.body.data[1].embedding) = 'ARRAY'
                    THEN CAST(response.body.data[1].embedding AS FLOAT[]) END AS floats
        FROM read_json({file_list}, format = 'newline_delimited', columns = {_SCHEMA}, ignore_errors = true)
    """
    # DuckDB's JSON reader holds each line's parsed tree, ~10x the line, for a chunk of 2,048 lines
    # per thread: 1536-d float lists (31 kB a line) on two threads outgrew 512MB, on one they did not.
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0] if _float_lists(files) else None
    try:
        if threads is not None:
            con.execute("SET threads = 1")
        reader = con.sql(sql).to_arrow_reader(batch_rows)
        with reader:
            for batch in reader:
                if batch.num_rows:
                    yield _split(pa.Table.from_batches([batch]), dimensions)
    except duckdb.OutOfMemoryException:
        raise  # not the file's fault
    except (duckdb.Error, pa.ArrowException) as e:
        names = ", ".join(p.name for p in files)
        message = duck_message(e) if isinstance(e, duckdb.Error) else str(e)
        if "Out of Memory Error" in message:
            raise duckdb.OutOfMemoryException(message) from e
        raise LoadError(
            f"cannot read result file(s) {names}: {message} The file is damaged or not in the "
            "Batch API output format; `embedsql resume JOB` downloads or recomputes it."
        ) from e
    finally:
        if threads is not None:
            con.execute(f"SET threads = {int(threads)}")


def _float_lists(files: list[Path]) -> bool:
    """Whether the first answer with a vector has it as a JSON float list rather than base64."""
    for path in files:
        with open(path, "rb") as f:
            for line in itertools.islice(f, 10):
                try:
                    embedding = json.loads(line)["response"]["body"]["data"][0]["embedding"]
                except (ValueError, KeyError, IndexError, TypeError):
                    continue
                return isinstance(embedding, list)
    return False


def _split(table: pa.Table, dimensions: int) -> Results:
    # A line that is not valid JSON comes back as a row of NULLs: its custom_id is unknown, so its
    # request counts as missing and is sent again.
    table = table.filter(pc.is_valid(table["custom_id"]))
    billed = table.filter(pc.is_valid(table["tokens"])).select(["custom_id", "tokens"])
    ok = pc.and_(
        pc.fill_null(pc.and_(pc.greater_equal(table["status"], 200), pc.less(table["status"], 300)), False),
        pc.is_null(table["code"]),
    )
    ok = pc.and_(ok, pc.fill_null(pc.equal(table["items"], 1), False))
    packed = table.filter(pc.and_(ok, pc.equal(table["kind"], "VARCHAR")))
    floats = table.filter(pc.and_(ok, pc.equal(table["kind"], "ARRAY")))
    failures = [
        Failure(r["custom_id"], r["status"], r["code"] or "no_embedding", r["message"] or _why(r))
        for r in table.filter(pc.invert(pc.and_(ok, pc.is_in(table["kind"], pa.array(["VARCHAR", "ARRAY"])))))
        .select(["custom_id", "status", "code", "message", "items", "kind"])
        .to_pylist()
    ]
    ids, vectors = [], []
    for part, decode in ((packed, _from_base64), (floats, _from_floats)):
        if part.num_rows:
            part_ids, part_vectors, wrong = decode(part, dimensions)
            ids.append(part_ids)
            vectors.append(part_vectors)
            failures += wrong
    if not ids:
        return Results(pa.array([], pa.string()), np.zeros((0, dimensions), np.float32), failures, billed)
    all_ids = pa.concat_arrays(ids)
    matrix = np.concatenate(vectors)
    # A zero or non-finite vector has no direction: cosine similarity with it is NaN, and NaN sorts
    # first in ORDER BY ... DESC. Such a vector is a failure, not a result.
    bad = ~(np.isfinite(matrix).all(axis=1) & matrix.any(axis=1))
    if bad.any():
        for custom_id in all_ids.filter(pa.array(bad)).to_pylist():
            failures.append(Failure(custom_id, 200, "invalid_vector", "the vector is zero or not finite"))
        keep = pa.array(~bad)
        all_ids, matrix = all_ids.filter(keep), matrix[~bad]
    return Results(all_ids, matrix, failures, billed)


def wrong_length(got: int, dimensions: int, *, unit: str = "dimensions") -> str:
    """Why a vector of ``got`` ``unit`` is refused for a job of ``dimensions``: the words every runner uses."""
    return (
        f"the server answered {got} {unit} for it, the job asked for {dimensions}; it embeds with another model "
        "or size: check --model and --dimensions"
    )


def _from_base64(part: pa.Table, dimensions: int) -> tuple[pa.Array, np.ndarray, list[Failure]]:
    lengths = pc.binary_length(part["packed"]).to_numpy(zero_copy_only=False)
    part, failures = _refuse_wrong(
        part,
        lengths != dimensions * 4,
        lambda n: (
            wrong_length(n // 4, dimensions)
            if n % 4 == 0
            else wrong_length(n, dimensions * 4, unit="bytes of float32 data")
        ),
        lengths,
    )
    column = part["packed"].combine_chunks()
    if not len(column):
        return part["custom_id"].combine_chunks(), np.zeros((0, dimensions), np.float32), failures
    _, offsets, data = column.buffers()
    width = np.int64 if pa.types.is_large_binary(column.type) else np.int32
    start = np.frombuffer(offsets, width)[column.offset]
    matrix = np.frombuffer(data, "<f4", count=len(column) * dimensions, offset=int(start)).reshape(-1, dimensions)
    return part["custom_id"].combine_chunks(), matrix, failures


def _from_floats(part: pa.Table, dimensions: int) -> tuple[pa.Array, np.ndarray, list[Failure]]:
    lengths = pc.list_value_length(part["floats"]).to_numpy(zero_copy_only=False)
    part, failures = _refuse_wrong(part, lengths != dimensions, lambda n: wrong_length(n, dimensions), lengths)
    flat = part["floats"].combine_chunks().flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return part["custom_id"].combine_chunks(), flat.reshape(-1, dimensions), failures


def _refuse_wrong(
    part: pa.Table, wrong: np.ndarray, why: Callable[[int], str], lengths: np.ndarray
) -> tuple[pa.Table, list[Failure]]:
    """The lines of ``part`` whose vector has the right length, and a failure for each other one: a
    line of the wrong length fails alone, the rest of the file loads."""
    if not wrong.any():
        return part, []
    ids = part["custom_id"].filter(pa.array(wrong)).to_pylist()
    failures = [Failure(c, 200, WRONG_LENGTH, why(n)) for c, n in zip(ids, lengths[wrong].tolist(), strict=True)]
    return part.filter(pa.array(~wrong)), failures


def _why(row: dict[str, object]) -> str:
    if row["status"] is None:
        return "the line has neither a response nor an error"
    if row["items"] != 1:
        return f"expected one embedding in the response, got {row['items']}"
    return "the embedding is neither base64 nor a list of floats"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
