"""Loading a job's results: vectors into the cache, failures into the errors table, transient failures
into new shards for the next attempt, and each shard marked loaded, in the same transaction.

Shards are loaded together, a transaction per ``LOAD_LINES`` lines or more. DuckDB copies the
vectors of the usual answer (each line once, every vector base64 of the job's size) into the cache by
itself, one statement for the transaction that brings only the lines without their vectors into
Python; any other answer is taken out again, read into Python a batch of lines at a time and checked
line by line. Either way memory grows neither with the size of the files nor with the job, and DuckDB
writes most vectors once, straight into the database file, rather than through its log and again at
a checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import arrays, ledger
from .cache import ensure_cache, insert_new_vectors, remove_vectors
from .failpoints import failpoint
from .models import recorded_choice
from .results import WRONG_LENGTH, Copier, Failure, copy_vectors, iter_results, line_failures
from .runners.failures import NOT_SENT
from .shards import ShardLimits, ShardWriter
from .store import JobStore
from .tokens import count_tokens

__all__ = ["LOAD_LINES", "UNCOUNTED", "about_the_text", "is_transient", "load_shards", "uses_attempt"]

# Lines loaded in one transaction, at least: several row groups (``ledger.ROW_GROUP_ROWS``), which
# DuckDB writes straight into the database file while the transaction runs; only the rows of the
# last, partial group go through its write-ahead log.
LOAD_LINES = 122_880
# Lines the service did not run (its capacity, its cancel, its lost lines): nothing of the line's own
# failed, so they are sent again as often as it takes and use up no attempt of their texts.
UNCOUNTED = frozenset({"batch_expired", "batch_cancelled", "missing", NOT_SENT})


def is_transient(failure: Failure) -> bool:
    """Whether another attempt may succeed: the service did not run the line, or failed on it (5xx,
    429, a vector that is zero, not finite or of another length). The rest (400, 422: the input itself)
    fails for good at once. The one place that decides it, for every runner."""
    if failure.code in UNCOUNTED or failure.status is None:
        return True
    return failure.status in (408, 409, 429) or failure.status >= 500 or 200 <= failure.status < 300


def uses_attempt(failure: Failure) -> bool:
    """Whether ``failure`` uses up one of its text's ``max_attempts``: only a failure of the text's own line."""
    return failure.code not in UNCOUNTED


def about_the_text(failure: Failure) -> bool:
    """Whether the failure is about the text itself (the server refused that input), so that fixing the
    text is the remedy; otherwise the server failed on it, and running again later is."""
    return not is_transient(failure)


def load_shards(store: JobStore, shards: Sequence[ledger.Shard]) -> list[ledger.Shard]:
    """Load the result files of ``shards`` (each shard's effects in the same transaction as its "loaded").

    Returns all shards of the job as they are afterwards, retry shards included (read on the same
    connection: every connection opens the database again, ~30 ms).
    """
    groups: list[list[ledger.Shard]] = [[]]
    for shard in shards:
        if sum(s.lines for s in groups[-1]) >= LOAD_LINES:
            groups.append([])
        groups[-1].append(shard)
    with store.connection() as con:
        copier = Copier(con, store.job.dimensions)
        for group in filter(None, groups):
            with ledger.transaction(con, write_behind=store.db):
                cache = ensure_cache(con, store.job.model, store.job.dimensions)
                _load_group(store, con, cache, group, copier)
        return ledger.job_shards(con, store.job.job_id)


@dataclass
class _Answers:
    """What a shard's result files said: the custom_ids with a vector now in the cache, every custom_id
    answered, the first failure of each line that failed, and the prompt tokens billed for each line."""

    embedded: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)
    found: dict[str, Failure] = field(default_factory=dict)
    billed: dict[str, int] = field(default_factory=dict)


def _load_group(
    store: JobStore, con: duckdb.DuckDBPyConnection, cache: str, group: list[ledger.Shard], copier: Copier
) -> None:
    """Load the shards of one transaction: the usual answers copied (``_copy_answers``), any other read
    line by line (``_read_answers``); then each shard recorded."""
    ids = {shard.shard: _custom_ids(con, store.path(shard)) for shard in group}
    sent = {number: set(shard_ids.to_pylist()) for number, shard_ids in ids.items()}
    # A text in two shards of the group (never so in a job of embedsql's own) is left to the reading
    # that adds vectors one batch at a time, checking the cache as it goes.
    apart = sum(map(len, sent.values())) == len(set().union(*sent.values()))
    answers = _copy_answers(store, con, cache, group, ids, sent, copier) if apart else {}
    for shard in group:
        mine = answers.get(shard.shard)
        if mine is None:
            held = _cached(con, cache, ids[shard.shard])  # what earlier shards of the group stored counts
            mine = _read_answers(con, list(store.outputs(shard)), cache, sent[shard.shard], held, store.job.dimensions)
        _record(store, con, shard, sent[shard.shard], mine)


def _copy_answers(
    store: JobStore,
    con: duckdb.DuckDBPyConnection,
    cache: str,
    group: list[ledger.Shard],
    ids: dict[int, pa.ChunkedArray],
    sent: dict[int, set[str]],
    copier: Copier,
) -> dict[int, _Answers]:
    """The vectors of every file of the group copied into the cache by one statement (two statements of
    50,000 1536-d lines each took ~1.3 s longer than one of 100,000), but those the cache holds already
    (another job stored them meanwhile), and what each shard's files said. When a shard's answer is
    not the usual one (``_usual_answers``), the copy is taken out again and nothing is returned: each
    shard is then read line by line."""
    files = {str(path): shard.shard for shard in group for path in store.outputs(shard)}
    wanted = set().union(*(sent[s.shard] - _cached(con, cache, ids[s.shard]) for s in group))
    copied = copy_vectors(con, [Path(f) for f in files], into=cache, wanted=wanted, copier=copier)
    lines = copied.lines
    answers: dict[int, _Answers] = {}
    for shard in group:
        own = arrays.strings([f for f, number in files.items() if number == shard.shard])
        usual = _usual_answers(lines.filter(pc.is_in(lines["filename"], value_set=own)), sent[shard.shard])
        if usual is None:  # lines twice, lines nobody sent, float lists: take the copy out again
            remove_vectors(con, cache, set(pc.filter(lines["custom_id"], lines["copied"]).to_pylist()))
            return {}
        answers[shard.shard] = usual
    # Vectors zero, not finite or not base64: the reading that checks every line says why.
    for shard in group:
        usual = answers[shard.shard]
        if refused := usual.embedded & copied.refused:
            usual.embedded -= refused
            for failure in _failures(con, list(store.outputs(shard)), store.job.dimensions, refused):
                usual.found[failure.custom_id] = failure
    return answers


def _record(
    store: JobStore, con: duckdb.DuckDBPyConnection, shard: ledger.Shard, sent: set[str], answers: _Answers
) -> None:
    """Record what became of each line of ``shard``: its failures, the lines to send again, the shard loaded."""
    job = store.job
    embedded, answered, found, billed = answers.embedded, answers.answered, answers.found, answers.billed
    failures = [f for c, f in sorted(found.items()) if c not in embedded]
    failures += [
        Failure(c, None, "missing", "the line is in neither the output nor the error file")
        for c in sorted(sent - answered)
    ]
    failpoint("load")
    # Inputs a failing service never got (the sync runner stopped) are sent again as they were: nothing of
    # theirs failed, so they use up no attempt and get no row in embedsql.errors.
    not_sent = {f.custom_id for f in failures if f.code == NOT_SENT} if store.max_attempts > 0 else set()
    failures = [f for f in failures if f.code != NOT_SENT]
    # Every vector of a first answer of the wrong length: the server embeds with another model or size, and
    # asking again would only pay for the same answer. (A retry shard holds only lines that failed before.)
    wrong_size = (
        shard.attempt == 1 and not embedded and bool(failures) and all(f.code == WRONG_LENGTH for f in failures)
    )
    retry_ids = set() if wrong_size else _to_send_again(con, store, failures)
    if failures:
        con.executemany(
            "INSERT INTO embedsql.errors VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    job.job_id,
                    shard.shard,
                    shard.attempt,
                    f.custom_id,
                    f.status,
                    f.code,
                    f.message,
                    f.custom_id not in retry_ids,
                ]
                for f in failures
            ],
        )
    if retry_ids or not_sent:
        _write_retry(store, con, shard, retry_ids | not_sent)
    ledger.update_shard(
        con,
        job.job_id,
        shard.shard,
        status=ledger.ShardStatus.LOADED,
        embedded=len(embedded),
        failed=len(failures) - len(retry_ids),
        billed_tokens=sum(billed.values()),
    )


def _usual_answers(lines: pa.Table, sent: set[str]) -> _Answers | None:
    """A shard's answer from its ``lines`` (``Copied.lines`` of its files) when it is the usual one: each
    line of the shard answered once, every success in base64 of the job's size, so that the cache holds
    each of its vectors unless the copy refused it. None for any other answer, which ``_read_answers``
    takes line by line."""
    # A line that is not JSON has no custom_id: its request counts as missing and is sent again.
    lines = lines.filter(pc.is_valid(lines["custom_id"]))
    ids = lines["custom_id"]
    if pc.count_distinct(ids).as_py() != len(ids):
        return None  # a line answered twice: the first answer counts
    answered = set(ids.to_pylist())
    if not answered <= sent:
        return None  # lines the shard did not send: ignored
    ok = lines["ok"]
    if not pc.all(pc.or_(pc.invert(ok), lines["base64"]), min_count=0).as_py():
        return None  # float lists, vectors of another length, other values
    billed = pc.filter(lines, pc.is_valid(lines["tokens"]))
    return _Answers(
        embedded=answered.copy() if pc.all(ok).as_py() else set(pc.filter(ids, ok).to_pylist()),
        answered=answered,
        found={f.custom_id: f for f in line_failures(lines, pc.invert(ok))},
        billed=dict(zip(billed["custom_id"].to_pylist(), billed["tokens"].to_pylist(), strict=True)),
    )


def _failures(
    con: duckdb.DuckDBPyConnection, paths: list[Path], dimensions: int, custom_ids: set[str]
) -> list[Failure]:
    """The failures of the lines of ``custom_ids``, as the reading that checks every line finds them. A
    line it finds nothing wrong with, which ``copy_vectors`` refused all the same, fails too (and is sent
    again): no line leaves the load neither embedded nor failed."""
    reader = con.cursor()
    try:
        found = {
            f.custom_id: f
            for results in iter_results(reader, paths, dimensions=dimensions)
            for f in results.failures
            if f.custom_id in custom_ids
        }
    finally:
        reader.close()
    unread = sorted(custom_ids - found.keys())
    return [*found.values(), *(Failure(c, 200, "no_embedding", "the embedding could not be read") for c in unread)]


def _read_answers(
    con: duckdb.DuckDBPyConnection, paths: list[Path], cache: str, sent: set[str], known: set[str], dimensions: int
) -> _Answers:
    """Any answer, read into Python a batch of lines at a time and checked line by line: a line the
    shard did not send is ignored, a line answered twice counts once (its first answer)."""
    answers = _Answers()
    reader = con.cursor()  # reads the files while `con` writes the cache, batch by batch
    try:
        for results in iter_results(reader, paths, dimensions=dimensions):
            ids, vectors = _only(results.custom_ids, results.vectors, sent - answers.embedded)
            known |= insert_new_vectors(con, cache, ids, vectors, known=known)
            answers.embedded.update(ids.to_pylist())
            answers.answered.update(ids.to_pylist())
            answers.answered.update(f.custom_id for f in results.failures)
            for f in results.failures:
                if f.custom_id in sent:
                    answers.found.setdefault(f.custom_id, f)
            # Each line of the shard billed once, at its first answer, whatever became of its vector.
            for custom_id, tokens in zip(*results.billed.to_pydict().values(), strict=True):
                if custom_id in sent:
                    answers.billed.setdefault(custom_id, tokens)
    finally:
        reader.close()
    return answers


def _to_send_again(con: duckdb.DuckDBPyConnection, store: JobStore, failures: list[Failure]) -> set[str]:
    """The custom_ids of ``failures`` to send again: every line the service did not run, and each line
    that failed on its own while its text has attempts left (attempts count per text, over the job)."""
    if store.max_attempts <= 0:  # a cancelled job sends nothing more
        return set()
    transient = [f for f in failures if is_transient(f)]
    counted = [f.custom_id for f in transient if uses_attempt(f)]
    used = _attempts_used(con, store.job.job_id, counted) if counted else {}
    return {f.custom_id for f in transient if not uses_attempt(f) or used.get(f.custom_id, 0) + 1 < store.max_attempts}


def _attempts_used(con: duckdb.DuckDBPyConnection, job_id: str, custom_ids: list[str]) -> dict[str, int]:
    """How many attempts each of ``custom_ids`` used up in this job before, from its earlier failures."""
    con.register("_embedsql_failed", arrays.table({"custom_id": arrays.strings(custom_ids)}))
    try:
        rows = con.execute(
            "SELECT custom_id, status, code, message FROM embedsql.errors WHERE job_id = ? "
            "AND custom_id IN (SELECT custom_id FROM _embedsql_failed)",
            [job_id],
        ).fetchall()
    finally:
        con.unregister("_embedsql_failed")
    used: dict[str, int] = {}
    for row in rows:
        if uses_attempt(Failure(*row)):
            used[row[0]] = used.get(row[0], 0) + 1
    return used


def _write_retry(store: JobStore, con: duckdb.DuckDBPyConnection, shard: ledger.Shard, custom_ids: set[str]) -> None:
    """Copy the request lines of ``custom_ids`` into a shard of the next attempt and record it."""
    job = store.job
    number = 1 + int(
        con.execute("SELECT max(shard) FROM embedsql.shards WHERE job_id = ?", [job.job_id]).fetchall()[0][0]
    )
    # The lines exactly as they were sent (truncation included), from the shard file.
    lines, texts = [], []
    with open(store.path(shard), "rb") as source:  # lines end at b"\n" only, as the shard was written
        for raw in source:
            line = raw.decode("utf-8")
            request = json.loads(line)
            if request["custom_id"] in custom_ids:
                lines.append(line)
                texts.append(request["body"]["input"])
    batch = pa.RecordBatch.from_arrays([arrays.strings(texts), arrays.strings(lines)], names=["text", "line"])
    model = recorded_choice(job.model, job.dimensions).model
    # A part of a shard fits every limit the whole shard fitted.
    limits = ShardLimits(lines=max(1, shard.lines), bytes=max(1, shard.bytes))
    writer = ShardWriter(
        store.directory,
        job_id=job.job_id,
        limits=limits,
        shape=lambda batch: (batch, count_tokens(model, batch.column("text").to_pylist())),
        first_shard=number,
        attempt=shard.attempt + 1,
    )
    ledger.insert_shards(con, writer.write_all([batch]))


def _cached(con: duckdb.DuckDBPyConnection, cache: str, sent: pa.ChunkedArray) -> set[str]:
    """Which of the custom_ids ``sent`` ``cache`` holds (one scan of its ids, the hash table built on
    ``sent``)."""
    con.register("_embedsql_sent", arrays.table({"custom_id": sent}))
    try:
        rows = con.execute(
            f"SELECT text_hash FROM {cache} WHERE text_hash IN (SELECT custom_id FROM _embedsql_sent)"
        ).fetchall()
    finally:
        con.unregister("_embedsql_sent")
    return {r[0] for r in rows}


# Every field of a request line: DuckDB's reader took ~3x as long to pick custom_id alone out of lines
# whose other fields it was not told of.
_REQUEST_LINE = (
    "{'custom_id': 'VARCHAR', 'method': 'VARCHAR', 'url': 'VARCHAR', "
    "'body': 'STRUCT(input VARCHAR, model VARCHAR, encoding_format VARCHAR, dimensions INTEGER)'}"
)


def _custom_ids(con: duckdb.DuckDBPyConnection, path: Path) -> pa.ChunkedArray:
    """The custom_ids of the request lines in the shard file ``path``."""
    return con.sql(
        f"SELECT custom_id FROM read_json($path, format = 'newline_delimited', columns = {_REQUEST_LINE})",
        params={"path": str(path)},
    ).to_arrow_table()["custom_id"]


def _only(ids: pa.Array, vectors: np.ndarray, sent: set[str]) -> tuple[pa.Array, np.ndarray]:
    """Keep the results of lines this shard sent (a server may answer for lines it was not given)."""
    keep = arrays.mask(pc.is_in(ids, value_set=arrays.strings(sent)))
    if keep.all():
        return ids, vectors  # the usual case: no copy of the vectors
    return ids.filter(arrays.booleans(keep)), vectors[keep]
