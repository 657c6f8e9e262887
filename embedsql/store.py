"""One job's ledger, as runners see it: its shards, their files, and the lock that holds the job.

Every method opens the database, does one short transaction and closes it again, so that a job
that waits (for OpenAI, for the local model) never keeps the warehouse locked, and every step's
effect lands together with its record. (Reading the shards again when nothing changed them is
skipped: see ``JobStore.shards``.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb

from . import ledger
from .errors import JobError, StorageError

__all__ = ["JobStore", "output_paths"]


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
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.db = db
        self.job = job
        self.max_attempts = max_attempts
        self.lock_wait = lock_wait
        self.memory_limit = memory_limit
        # Told when a step waits for the database while another process holds it.
        self.on_wait = on_wait
        self.directory = db.parent / job.work_dir
        # The shards as last read while this process holds the job (see ``shards``).
        self._shards: list[ledger.Shard] | None = None
        self._held = False

    @contextlib.contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The database, open for the duration of one step."""
        self._shards = None  # the step may change the shards
        con = ledger.connect(self.db, wait=self.lock_wait, memory_limit=self.memory_limit, on_wait=self.on_wait)
        try:
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Hold the job for this process, so that a second process cannot drive it at the same time
        (and pay for its batches twice). The lock dies with the process, even under kill -9."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Unbuffered: nothing is left to flush (and fail again on a full disk) when it closes.
            lock = open(self.directory / ".lock", "a+b", buffering=0)  # noqa: SIM115  (closed below)
        except OSError as e:
            raise StorageError.writing("the job's lock file", self.directory, e) from e
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                pid = lock.read().decode(errors="replace").strip()
                job_id = self.job.job_id
                raise JobError(
                    f"job {job_id} is being run by another embedsql process{f' (PID {pid})' if pid else ''}. "
                    f"Follow it with `embedsql status {job_id}`, or stop that process and run "
                    f"`embedsql resume {job_id}`."
                ) from None
            try:
                lock.seek(0)
                lock.truncate(lock.write(str(os.getpid()).encode()))
            except OSError as e:
                raise StorageError.writing("the job's lock file", self.directory, e) from e
            self._held = True
            try:
                yield
            finally:
                self._held = False
                self._shards = None

    def shards(self) -> list[ledger.Shard]:
        """All shards of the job, retries included, in order.

        While this process holds the job (``running``), no other process changes its shards, so they
        are read again only after a step here may have changed them: a batch job polling a long batch
        would otherwise open the database once a round for the same rows.
        """
        if self._shards is not None:
            return list(self._shards)
        with self.connection() as con:
            shards = ledger.job_shards(con, self.job.job_id)
        if self._held:
            self._shards = shards
        return list(shards)

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


def output_paths(shard: Path) -> tuple[Path, Path]:
    """Where a shard's output and error files live: beside it, named after it."""
    stem = shard.name.removesuffix(".jsonl")
    return shard.with_name(f"{stem}.output.jsonl"), shard.with_name(f"{stem}.errors.jsonl")
