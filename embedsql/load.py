"""Loading a job's results: vectors into the cache, failures into the errors table, transient failures
into new shards for the next attempt, and each shard marked loaded, in the same transaction.

Results are read a batch of lines at a time and shards are loaded together, a transaction per
``LOAD_LINES`` lines or more, so that memory grows neither with the size of the files nor with the
job, and DuckDB writes the vectors straight into the database file rather than through its log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import ledger
from .cache import ensure_cache, insert_new_vectors
from .failpoints import failpoint
from .models import recorded_choice
from .results import Failure, iter_results
from .runners.failures import NOT_SENT
from .shards import ShardLimits, ShardWriter
from .store import JobStore
from .tokens import count_tokens

__all__ = ["LOAD_LINES", "is_transient", "load_shards"]

# Lines loaded in one transaction, at least: a DuckDB row group, the size from which DuckDB writes a
# transaction's new rows straight into the database file instead of through its write-ahead log.
LOAD_LINES = 122_880
# Failures that another attempt of the same line cannot fix.
_PERMANENT_CODES = {"invalid_vector", "batch_failed"}


def is_transient(failure: Failure) -> bool:
    """Whether another attempt may succeed: server errors, rate limits, expiry, cancel, lost lines."""
    if failure.code in _PERMANENT_CODES:
        return False
    if failure.status is None:  # expired, cancelled, missing
        return True
    return failure.status in (408, 409, 429) or failure.status >= 500 or 200 <= failure.status < 300


def load_shards(
    store: JobStore, shards: Sequence[ledger.Shard], *, batch_failures: Mapping[int, tuple[str, str]] | None = None
) -> list[ledger.Shard]:
    """Load the result files of ``shards`` (each shard's effects in the same transaction as its "loaded").

    ``batch_failures`` (shard number -> code, message) fails every line of a shard whose batch
    failed as a whole. Returns all shards of the job as they are afterwards, retry shards included
    (read on the same connection: every connection opens the database again, ~30 ms).
    """
    failed_batches = batch_failures or {}
    groups: list[list[ledger.Shard]] = [[]]
    for shard in shards:
        if sum(s.lines for s in groups[-1]) >= LOAD_LINES:
            groups.append([])
        groups[-1].append(shard)
    with store.connection() as con:
        for group in filter(None, groups):
            with ledger.transaction(con):
                cache = ensure_cache(con, store.job.model, store.job.dimensions)
                for shard in group:
                    _load_one(store, con, cache, shard, failed_batches.get(shard.shard))
        return ledger.job_shards(con, store.job.job_id)


def _load_one(
    store: JobStore,
    con: duckdb.DuckDBPyConnection,
    cache: str,
    shard: ledger.Shard,
    batch_failure: tuple[str, str] | None,
) -> None:
    job = store.job
    sent = _custom_ids(con, store.path(shard))
    embedded = 0
    if batch_failure is None:
        # Texts of this shard that the cache holds already (another job stored them meanwhile),
        # looked up once; then those stored from earlier batches of the answer.
        known = _cached(con, cache, sent)
        answered: set[str] = set()
        failures: list[Failure] = []
        reader = con.cursor()  # reads the files while `con` writes the cache, batch by batch
        try:
            for results in iter_results(reader, list(store.outputs(shard)), dimensions=job.dimensions):
                ids, vectors = _only(results.custom_ids, results.vectors, sent)
                known |= insert_new_vectors(con, cache, ids, vectors, known=known)
                embedded += len(ids)
                answered.update(ids.to_pylist())
                answered.update(f.custom_id for f in results.failures)
                failures += [f for f in results.failures if f.custom_id in sent]
        finally:
            reader.close()
        failures += [
            Failure(c, None, "missing", "the line is in neither the output nor the error file")
            for c in sorted(sent - answered)
        ]
    else:
        failures = [Failure(c, None, *batch_failure) for c in sorted(sent)]
    failpoint("load")
    # Inputs a failing service never got are sent again as they were: that uses up no attempt.
    not_sent = {f.custom_id for f in failures if f.code == NOT_SENT}
    failures = [f for f in failures if f.code != NOT_SENT]
    again = [f for f in failures if is_transient(f)] if shard.attempt < store.max_attempts else []
    retry_ids = {f.custom_id for f in again}
    if not_sent:
        _write_retry(store, con, shard, not_sent, attempt=shard.attempt)
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
    if retry_ids:
        _write_retry(store, con, shard, retry_ids)
    ledger.update_shard(
        con,
        job.job_id,
        shard.shard,
        status=ledger.ShardStatus.LOADED,
        embedded=embedded,
        failed=len(failures) - len(retry_ids),
    )


def _write_retry(
    store: JobStore,
    con: duckdb.DuckDBPyConnection,
    shard: ledger.Shard,
    custom_ids: set[str],
    *,
    attempt: int | None = None,
) -> None:
    """Copy the request lines of ``custom_ids`` into a shard of ``attempt`` (the next one unless given) and
    record it."""
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
    batch = pa.record_batch({"text": pa.array(texts, pa.string()), "line": pa.array(lines, pa.string())})
    model = recorded_choice(job.model, job.dimensions).model
    # A part of a shard fits every limit the whole shard fitted.
    limits = ShardLimits(lines=max(1, shard.lines), bytes=max(1, shard.bytes))
    writer = ShardWriter(
        store.directory,
        job_id=job.job_id,
        limits=limits,
        shape=lambda batch: (batch, count_tokens(model, batch.column("text").to_pylist())),
        first_shard=number,
        attempt=shard.attempt + 1 if attempt is None else attempt,
    )
    ledger.insert_shards(con, writer.write_all([batch]))


def _cached(con: duckdb.DuckDBPyConnection, cache: str, sent: set[str]) -> set[str]:
    """Which of ``sent`` ``cache`` holds (one scan of its ids, the hash table built on ``sent``)."""
    con.register("_embedsql_sent", pa.table({"custom_id": pa.array(list(sent), pa.string())}))
    try:
        rows = con.execute(
            f"SELECT text_hash FROM {cache} WHERE text_hash IN (SELECT custom_id FROM _embedsql_sent)"
        ).fetchall()
    finally:
        con.unregister("_embedsql_sent")
    return {r[0] for r in rows}


def _custom_ids(con: duckdb.DuckDBPyConnection, path: Path) -> set[str]:
    rows = con.execute(
        "SELECT custom_id FROM read_json(?, format = 'newline_delimited', columns = {'custom_id': 'VARCHAR'})",
        [str(path)],
    ).fetchall()
    return {r[0] for r in rows}


def _only(ids: pa.Array, vectors: np.ndarray, sent: set[str]) -> tuple[pa.Array, np.ndarray]:
    """Keep the results of lines this shard sent (a server may answer for lines it was not given)."""
    keep = pc.is_in(ids, value_set=pa.array(list(sent), pa.string())).to_numpy(zero_copy_only=False)
    if keep.all():
        return ids, vectors  # the usual case: no copy of the vectors
    return ids.filter(pa.array(keep)), vectors[keep]
