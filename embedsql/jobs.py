"""Read-only views of the ledger: what a run did, recent jobs, and where one job stands.

Every count of a job's shards that a user sees (the run summary, ``embedsql jobs``, ``embedsql
status``, the batch runner's progress line) is summed by ``ShardTotals``, so they always agree.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from . import arguments, ledger
from .config import Settings
from .duck import quote
from .errors import JobError
from .ledger import ShardStatus
from .models import estimate_cost, recorded_choice
from .plan import snapshot_columns
from .results import Failure
from .target import parse_target

__all__ = [
    "JobStatus",
    "JobSummary",
    "RunResult",
    "ShardTotals",
    "job_result",
    "job_status",
    "list_jobs",
    "standing",
]

# Shards whose batch is at the API (or being created there).
_IN_FLIGHT = (ShardStatus.SUBMITTED, ShardStatus.CREATING)


@dataclass(frozen=True)
class ShardTotals:
    """A job's lines, summed over its shards."""

    # Distinct texts the job sends: the lines of first attempts (retries send the same texts again).
    lines: int
    # Lines loaded with a vector, and lines that failed for good.
    embedded: int
    failed: int
    # Lines that batches not loaded yet report done, and failed (as last seen).
    remote_completed: int
    remote_failed: int
    # Prompt tokens the service billed for the loaded shards (their lines' ``usage``); None when a shard
    # was loaded by an embedsql that did not record them.
    billed: int | None = None

    @classmethod
    def of(cls, shards: Sequence[ledger.Shard]) -> ShardTotals:
        """The totals of ``shards``."""
        loaded = [s for s in shards if s.status == ShardStatus.LOADED]
        waiting = [s for s in shards if s.status != ShardStatus.LOADED]
        return cls(
            lines=sum(s.lines for s in shards if s.attempt == 1),
            embedded=sum(s.embedded or 0 for s in loaded),
            failed=sum(s.failed or 0 for s in loaded),
            remote_completed=sum(s.remote_completed or 0 for s in waiting),
            remote_failed=sum(s.remote_failed or 0 for s in waiting),
            billed=None if any(s.billed_tokens is None for s in loaded) else sum(s.billed_tokens or 0 for s in loaded),
        )

    @property
    def done(self) -> int:
        """Lines with a vector, loaded or waiting to be."""
        return self.embedded + self.remote_completed


def _billed(job: ledger.Job, totals: ShardTotals) -> int | None:
    """The prompt tokens a service billed for ``job``; None for the bundled local model, which bills
    nothing (its lines report the tokens it read all the same)."""
    return None if job.runner == "local" else totals.billed


# Shards of an unfinished job that are at the API, or on their way there.
_SENT = (ShardStatus.UPLOADING, ShardStatus.UPLOADED, *_IN_FLIGHT)


def standing(job: ledger.Job, shards: Sequence[ledger.Shard]) -> str:
    """Where ``job`` stands, for a person: its status once finished; before that, from its shards:
    "submitted" (batches at the API), "in progress" (some shards done, none at the API) or
    "prepared" (nothing sent yet)."""
    if job.status != "prepared":
        return job.status
    if any(s.status in _SENT for s in shards):
        return "submitted"
    if any(s.status != ShardStatus.WRITTEN for s in shards):
        return "in progress"
    return "prepared"


@dataclass(frozen=True)
class RunResult:
    """What a run did, for the summary and for callers of the Python API."""

    job_id: str
    # "complete"; "submitted" when the job was left running (no_wait); "cancelled"; or "dry-run".
    status: str
    # The database, and the table in it that holds the vectors.
    db: Path
    target: str
    model: str
    dimensions: int
    rows: int
    distinct_texts: int
    # Distinct texts the cache already held when the job was planned.
    cached_texts: int
    # Distinct texts this job sent to the model, and how many of them came back with a vector.
    sent_texts: int
    embedded_texts: int
    failed_texts: int
    # Rows not sent, by reason ("NULL text", "empty text").
    skipped: dict[str, int]
    # Rows in the target table that this job wrote.
    target_rows: int
    # Tokens of the texts to send, as the plan counted them.
    tokens: int
    # Texts cut to the model's token limit before they were sent.
    truncated: int
    # Estimated US dollars for the tokens to send, on the Batch API and at standard prices (dry run).
    cost: tuple[float, float] | None
    shards: int
    work_dir: Path
    seconds: float
    failures: list[Failure] = field(default_factory=list)
    # Rows the target table holds once the job is complete: more than ``target_rows`` when an upsert
    # kept rows of other keys.
    table_rows: int = 0
    # Prompt tokens the service billed for the job's lines, from their ``usage`` (``ShardTotals.billed``).
    billed_tokens: int | None = None


def job_result(
    con: duckdb.DuckDBPyConnection,
    job: ledger.Job,
    *,
    status: str,
    db: Path,
    started: float | None = None,
    target_rows: int = 0,
    table_rows: int = 0,
    settings: Settings | None = None,
) -> RunResult:
    """What ``job`` did so far, as the ledger in ``con`` records it.

    ``started`` (a ``time.monotonic()``) gives the seconds taken; ``target_rows`` is what the job
    wrote into its target and ``table_rows`` what the target then holds; ``settings`` prices the
    job's tokens (a dry run's estimate).
    """
    shards = ledger.job_shards(con, job.job_id)
    totals = ShardTotals.of(shards)
    skip = quote(snapshot_columns(job.key_columns).skip)
    skipped = dict(
        con.execute(
            f"SELECT {skip}, count(*) FROM {job.rows_table} WHERE {skip} IS NOT NULL GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    failures = [
        Failure(*row)
        for row in con.execute(
            "SELECT custom_id, status, code, message FROM embedsql.errors WHERE job_id = ? AND final "
            "ORDER BY shard, custom_id",
            [job.job_id],
        ).fetchall()
    ]
    model = recorded_choice(job.model, job.dimensions).model
    return RunResult(
        job_id=job.job_id,
        status=status,
        db=db,
        target=str(parse_target(job.target)),
        model=job.model,
        dimensions=job.dimensions,
        rows=job.total_rows,
        distinct_texts=job.distinct_texts,
        cached_texts=job.cached_texts,
        sent_texts=totals.lines,
        embedded_texts=totals.embedded,
        failed_texts=len(failures),
        skipped=skipped,
        target_rows=target_rows,
        tokens=job.tokens,
        truncated=job.truncated,
        cost=estimate_cost(model, job.tokens, settings) if settings else None,
        shards=len(shards),
        work_dir=db.parent / job.work_dir,
        seconds=0.0 if started is None else time.monotonic() - started,
        failures=failures,
        table_rows=table_rows,
        billed_tokens=_billed(job, totals),
    )


@dataclass(frozen=True)
class JobSummary:
    """One line of ``embedsql jobs``."""

    job_id: str
    # Where the job stands (see ``standing``).
    status: str
    # The target table as the run summary names it.
    target: str
    model: str
    rows: int
    texts_to_embed: int
    created_at: datetime
    # Prompt tokens billed so far (``ShardTotals.billed``).
    billed_tokens: int | None = None


@dataclass(frozen=True)
class JobStatus:
    """Where one job stands: its shards by state, its batches by remote status, its lines."""

    job: ledger.Job
    # Where the job stands (see ``standing``), and its target table as the run summary names it.
    status: str
    target: str
    shards: dict[str, int]
    batches: dict[str, int]
    lines: int
    embedded: int
    failed: int
    # Prompt tokens billed so far (``ShardTotals.billed``).
    billed_tokens: int | None
    # The most frequent final errors: (code, message, count).
    top_errors: list[tuple[str | None, str | None, int]]


def list_jobs(db: str | os.PathLike[str], *, limit: int = 20) -> list[JobSummary]:
    """The newest ``limit`` jobs of the database, newest first (none in a database without a ledger,
    which this leaves as it is: it only reads)."""
    db, limit = arguments.path("db", db), arguments.whole("limit", limit, least=1)
    with ledger.explained(db):
        con = ledger.connect(db, read_only=True)
        try:
            if not ledger.has_ledger(con):
                return []
            ids = [
                r[0]
                for r in con.execute(
                    "SELECT job_id FROM embedsql.jobs ORDER BY job_id DESC LIMIT ?", [limit]
                ).fetchall()
            ]
            jobs = [ledger.get_job(con, job_id) for job_id in ids]
            shards = [ledger.job_shards(con, job_id) for job_id in ids]
        finally:
            con.close()
    return [
        JobSummary(
            job.job_id,
            standing(job, its),
            str(parse_target(job.target)),
            job.model,
            job.total_rows,
            ShardTotals.of(its).lines,
            job.created_at,
            _billed(job, ShardTotals.of(its)),
        )
        for job, its in zip(jobs, shards, strict=True)
    ]


def job_status(db: str | os.PathLike[str], job_id: str | None = None) -> JobStatus:
    """The status of ``job_id``, or of the newest job when None (it only reads the database)."""
    db, job_id = arguments.path("db", db), arguments.optional_text("job_id", job_id)
    with ledger.explained(db):
        return _job_status(db, job_id)


def _job_status(db: Path, job_id: str | None) -> JobStatus:
    con = ledger.connect(db, read_only=True)
    try:
        if not ledger.has_ledger(con):
            raise JobError(ledger.no_jobs_yet(job_id))
        if job_id is None:
            newest = con.execute("SELECT max(job_id) FROM embedsql.jobs").fetchall()[0][0]
            if newest is None:
                raise JobError(ledger.no_jobs_yet(None))
            job_id = str(newest)
        job = ledger.get_job(con, job_id)
        shards = ledger.job_shards(con, job_id)
        errors = con.execute(
            """SELECT code, message, count(*) AS n FROM embedsql.errors WHERE job_id = ? AND final
               GROUP BY ALL ORDER BY n DESC, code LIMIT 3""",
            [job_id],
        ).fetchall()
    finally:
        con.close()
    totals = ShardTotals.of(shards)
    return JobStatus(
        job=job,
        status=standing(job, shards),
        target=str(parse_target(job.target)),
        shards=dict(sorted(Counter(str(s.status) for s in shards).items())),
        batches=dict(sorted(Counter(s.batch_status or "unknown" for s in shards if s.status in _IN_FLIGHT).items())),
        lines=totals.lines,
        embedded=totals.done,
        failed=totals.failed,
        billed_tokens=_billed(job, totals),
        top_errors=[(code, message, int(n)) for code, message, n in errors],
    )
