"""Read-only views of the ledger: recent jobs, and where one job stands."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import ledger
from .errors import JobError

__all__ = ["JobStatus", "JobSummary", "job_status", "list_jobs"]


@dataclass(frozen=True)
class JobSummary:
    """One line of ``embedsql jobs``."""

    job_id: str
    status: str
    target: str
    model: str
    rows: int
    texts_to_embed: int
    created_at: datetime


@dataclass(frozen=True)
class JobStatus:
    """Where one job stands: its shards by state, its batches by remote status, its lines."""

    job: ledger.Job
    shards: dict[str, int]
    batches: dict[str, int]
    lines: int
    embedded: int
    failed: int
    # The most frequent final errors: (code, message, count).
    top_errors: list[tuple[str | None, str | None, int]]


def list_jobs(db: Path, *, limit: int = 20) -> list[JobSummary]:
    """The newest ``limit`` jobs of the database, newest first."""
    con = ledger.connect(db)
    try:
        rows = con.execute(
            """SELECT j.job_id, j.status, j.target, j.model, j.total_rows,
                      coalesce((SELECT sum(lines) FROM embedsql.shards s WHERE s.job_id = j.job_id AND attempt = 1), 0),
                      j.created_at
               FROM embedsql.jobs j ORDER BY j.job_id DESC LIMIT ?""",
            [limit],
        ).fetchall()
    finally:
        con.close()
    return [JobSummary(*row) for row in rows]


def job_status(db: Path, job_id: str | None = None) -> JobStatus:
    """The status of ``job_id``, or of the newest job when None."""
    con = ledger.connect(db)
    try:
        if job_id is None:
            newest = con.execute("SELECT max(job_id) FROM embedsql.jobs").fetchall()[0][0]
            if newest is None:
                raise JobError("this database has no jobs yet. Start one with `embedsql run SQL`.")
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
    in_flight = [s for s in shards if s.status in ("submitted", "creating")]
    return JobStatus(
        job=job,
        shards=dict(sorted(Counter(s.status for s in shards).items())),
        batches=dict(sorted(Counter(s.batch_status or "unknown" for s in in_flight).items())),
        lines=sum(s.lines for s in shards if s.attempt == 1),
        embedded=sum(s.embedded or 0 for s in shards) + sum(s.remote_completed or 0 for s in in_flight),
        failed=sum(s.failed or 0 for s in shards),
        top_errors=[(code, message, int(n)) for code, message, n in errors],
    )
