"""One job's ledger, as runners see it: its shards, their files, and loading their results.

Every method opens the database, does one short transaction and closes it again, so that a job
that waits (for OpenAI, for the local model) never keeps the warehouse locked, and every step's
effect lands together with its record.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import ledger
from .cache import cache_table, insert_new_vectors
from .errors import JobError
from .failpoints import failpoint
from .models import MODELS
from .results import Failure, iter_results
from .shards import shard_name
from .tokens import count_tokens

__all__ = ["LOAD_LINES", "JobStore", "is_transient", "output_paths"]

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


class JobStore:
    """The ledger rows and files of job ``job_id`` in database ``db``."""

    def __init__(
        self,
        db: Path,
        job: ledger.Job,
        *,
        max_attempts: int,
        lock_wait: float = 0.0,
        memory_limit: str | None = None,
    ) -> None:
        self.db = db
        self.job = job
        self.max_attempts = max_attempts
        self.lock_wait = lock_wait
        self.memory_limit = memory_limit
        self.directory = db.parent / job.work_dir

    @contextlib.contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The database, open for the duration of one step."""
        con = ledger.connect(self.db, wait=self.lock_wait, memory_limit=self.memory_limit)
        try:
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Hold the job for this process, so that a second process cannot drive it at the same time
        (and pay for its batches twice). The lock dies with the process, even under kill -9."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "a+", encoding="utf-8") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                pid = lock.read().strip()
                job_id = self.job.job_id
                raise JobError(
                    f"job {job_id} is being run by another embedsql process{f' (PID {pid})' if pid else ''}. "
                    f"Follow it with `embedsql status {job_id}`, or stop that process and run "
                    f"`embedsql resume {job_id}`."
                ) from None
            lock.seek(0)
            lock.truncate()
            lock.write(str(os.getpid()))
            lock.flush()
            yield

    def shards(self) -> list[ledger.Shard]:
        """All shards of the job, retries included, in order."""
        with self.connection() as con:
            return ledger.job_shards(con, self.job.job_id)

    def update(self, shard: ledger.Shard, **fields: Any) -> None:
        """Record ``fields`` of ``shard`` (ids, statuses, counts) in one transaction."""
        with self.connection() as con, ledger.transaction(con):
            ledger.update_shard(con, self.job.job_id, shard.shard, **fields)

    def path(self, shard: ledger.Shard) -> Path:
        """The shard's input file."""
        return self.directory / shard.path

    def outputs(self, shard: ledger.Shard) -> tuple[Path, Path]:
        """Where the shard's output and error files go."""
        return output_paths(self.path(shard))

    def load(
        self, shards: Sequence[ledger.Shard], *, batch_failures: Mapping[int, tuple[str, str]] | None = None
    ) -> None:
        """Results of ``shards`` into the cache, failures into the errors table, transient failures into
        new shards for the next attempt, and the shards marked loaded: each shard's effects in the
        same transaction as its "loaded".

        Shards are loaded together, a transaction per ``LOAD_LINES`` lines or more, not one each:
        DuckDB writes a big transaction's vectors straight into the database file, and a small one's
        first into its write-ahead log and again at the next checkpoint. Results are read a batch of
        lines at a time, so memory grows neither with the size of the files nor with the job.
        ``batch_failures`` (shard number -> code, message) fails every line of a shard whose batch
        failed as a whole.
        """
        failed_batches = batch_failures or {}
        groups: list[list[ledger.Shard]] = [[]]
        for shard in shards:
            if sum(s.lines for s in groups[-1]) >= LOAD_LINES:
                groups.append([])
            groups[-1].append(shard)
        with self.connection() as con:
            for group in filter(None, groups):
                with ledger.transaction(con):
                    cache = cache_table(con, self.job.model, self.job.dimensions, create=True)
                    assert cache is not None
                    for shard in group:
                        self._load_one(con, cache, shard, failed_batches.get(shard.shard))

    def _load_one(
        self, con: duckdb.DuckDBPyConnection, cache: str, shard: ledger.Shard, batch_failure: tuple[str, str] | None
    ) -> None:
        sent = _custom_ids(con, self.path(shard))
        embedded = 0
        if batch_failure is None:
            # Texts of this shard that the cache holds already (another job stored them meanwhile),
            # looked up once; then those stored from earlier batches of the answer.
            known = _cached(con, cache, sent)
            answered: set[str] = set()
            failures: list[Failure] = []
            reader = con.cursor()  # reads the files while `con` writes the cache, batch by batch
            try:
                for results in iter_results(reader, list(self.outputs(shard)), dimensions=self.job.dimensions):
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
        again = [f for f in failures if is_transient(f)] if shard.attempt < self.max_attempts else []
        retry_ids = {f.custom_id for f in again}
        if failures:
            con.executemany(
                "INSERT INTO embedsql.errors VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    [
                        self.job.job_id,
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
            self._write_retry(con, shard, retry_ids)
        ledger.update_shard(
            con, self.job.job_id, shard.shard, status="loaded", embedded=embedded, failed=len(failures) - len(retry_ids)
        )

    def _write_retry(self, con: duckdb.DuckDBPyConnection, shard: ledger.Shard, custom_ids: set[str]) -> None:
        """Copy the lines of ``custom_ids`` into a new shard of the next attempt and record it."""
        number = 1 + int(
            con.execute("SELECT max(shard) FROM embedsql.shards WHERE job_id = ?", [self.job.job_id]).fetchall()[0][0]
        )
        lines, texts = [], []
        with open(self.path(shard), "rb") as source:
            for line in source:
                request = json.loads(line)
                if request["custom_id"] in custom_ids:
                    lines.append(line)
                    texts.append(request["body"]["input"])
        name = shard_name(number)
        part = self.directory / (name + ".part")
        with open(part, "wb") as f:
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, self.directory / name)
        content = b"".join(lines)
        tokens = int(count_tokens(MODELS[self.job.model], texts).sum()) if self.job.model in MODELS else 0
        ledger.insert_shards(
            con,
            [
                ledger.Shard(
                    job_id=self.job.job_id,
                    shard=number,
                    attempt=shard.attempt + 1,
                    path=name,
                    lines=len(lines),
                    bytes=len(content),
                    tokens=tokens,
                    sha256=hashlib.sha256(content).hexdigest(),
                )
            ],
        )


def output_paths(shard: Path) -> tuple[Path, Path]:
    """Where a shard's output and error files live: beside it, named after it."""
    stem = shard.name.removesuffix(".jsonl")
    return shard.with_name(f"{stem}.output.jsonl"), shard.with_name(f"{stem}.errors.jsonl")


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
