"""Batch output and error files, read back into vectors and failures.

One parser for every runner, since all of them write the Batch API's output format. DuckDB reads
the JSONL with an explicit schema (several times faster than auto-detection, and one pass covers
success lines, HTTP error lines and non-HTTP failures such as ``batch_expired``). Vectors may be
base64 (little-endian float32) or JSON float lists; both are accepted.

Two ways to read the same lines, which agree (``tests/test_load_copy.py``): ``iter_results`` brings
every line into Python, vectors and all, a batch at a time; ``copy_vectors`` has DuckDB read,
decode and insert the vectors by itself and brings only the lines without their vectors into
Python, which is how loading takes the usual answer (base64 of the job's size, each line once).
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import duckdb.func
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import arrays
from .cache import remove_vectors
from .duck import duck_message
from .errors import LoadError

__all__ = [
    "BATCH_ROWS",
    "WRONG_LENGTH",
    "Copied",
    "Copier",
    "Failure",
    "Results",
    "copy_vectors",
    "iter_results",
    "line_failures",
    "read_results",
    "wrong_length",
]

# Lines read at a time: 8,192 lines of 1536-d base64 output are ~70 MB of JSON and ~50 MB of vectors.
BATCH_ROWS = 8_192

# The code of a line whose vector has another length than the job's dimensions.
WRONG_LENGTH = "wrong_dimensions"


def _schema(embedding: str) -> str:
    """The columns of a result line for ``read_json``, the embedding as the type ``embedding``: JSON
    keeps its form (a string or a list), VARCHAR has a string as the string and a list as its text."""
    return (
        "{'custom_id': 'VARCHAR', "
        "'response': 'STRUCT(status_code INTEGER, body STRUCT(data STRUCT(\"index\" INTEGER, embedding "
        f"{embedding})[], error STRUCT(message VARCHAR, type VARCHAR, code VARCHAR), "
        "usage STRUCT(prompt_tokens BIGINT)))', "
        "'error': 'STRUCT(code VARCHAR, message VARCHAR)'}"
    )


# What every reading of result lines selects besides the vector; ``ok``: the service answered with
# success (a 2xx status, no error code and one embedding, of whatever form), never NULL.
_CODE = "coalesce(response.body.error.code, response.body.error.type, error.code)"
_LINE = f"""custom_id,
               response.status_code AS status,
               {_CODE} AS code,
               coalesce(response.body.error.message, error.message) AS message,
               len(response.body.data) AS items,
               response.body.usage.prompt_tokens AS tokens,
               coalesce(response.status_code BETWEEN 200 AND 299 AND {_CODE} IS NULL
                        AND len(response.body.data) = 1, false) AS ok"""


# Made when first needed: making any Arrow array from Python values makes pyarrow import pandas when it
# is installed (~0.5 s), which no command should pay for at its start.
def _no_bill() -> pa.Table:
    return pa.schema([("custom_id", pa.string()), ("tokens", pa.int64())]).empty_table()


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
    billed: pa.Table = field(default_factory=_no_bill)


def read_results(con: duckdb.DuckDBPyConnection, paths: list[Path], *, dimensions: int) -> Results:
    """Read output and error files (in any order, lines in any order) into one ``Results``."""
    parts = list(iter_results(con, paths, dimensions=dimensions))
    if not parts:
        return Results(arrays.strings([]), np.zeros((0, dimensions), np.float32))
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
    files = _files(paths)
    if not files:
        return
    sql = f"""
        SELECT {_LINE},
               coalesce(json_type(response.body.data[1].embedding) = 'VARCHAR', false) AS is_string,
               coalesce(json_type(response.body.data[1].embedding) = 'ARRAY', false) AS is_list,
               CASE WHEN json_type(response.body.data[1].embedding) = 'VARCHAR'
                    THEN from_base64(response.body.data[1].embedding ->> '$') END AS packed,
               CASE WHEN json_type(response.body.data[1].embedding) = 'ARRAY'
                    THEN CAST(response.body.data[1].embedding AS FLOAT[]) END AS floats
        FROM {_read(files, "JSON")}
    """
    # DuckDB's JSON reader holds each line's parsed tree, ~10x the line, for a chunk of 2,048 lines
    # per thread: 1536-d float lists (31 kB a line) on two threads outgrew 512MB, on one they did not.
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0] if _float_lists(files) else None
    try:
        with _reading(files):
            if threads is not None:
                con.execute("SET threads = 1")
            reader = con.sql(sql).to_arrow_reader(batch_rows)
            with reader:
                for batch in reader:
                    if batch.num_rows:
                        yield _split(batch, dimensions)
    finally:
        if threads is not None:
            con.execute(f"SET threads = {int(threads)}")


@dataclass(frozen=True)
class Copied:
    """What ``copy_vectors`` did: ``lines``, every line of the files without its vector (``custom_id,
    status, code, message, items, tokens, ok`` as ``iter_results`` reads them, NULL and ``ok`` false
    for a line that is not JSON; ``base64``: its vector is a string of the length of base64 of the
    job's size; ``filename``; ``copied``: its vector went to the cache), and the custom_ids of copied
    vectors that were refused (zero, not finite, not base64) and taken out again."""

    lines: pa.Table
    refused: set[str]


def copy_vectors(
    con: duckdb.DuckDBPyConnection, paths: list[Path], *, into: str, wanted: set[str], copier: Copier
) -> Copied:
    """Insert into ``into`` (text_hash, embedding) the vector of each line of the result files that is a
    success in base64 of the job's size for a custom_id of ``wanted``, straight from the files in one
    statement, and say what every line of the files was (``Copied``). A vector that is zero, not finite
    or not base64 goes in and out again in the same transaction (call inside one), and ``iter_results``
    says why. A custom_id on two such lines goes in twice: the caller checks ``lines`` for that.

    DuckDB reads, decodes and writes in its own threads, as it would with no Python in between (~2x
    faster than inserting batches read into Python), and the lines without their vectors come out of
    the same reading: a second reading for them cost ~0.6 s per 100k 1536-d lines.
    """
    files = _files(paths)
    copier.wanted, copier.batches, copier.refused = wanted, [], set()
    try:
        if files:
            embedding = "response.body.data[1].embedding"
            lines = f"""
                SELECT response, filename, {_LINE},
                       coalesce(strlen({embedding}) = {_base64_length(copier.dimensions)}
                                AND left({embedding}, 1) <> '[', false) AS base64
                FROM {_read(files, "VARCHAR", filename=True)}
            """
            with _reading(files):
                con.execute(
                    f"INSERT INTO {into} SELECT custom_id, {copier.vectors}(custom_id, try(from_base64({embedding}))) "
                    f"FROM ({lines}) WHERE {copier.lines}({', '.join(_COPIED[:-1])})"
                )
        refused = copier.refused
        remove_vectors(con, into, refused)  # what the function could not use went in as it was: out again
        return Copied(pa.Table.from_batches(copier.batches) if copier.batches else _no_lines(), refused)
    finally:
        copier.wanted, copier.batches, copier.refused = set(), [], set()


# The columns of ``Copied.lines``, in the order the lines function takes the first of them.
_COPIED = ("custom_id", "status", "code", "message", "items", "tokens", "ok", "base64", "filename", "copied")
_COPIED_TYPES = ("VARCHAR", "INTEGER", "VARCHAR", "VARCHAR", "BIGINT", "BIGINT", "BOOLEAN", "BOOLEAN", "VARCHAR")


def _no_lines() -> pa.Table:
    return pa.schema(
        [
            ("custom_id", pa.string()),
            ("status", pa.int32()),
            ("code", pa.string()),
            ("message", pa.string()),
            ("items", pa.int64()),
            ("tokens", pa.int64()),
            ("ok", pa.bool_()),
            ("base64", pa.bool_()),
            ("filename", pa.string()),
            ("copied", pa.bool_()),
        ]
    ).empty_table()


class Copier:
    """The two SQL functions of ``copy_vectors``, registered on a connection (outside a transaction:
    a rollback drops what the transaction registered).

    ``lines`` is the statement's filter: it keeps each line of the files, without its vector, and
    lets through the successes in base64 whose custom_id is ``wanted`` (a set to look in, not a join:
    DuckDB made the result lines, vectors and all, the build side of a join and ran out of memory).
    ``vectors`` turns (custom_id, base64-decoded bytes) into ``FLOAT[dimensions]``, read in place (no
    copy); bytes it cannot use (NULL, another length, a vector zero or not finite) go in as zeros
    all the same, and their custom_ids are ``refused``: filtering rows of vectors copies them.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, dimensions: int) -> None:
        self.dimensions = dimensions
        self.vectors = f"_embedsql_vectors_{dimensions}"
        self.lines = f"_embedsql_lines_{dimensions}"
        self.wanted: set[str] = set()
        self.batches: list[pa.RecordBatch] = []
        self.refused: set[str] = set()
        con.create_function(
            self.vectors,
            self._vectors,
            [duckdb.sqltype("VARCHAR"), duckdb.sqltype("BLOB")],
            duckdb.sqltype(f"FLOAT[{dimensions}]"),
            type=duckdb.func.ARROW,
            null_handling=duckdb.func.SPECIAL,
            side_effects=False,
        )
        con.create_function(
            self.lines,
            self._lines,
            [duckdb.sqltype(t) for t in _COPIED_TYPES],
            duckdb.sqltype("BOOLEAN"),
            type=duckdb.func.ARROW,
            null_handling=duckdb.func.SPECIAL,
            side_effects=True,  # called once for each line, never left out
        )

    def _lines(
        self,
        custom_id: pa.Array,
        status: pa.Array,
        code: pa.Array,
        message: pa.Array,
        items: pa.Array,
        tokens: pa.Array,
        ok: pa.Array,
        base64: pa.Array,
        filename: pa.Array,
    ) -> pa.Array:
        columns = [custom_id, status, code, message, items, tokens, ok, base64, filename]
        columns = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in columns]
        wanted = self.wanted
        listed = np.fromiter((c in wanted for c in columns[0].to_pylist()), dtype=bool, count=len(columns[0]))
        copied = pc.and_(pc.and_(columns[6], columns[7]), arrays.booleans(listed))
        self.batches.append(pa.RecordBatch.from_arrays([*columns, copied], names=list(_COPIED)))
        return copied

    def _vectors(self, custom_ids: pa.Array | pa.ChunkedArray, packed: pa.Array | pa.ChunkedArray) -> pa.Array:
        if isinstance(packed, pa.ChunkedArray):
            packed = packed.combine_chunks()
        dimensions, width = self.dimensions, self.dimensions * 4
        lengths = _lengths(packed)
        if len(packed) and (lengths == width).all():
            _, offsets, data = packed.buffers()
            offset_type = np.int64 if pa.types.is_large_binary(packed.type) else np.int32
            start = int(np.frombuffer(offsets, offset_type)[packed.offset])
            matrix = np.frombuffer(data, "<f4", count=len(packed) * dimensions, offset=start).reshape(-1, dimensions)
        else:  # NULL or another length: those rows stay zeros, which are refused below
            matrix = np.zeros((len(packed), dimensions), np.float32)
            for i in np.flatnonzero(lengths == width).tolist():
                matrix[i] = np.frombuffer(packed[i].as_py(), "<f4")
        usable = np.isfinite(matrix).all(axis=1) & matrix.any(axis=1)
        if not usable.all():
            self.refused.update(np.asarray(custom_ids.to_pylist(), dtype=object)[~usable].tolist())
        return pa.FixedSizeListArray.from_arrays(arrays.float32s(matrix), dimensions)


def _base64_length(dimensions: int) -> int:
    """Characters of the base64 text of ``dimensions`` float32 values (with its padding)."""
    return 4 * -(-dimensions * 4 // 3)


def _files(paths: list[Path]) -> list[Path]:
    return [p for p in paths if p.exists() and p.stat().st_size > 0]


def _read(files: list[Path], embedding: str, *, filename: bool = False) -> str:
    file_list = "[" + ", ".join(_literal(str(p)) for p in files) + "]"
    return (
        f"read_json({file_list}, format = 'newline_delimited', columns = {_schema(embedding)}, "
        f"ignore_errors = true, filename = {str(filename).lower()})"
    )


@contextlib.contextmanager
def _reading(files: list[Path]) -> Iterator[None]:
    """DuckDB's errors while reading ``files``: the file's fault (``LoadError``), or out of memory."""
    try:
        yield
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


def _split(batch: pa.RecordBatch, dimensions: int) -> Results:
    """One batch of lines as vectors and failures. The usual batch (every line a success in one form)
    is decoded in place: filtering would copy its vectors, ~50 MB a batch at 1536-d, several times."""
    table = pa.Table.from_batches([batch])
    # A line that is not valid JSON comes back as a row of NULLs: its custom_id is unknown, so its
    # request counts as missing and is sent again.
    table = _where(table, pc.is_valid(table["custom_id"]))
    billed = _where(table, pc.is_valid(table["tokens"])).select(["custom_id", "tokens"])
    ok = table["ok"]
    is_packed, is_floats = pc.and_(ok, table["is_string"]), pc.and_(ok, table["is_list"])
    failures = line_failures(table, pc.invert(pc.or_(is_packed, is_floats)))
    ids, vectors = [], []
    for is_part, decode in ((is_packed, _from_base64), (is_floats, _from_floats)):
        part = _where(table, is_part)
        if part.num_rows:
            part_ids, part_vectors, wrong = decode(part, dimensions)
            ids.append(part_ids)
            vectors.append(part_vectors)
            failures += wrong
    if not ids:
        return Results(arrays.strings([]), np.zeros((0, dimensions), np.float32), failures, billed)
    all_ids = ids[0] if len(ids) == 1 else pa.concat_arrays(ids)
    matrix = vectors[0] if len(vectors) == 1 else np.concatenate(vectors)
    # A zero or non-finite vector has no direction: cosine similarity with it is NaN, and NaN sorts
    # first in ORDER BY ... DESC. Such a vector is a failure, not a result.
    bad = ~(np.isfinite(matrix).all(axis=1) & matrix.any(axis=1))
    if bad.any():
        for custom_id in all_ids.filter(arrays.booleans(bad)).to_pylist():
            failures.append(Failure(custom_id, 200, "invalid_vector", "the vector is zero or not finite"))
        keep = arrays.booleans(~bad)
        all_ids, matrix = all_ids.filter(keep), matrix[~bad]
    return Results(all_ids, matrix, failures, billed)


def line_failures(lines: pa.Table, failed: pa.ChunkedArray) -> list[Failure]:
    """A ``Failure`` for each of ``lines`` where ``failed`` is true: the service's own status, code and
    message where it gave them, else what the line lacks."""
    if not pc.any(failed).as_py():
        return []
    return [
        Failure(r["custom_id"], r["status"], r["code"] or "no_embedding", r["message"] or _why(r))
        for r in lines.filter(failed).select(["custom_id", "status", "code", "message", "items"]).to_pylist()
    ]


def _where(table: pa.Table, mask: pa.ChunkedArray) -> pa.Table:
    """The rows of ``table`` where ``mask`` (without NULLs) is true; ``table`` itself, not a copy, when
    that is every row, and no rows without looking at the columns when it is none."""
    kept = pc.sum(mask).as_py() or 0
    if kept == table.num_rows:
        return table
    if kept == 0:
        return table.slice(0, 0)
    return table.filter(mask, null_selection_behavior="drop")


def wrong_length(got: int, dimensions: int, *, unit: str = "dimensions") -> str:
    """Why a vector of ``got`` ``unit`` is refused for a job of ``dimensions``: the words every runner uses."""
    return (
        f"the server answered {got} {unit} for it, the job asked for {dimensions}; it embeds with another model "
        "or size: check --model and --dimensions"
    )


def _from_base64(part: pa.Table, dimensions: int) -> tuple[pa.Array, np.ndarray, list[Failure]]:
    lengths = _lengths(part["packed"])
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
    column = _one_chunk(part["packed"])
    if not len(column):
        return _one_chunk(part["custom_id"]), np.zeros((0, dimensions), np.float32), failures
    _, offsets, data = column.buffers()
    width = np.int64 if pa.types.is_large_binary(column.type) else np.int32
    start = np.frombuffer(offsets, width)[column.offset]
    matrix = np.frombuffer(data, "<f4", count=len(column) * dimensions, offset=int(start)).reshape(-1, dimensions)
    return _one_chunk(part["custom_id"]), matrix, failures


def _lengths(packed: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The byte length of each value of a binary array, 0 for NULL."""
    return np.where(arrays.mask(pc.is_valid(packed)), arrays.numbers(pc.binary_length(packed)), 0)


def _one_chunk(column: pa.ChunkedArray) -> pa.Array:
    """``column`` as one array: its only chunk as it is (``combine_chunks`` would copy it)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _from_floats(part: pa.Table, dimensions: int) -> tuple[pa.Array, np.ndarray, list[Failure]]:
    lengths = arrays.numbers(pc.list_value_length(part["floats"]))
    part, failures = _refuse_wrong(part, lengths != dimensions, lambda n: wrong_length(n, dimensions), lengths)
    floats = _one_chunk(part["floats"]).flatten()
    flat = arrays.numbers(floats)
    if floats.null_count:  # a null in the list: not a finite vector, refused with the rest of its kind
        flat = np.where(arrays.mask(pc.is_valid(floats)), flat, np.float32("nan"))
    return _one_chunk(part["custom_id"]), flat.astype(np.float32, copy=False).reshape(-1, dimensions), failures


def _refuse_wrong(
    part: pa.Table, wrong: np.ndarray, why: Callable[[int], str], lengths: np.ndarray
) -> tuple[pa.Table, list[Failure]]:
    """The lines of ``part`` whose vector has the right length, and a failure for each other one: a
    line of the wrong length fails alone, the rest of the file loads."""
    if not wrong.any():
        return part, []
    ids = part["custom_id"].filter(arrays.booleans(wrong)).to_pylist()
    failures = [Failure(c, 200, WRONG_LENGTH, why(n)) for c, n in zip(ids, lengths[wrong].tolist(), strict=True)]
    return part.filter(arrays.booleans(~wrong)), failures


def _why(row: dict[str, object]) -> str:
    if row["status"] is None:
        return "the line has neither a response nor an error"
    if row["items"] != 1:
        return f"expected one embedding in the response, got {row['items']}"
    return "the embedding is neither base64 nor a list of floats"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
