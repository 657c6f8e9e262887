"""Plan a job: snapshot key -> text hash, skip unusable texts, subtract the cache, write shards.

Everything row-sized runs inside DuckDB (hashing, dedup, the anti-join with the cache, rendering
request lines), and the query is read exactly once into a temporary table, so a query that is
slow or not deterministic is neither re-run nor seen twice with different rows.

A dry run counts every text's tokens (its price is the figure it exists for); a job to send
counts exactly only the texts that could be over the model's limit and a sample, and estimates
the rest (``token_estimate``): only those texts are read into Python.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import duckdb.func
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import arrays
from .cache import find_cache
from .config import size_bytes
from .duck import duck_message, literal, quote
from .errors import InputError, QueryError
from .events import EventHandler, Progress, ignore
from .ledger import Shard, disk_full
from .models import ModelChoice
from .periodic import every
from .shards import ShardLimits, ShardWriter
from .source import Query, blank_sql, invalid_utf8, text_expression
from .token_estimate import BUDGET_SHARE, TokenEstimate, sample_below
from .tokens import count_tokens, truncate

__all__ = ["Plan", "SnapshotColumns", "make_plan", "snapshot_columns"]

# Arrow batch size when streaming pending texts into shards: big enough to amortise Python work,
# small enough that a batch of long texts stays in the tens of MB.
_BATCH_ROWS = 20_000
# The most of the user's memory_limit that DuckDB may take while planning. Planning needs little
# (texts stream from the source table into shards; the one aggregate holds hashes): at 512MB the
# source table filled the whole buffer pool once a job outgrew it, so the peak grew with the rows
# (1M -> 3M short texts: 483 -> 762 MiB); at 256MB it stays flat (459 -> 513 MiB) and spills the
# rest to the temporary folder, with no change at 100k (100k texts of ~1.3 kB peaked 100 MiB lower).
_PLAN_MEMORY = "256MB"
# Seconds between two reports of DuckDB's progress through a planning statement.
_PROGRESS_EVERY = 1.0


@dataclass(frozen=True)
class SnapshotColumns:
    """embedsql's own columns in a job's rows snapshot (``embedsql."rows_<job>"``), beside the key
    columns under their own names: the text's hash (NULL when it is not sent), and why a row is not
    sent (NULL when it is)."""

    hash: str
    skip: str


def snapshot_columns(key_columns: Sequence[str]) -> SnapshotColumns:
    """The names of embedsql's own columns in the snapshot of a job keyed by ``key_columns``.

    A name is never one of the keys (compared as DuckDB does, ignoring case): it gets a number when
    it would be. Snapshots whose keys are named otherwise (all those of earlier versions) keep the
    plain names, so their jobs still resume.
    """
    taken = {k.lower() for k in key_columns}
    return SnapshotColumns(_free("__embedsql_hash", taken), _free("__embedsql_skip", taken))


def _free(name: str, taken: Iterable[str]) -> str:
    """``name``, numbered if need be so that it is none of ``taken`` (lower-case names)."""
    taken = set(taken)
    free, n = name, 0
    while free.lower() in taken:
        n += 1
        free = f"{name}_{n}"
    return free


@dataclass(frozen=True)
class Plan:
    """What a job will send: counts for the summary, and the shards written to disk."""

    total_rows: int
    skipped: dict[str, int]
    distinct_texts: int
    cached_texts: int
    tokens: int
    # Texts cut to the model's token limit (--on-long truncate).
    truncated: int
    shards: list[Shard]
    # Texts whose tokens are estimated in ``tokens`` and in the shards' (0: every count is exact).
    estimated_texts: int = 0


def make_plan(
    con: duckdb.DuckDBPyConnection,
    query: Query,
    *,
    job_id: str,
    rows_table: str,
    choice: ModelChoice,
    mode: str,
    directory: Path,
    limits: ShardLimits,
    on_long: str,
    exact_tokens: bool = True,
    memory_limit: str | None = None,
    on_event: EventHandler = ignore,
) -> Plan:
    """Snapshot the query into ``rows_table`` and write the texts the cache lacks into shards.

    Call inside a transaction: on any error nothing of the plan stays in the database. Progress
    goes to ``on_event``: stage "plan" is DuckDB's percent of the statement of a step (``step``
    names it), stage "shards" the texts written into shards of those to write. Without
    ``exact_tokens``, the tokens of a cl100k_base model's texts are estimated (see the module's
    docstring) and shards planned to a share of the token limit. ``memory_limit`` is the one ``con``
    was opened with (``ledger.connect``): planning runs under the lower of it and ``_PLAN_MEMORY``,
    and leaves it as it was.
    """
    with _planning_memory(con, memory_limit):
        snapshot = snapshot_columns(query.key_columns)
        # The planning table holds the keys under embedsql's own names (k1, k2, ...): no user name, not
        # even `rowid` or `n`, can stand for one of its columns. Only the snapshot gets the user's names.
        source = _Source(_free("_embedsql_source", (t.lower() for t in query.tables)), len(query.key_columns))
        user_keys = ", ".join(f"{quote(k)} AS {own}" for k, own in zip(query.key_columns, source.keys, strict=True))
        step = _Steps(con, on_event)
        with _text_hash_function(con) as text_hash, step("reading the query"):
            try:
                con.execute(
                    f"""CREATE OR REPLACE TEMP TABLE {source.table} AS
                    SELECT {source.key_list}, skip,
                           CASE WHEN skip IS NULL THEN {_hash_sql("text", text_hash)} END AS hash,
                           CASE WHEN skip IS NULL THEN text END AS text
                    FROM (
                        SELECT {source.key_list}, text,
                               CASE WHEN bad THEN 'invalid UTF-8'
                                    WHEN text IS NULL THEN 'NULL text'
                                    WHEN {blank_sql("text")} THEN 'empty text' END AS skip
                        FROM (SELECT {user_keys}, {text_expression(query)} AS text, {invalid_utf8(query)} AS bad
                              FROM (\n{query.sql}\n))
                    )"""
                )
            except duckdb.OutOfMemoryException:
                raise  # the memory limit's, not the query's: the pipeline says which setting gives more
            except duckdb.Error as e:
                if disk_full(e):
                    raise  # the disk's, not the query's: the transaction around planning says so
                raise QueryError(f"the query failed: {duck_message(e)} Check the query and the data it reads.") from e
        with step("checking the keys"):
            total = _scalar(con, f"SELECT count(*) FROM {source.table}")
            _check_keys(con, query, source, total, mode)
        with step("snapshotting the rows"):
            snapshot_keys = ", ".join(
                f"{own} AS {quote(k)}" for k, own in zip(query.key_columns, source.keys, strict=True)
            )
            con.execute(
                f"CREATE TABLE {rows_table} AS SELECT {snapshot_keys}, hash AS {quote(snapshot.hash)}, "
                f"skip AS {quote(snapshot.skip)} FROM {source.table}"
            )
        with step("looking up the cache"):
            by_reason = f"SELECT skip, count(*) FROM {source.table} WHERE skip IS NOT NULL GROUP BY 1 ORDER BY 1"
            skipped = dict(con.execute(by_reason).fetchall())
            distinct = _scalar(con, f"SELECT count(DISTINCT hash) FROM {source.table}")
            cache = find_cache(con, choice.model.name, choice.dimensions)
            if cache is None:
                cached, unseen = 0, ""
            else:
                unseen = f"AND hash NOT IN (SELECT text_hash FROM {cache})"
                cached = _scalar(
                    con,
                    f"SELECT count(DISTINCT hash) FROM {source.table} WHERE hash IN (SELECT text_hash FROM {cache})",
                )

        # One row per distinct text the cache lacks. Deduplicated on (hash, rowid) alone and joined back
        # for the text, so that no aggregate or sort ever holds the texts themselves: those stream from
        # the snapshot into the shards (1M texts of ~1 kB planned within DuckDB's 512MB). Shards hold
        # their lines in no particular order; nothing depends on it. Texts come to Python only to be
        # counted: all of them for exact counts, else those longer than the limit in bytes and a sample.
        # (A job small enough that its sample is all of it is counted exactly.)
        below = None if exact_tokens or choice.model.tokenizer != "cl100k_base" else sample_below(distinct - cached)
        estimate = None if below is None else TokenEstimate(choice.model.max_tokens)
        text = "s.text"
        if below is not None:
            text = f"CASE WHEN strlen(s.text) > {int(choice.model.max_tokens)} OR s.hash < '{below}' THEN s.text END"
            if limits.tokens is not None:
                limits = dataclasses.replace(limits, tokens=max(1, int(limits.tokens * BUDGET_SHARE)))
        pending = f"""
            SELECT s.hash AS custom_id, {text} AS text, CAST(strlen(s.text) AS BIGINT) AS bytes,
                   {_request_line("s.hash", "s.text", choice)} AS line
            FROM (SELECT min(rowid) AS first FROM {source.table} WHERE hash IS NOT NULL {unseen} GROUP BY hash) AS p
            JOIN {source.table} AS s ON s.rowid = p.first
        """
        long_texts = _LongTexts(con, choice, on_long, estimate)
        writer = ShardWriter(directory, job_id=job_id, limits=limits, shape=long_texts.shape)
        reader = con.sql(pending).to_arrow_reader(_BATCH_ROWS)
        try:
            shards = writer.write_all(_counted(_first_under(step, reader), distinct - cached, on_event))
        except _TooLong as e:
            reader.close()  # the connection serves no other query while a result is open
            raise long_texts.error(con, source, e) from None
        finally:
            reader.close()
        if long_texts.skipped:
            hash_, skip = quote(snapshot.hash), quote(snapshot.skip)
            con.execute(
                f"UPDATE {rows_table} SET {skip} = 'text too long', {hash_} = NULL WHERE {hash_} IN (SELECT unnest(?))",
                [long_texts.skipped],
            )
            too_long = _scalar(con, f"SELECT count(*) FROM {rows_table} WHERE {skip} = 'text too long'")
            skipped = dict(sorted({**skipped, "text too long": too_long}.items()))
            distinct -= len(long_texts.skipped)
        con.execute(f"DROP TABLE {source.table}")
        return Plan(
            total_rows=total,
            skipped=skipped,
            distinct_texts=distinct,
            cached_texts=cached,
            tokens=sum(s.tokens for s in shards),
            truncated=long_texts.truncated,
            shards=shards,
            estimated_texts=0 if estimate is None else estimate.estimated,
        )


@contextlib.contextmanager
def _planning_memory(con: duckdb.DuckDBPyConnection, memory_limit: str | None) -> Iterator[None]:
    """DuckDB's memory_limit at ``_PLAN_MEMORY`` while planning, when ``memory_limit`` is higher."""
    limit = None if memory_limit is None else size_bytes(memory_limit)
    plan_limit = size_bytes(_PLAN_MEMORY)
    if memory_limit is None or limit is None or plan_limit is None or limit <= plan_limit:
        yield
        return
    con.execute(f"SET memory_limit = {literal(_PLAN_MEMORY)}")
    try:
        yield
    finally:
        # On a cursor: after a failed statement ``con``'s transaction takes no statement until it is rolled
        # back, which would hide the failure behind DuckDB's "transaction is aborted". The limit is the
        # database's, whichever connection sets it.
        cursor = con.cursor()
        try:
            cursor.execute(f"SET memory_limit = {literal(memory_limit)}")
        finally:
            cursor.close()


# Texts longer than this many bytes are hashed in Python, the others by DuckDB (see ``_hash_sql``).
_PYTHON_HASH_BYTES = 200
# The SQL function that hashes texts in Python while planning: a name no user function has, numbered
# per plan (see ``_text_hash_function``).
_HASH_FUNCTION = "_embedsql_text_hash"
_plans = itertools.count(1)


def _hash_sql(text: str, function: str) -> str:
    """SQL for the cache key of the non-NULL text ``text``: ``substr(sha256(text), 1, 32)``, byte for byte.

    DuckDB's sha256 ran at ~150 MB/s where hashlib runs at ~500 MB/s, and hashing was a third of
    planning 100k texts of ~1.3 kB; but a call into Python costs more than DuckDB's hash of a short
    text, so only the long ones go to Python (CASE hands the function only the rows it selects).
    """
    return (
        f"CASE WHEN strlen({text}) > {_PYTHON_HASH_BYTES} THEN {function}({text}) "
        f"ELSE substr(sha256({text}), 1, 32) END"
    )


@contextlib.contextmanager
def _text_hash_function(con: duckdb.DuckDBPyConnection) -> Iterator[str]:
    """The name of a function that hashes texts (``_text_hashes``), registered on ``con`` while planning.

    Removed after planning. When planning failed, ``con``'s transaction takes no statement until it is
    rolled back, and the rollback drops the function with everything else of the plan; DuckDB's Python
    side still knows the name then, so each plan registers a name of its own.
    """
    name = f"{_HASH_FUNCTION}_{next(_plans)}"
    con.create_function(
        name,
        _text_hashes,
        [duckdb.sqltype("VARCHAR")],
        duckdb.sqltype("VARCHAR"),
        type=duckdb.func.ARROW,
        side_effects=False,
    )
    try:
        yield name
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.remove_function(name)
        raise
    con.remove_function(name)


def _text_hashes(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The first 32 hex digits of the sha256 of each text's UTF-8 bytes (NULL for NULL), read
    straight from the array's buffers: no Python string is made of any text. The answer is laid out
    in buffers too (every hash is 32 characters): ``pa.array`` of a list would first import pandas,
    when it is installed (~0.5 s of the first plan), to ask whether the list is a pandas Series."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts.type not in (pa.string(), pa.large_string()):
        texts = texts.cast(pa.large_string())
    _, offsets, data = texts.buffers()
    width = np.int32 if texts.type == pa.string() else np.int64
    ends = np.frombuffer(offsets, dtype=width)[texts.offset : texts.offset + len(texts) + 1].tolist()
    view = memoryview(data) if data is not None else memoryview(b"")
    sha256 = hashlib.sha256
    digits = "".join([sha256(view[a:b]).hexdigest()[:32] for a, b in itertools.pairwise(ends)]).encode("ascii")
    starts = pa.py_buffer(np.arange(0, 32 * (len(texts) + 1), 32, dtype=np.int32).tobytes())
    hashes = pa.Array.from_buffers(pa.string(), len(texts), [None, starts, pa.py_buffer(digits)])
    if texts.null_count:
        hashes = pc.if_else(texts.is_valid(), hashes, pa.nulls(len(texts), pa.string()))
    return hashes


class _Steps:
    """Names the step planning is in, and reports DuckDB's percent through its statements (stage
    "plan") from a thread that asks DuckDB every ``_PROGRESS_EVERY`` seconds."""

    def __init__(self, con: duckdb.DuckDBPyConnection, on_event: EventHandler) -> None:
        self.con = con
        self.on_event = on_event
        con.execute("SET enable_progress_bar = true")
        con.execute("SET enable_progress_bar_print = false")  # measured, never drawn

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        # Said at once: DuckDB knows no percent for the first second or so of a statement, and steps
        # of under a second each add up to seconds at millions of rows.
        self.on_event(Progress("plan", 0, 100, step=name))

        def report() -> None:
            done = self.con.query_progress()
            if done >= 0:
                self.on_event(Progress("plan", min(int(done), 99), 100, step=name))

        with every(_PROGRESS_EVERY, report, name="embedsql-plan-progress"):
            yield


def _first_under(step: _Steps, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """The batches of ``reader``, the first one under a step of its own: DuckDB deduplicates the
    texts before it yields any (seconds at millions of rows)."""
    with step("finding the texts to send"):
        first = next(iter(reader), None)
    if first is None:
        return
    yield first
    yield from reader


def _counted(batches: Iterable[pa.RecordBatch], total: int, on_event: EventHandler) -> Iterator[pa.RecordBatch]:
    """``batches``, reporting the texts written into shards (stage "shards") after each."""
    done = 0
    for batch in batches:
        yield batch
        done += batch.num_rows
        on_event(Progress("shards", done, total))


@dataclass(frozen=True)
class _Source:
    """The temporary table a job is planned from: the keys as k1, k2, ..., skip, hash and text."""

    table: str
    width: int

    @property
    def keys(self) -> list[str]:
        return [f"k{i}" for i in range(1, self.width + 1)]

    @property
    def key_list(self) -> str:
        return ", ".join(self.keys)


class _TooLong(Exception):
    def __init__(self, count: int, custom_id: str, tokens: int) -> None:
        super().__init__(custom_id)
        self.count, self.custom_id, self.tokens = count, custom_id, tokens


class _LongTexts:
    """Applies the --on-long policy to texts over the model's token limit, batch by batch."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, choice: ModelChoice, policy: str, estimate: TokenEstimate | None
    ) -> None:
        self.con = con
        self.choice = choice
        self.model = choice.model
        self.policy = policy
        self.estimate = estimate
        self.truncated = 0
        self.skipped: list[str] = []

    def shape(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, np.ndarray]:
        column = batch.column("text")
        if self.estimate is None:
            counts = count_tokens(self.model, column.to_pylist())
        else:
            # The texts left out (NULL) are estimated: at most their bytes, within the limit.
            texts = column.to_pylist()
            counted = np.flatnonzero(np.fromiter((t is not None for t in texts), dtype=bool, count=len(texts)))
            exact = count_tokens(self.model, [texts[i] for i in counted])
            counts = self.estimate.counts(arrays.numbers(batch.column("bytes")), counted, exact)
        long = np.flatnonzero(counts > self.model.max_tokens)
        if len(long) == 0:
            return batch, counts
        texts = column.to_pylist()
        ids = batch.column("custom_id")
        if self.policy == "error":
            first = int(long[np.argmax(counts[long])])
            raise _TooLong(len(long), ids[first].as_py(), int(counts[first]))
        if self.policy == "skip":
            self.skipped += [ids[int(i)].as_py() for i in long]
            keep = np.ones(len(texts), dtype=bool)
            keep[long] = False
            return batch.filter(arrays.booleans(keep)), counts[keep]
        self.truncated += len(long)
        if self.model.tokenizer != "cl100k_base":
            return batch, np.minimum(counts, self.model.max_tokens)  # the model cuts its own input
        lines = batch.column("line").to_pylist()
        cut = _render_lines(
            self.con,
            [ids[int(i)].as_py() for i in long],
            [truncate(self.model, texts[int(i)]) for i in long],
            self.choice,
        )
        for i, line in zip(long, cut, strict=True):
            lines[int(i)] = line
        counts = np.minimum(counts, self.model.max_tokens)
        column = arrays.strings(lines).cast(batch.column("line").type)
        return batch.set_column(batch.schema.get_field_index("line"), "line", column), counts

    def error(self, con: duckdb.DuckDBPyConnection, source: _Source, e: _TooLong) -> InputError:
        row = con.execute(
            f"SELECT {source.key_list} FROM {source.table} WHERE hash = ? LIMIT 1", [e.custom_id]
        ).fetchall()
        key = _show(row[0]) if row else e.custom_id
        return InputError(
            f"at least {e.count:,} text(s) are longer than the {self.model.max_tokens:,} tokens {self.model.name} "
            f"accepts, e.g. the text of key {key} ({e.tokens:,} tokens). Shorten them in the query, or pass "
            f"--on-long truncate (cut at {self.model.max_tokens:,} tokens) or --on-long skip (leave them out)."
        )


def _request_line(custom_id: str, text: str, choice: ModelChoice) -> str:
    """SQL for the Batch API request line (with its newline) of the text ``text`` under ``custom_id``."""
    # base64 vectors are ~4x smaller to download than float lists; `dimensions` only when it shortens.
    rest: dict[str, object] = {"model": choice.model.name, "encoding_format": "base64"}
    if choice.dimensions != choice.model.dimensions:
        rest["dimensions"] = int(choice.dimensions)
    # The line is the constant JSON around two JSON strings: to_json of a struct per row cost 3-4x
    # the concatenation for short texts (0.15-0.5 s against 0.04-0.07 s for 100k), for the same bytes.
    head = '{"custom_id":'
    middle = ',"method":"POST","url":"/v1/embeddings","body":{"input":'
    tail = "," + json.dumps(rest, ensure_ascii=False, separators=(",", ":"))[1:] + "}"
    return (
        f"concat({literal(head)}, to_json({custom_id}), {literal(middle)}, to_json({text}), {literal(tail)}, chr(10))"
    )


def _render_lines(
    con: duckdb.DuckDBPyConnection, custom_ids: list[str], texts: list[str], choice: ModelChoice
) -> list[str]:
    """Request lines of ``texts``, rendered by the same SQL as every other line, in order."""
    # A cursor: ``con`` is busy streaming the pending texts.
    cursor = con.cursor()
    try:
        cursor.register(
            "_embedsql_cut",
            arrays.table(
                {
                    "i": arrays.int64s(range(len(texts))),
                    "custom_id": arrays.strings(custom_ids),
                    "text": arrays.strings(texts),
                }
            ),
        )
        rows = cursor.execute(f"SELECT {_request_line('custom_id', 'text', choice)} FROM _embedsql_cut ORDER BY i")
        return [row[0] for row in rows.fetchall()]
    finally:
        cursor.close()


def _check_keys(con: duckdb.DuckDBPyConnection, query: Query, source: _Source, total: int, mode: str) -> None:
    shown = ", ".join(query.key_columns)
    if total == 0 and mode == "replace":
        raise InputError(
            "the query returned no rows; replacing the target with an empty table is almost certainly "
            "a mistake. Check the query's WHERE clause, or use --mode upsert to add nothing."
        )
    any_null = " OR ".join(f"{k} IS NULL" for k in source.keys)
    nulls = _scalar(con, f"SELECT count(*) FROM {source.table} WHERE {any_null}")
    if nulls:
        raise InputError(
            f"the key ({shown}) is NULL in {nulls:,} of {total:,} rows; every row needs a key to join "
            f"its vector back. Filter them out (WHERE ... IS NOT NULL) or choose another --key."
        )
    dupes = con.execute(
        f"SELECT {source.key_list}, count(*) AS n, count(*) OVER () AS keys FROM {source.table} GROUP BY ALL "
        f"HAVING n > 1 ORDER BY n DESC, {source.key_list} LIMIT 3"
    ).fetchall()
    if dupes:
        width = source.width
        examples = ", ".join(f"{_show(row[:width])} ({row[width]} rows)" for row in dupes)
        raise InputError(
            f"the key ({shown}) is not unique: {dupes[0][-1]:,} values appear more than once, e.g. {examples}. "
            "Make the key unique in the query, or name unique column(s) with --key."
        )


def _show(values: tuple[object, ...]) -> str:
    shown = [repr(v) if isinstance(v, str) else str(v) for v in values]
    return shown[0] if len(shown) == 1 else "(" + ", ".join(shown) + ")"


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchall()[0][0])
