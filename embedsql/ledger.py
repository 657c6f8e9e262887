"""The ledger: jobs, shards and errors in schema ``embedsql`` of the user's own database.

Keeping the bookkeeping in the same DuckDB file as the data lets one transaction cover a step and
its record (a shard's results and "shard loaded"; the target table and "job complete"), so a
crash at any instant leaves either both or neither.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from .duck import damaged_file, duck_message, literal, lock_conflict, missing_extension, quote
from .errors import DatabaseError, EmbedsqlError, JobError, QueryError, StorageError, os_error_fix
from .periodic import every
from .warehouse import missing_database_message

__all__ = [
    "FLUSH_EVERY",
    "ROW_GROUP_ROWS",
    "SCHEMA_VERSION",
    "Job",
    "Shard",
    "ShardStatus",
    "connect",
    "disk_full",
    "drop_older_snapshots",
    "ensure_schema",
    "explained",
    "failed_for_good",
    "find_pending_job",
    "get_job",
    "has_ledger",
    "insert_job",
    "insert_shards",
    "interrupted",
    "job_shards",
    "no_jobs_yet",
    "set_job_status",
    "transaction",
    "update_shard",
]

SCHEMA_VERSION = 4

# Rows per row group of the tables that embedsql's pipeline connections write (cache, target, row
# snapshot). DuckDB writes a big transaction into the database file a full row group at a time and
# holds the group it is filling in memory: at its default, 122,880 rows, a group of 1536-d vectors is
# 755 MB, over the memory limit, so it went to a spill file first and was written twice. 32,768 rows
# of 1536-d vectors are 200 MB (of 3072-d, 400 MB). A multiple of DuckDB's vector size, 2,048.
ROW_GROUP_ROWS = 32_768


@dataclass(frozen=True)
class Job:
    """One ``embedsql run``, as the ledger records it."""

    job_id: str
    fingerprint: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    query: str
    key_columns: list[str]
    text_columns: list[str]
    model: str
    dimensions: int
    runner: str
    target: str
    mode: str
    rows_table: str
    work_dir: str
    total_rows: int
    distinct_texts: int
    cached_texts: int
    tokens: int
    truncated: int = 0
    # The API a sync or batch job was sent to, when not OpenAI's own: resume and cancel go there too.
    base_url: str | None = None


class ShardStatus(StrEnum):
    """Where a shard stands. ``UPLOADING`` and ``CREATING`` mark a remote call whose answer may be
    lost: the next run looks its result up (the file by name, the batch by metadata) before calling again."""

    WRITTEN = "written"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    CREATING = "creating"
    SUBMITTED = "submitted"
    DOWNLOADED = "downloaded"
    LOADED = "loaded"


@dataclass(frozen=True)
class Shard:
    """One batch input file of a job."""

    job_id: str
    shard: int
    attempt: int
    path: str
    lines: int
    bytes: int
    tokens: int
    sha256: str
    status: ShardStatus = ShardStatus.WRITTEN
    embedded: int | None = None
    failed: int | None = None
    input_file_id: str | None = None
    batch_id: str | None = None
    batch_status: str | None = None
    submissions: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    remote_completed: int | None = None
    remote_failed: int | None = None
    message: str | None = None
    # Prompt tokens the service billed for the shard's lines (their ``usage``), summed when it is loaded.
    billed_tokens: int | None = None


def connect(
    path: Path,
    *,
    wait: float = 0.0,
    memory_limit: str | None = None,
    read_only: bool = False,
    create_ledger: bool = True,
    on_wait: Callable[[str], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the database at ``path`` and make sure the ledger schema is there and current.

    DuckDB lets one process write a database at a time; while another holds it, try again for up
    to ``wait`` seconds (embedsql itself holds it only for short steps), saying so once through
    ``on_wait``. A file that DuckDB finds damaged is a ``DatabaseError`` that says so (``explained``).

    ``read_only`` opens it without writing anything, ledger included (``has_ledger`` tells whether
    there is one): what commands that only read use, so that they never change the user's file.
    ``create_ledger=False`` opens it for writing but leaves a database without a ledger without one:
    what ``sql`` and ``search`` use, which may write (the user's SQL, the cache) but never start a ledger.

    DuckDB never installs an extension through these connections (it would download it from the
    internet, unasked): a statement that needs one that is missing fails, and ``explained`` says
    which one to install. Installed extensions still load on their own.

    ``memory_limit`` (a DuckDB size, like "512MB") is for embedsql's own pipeline connections: it
    caps DuckDB's memory (its default, 80% of RAM, lets the buffer pool grow with a job's rows; past
    the cap DuckDB spills to disk), float columns are written without ALP compression (which saves
    ~1.5% of the space of embeddings and costs ~60% more time to write them, 1536-d), and DuckDB
    need not keep the order of rows that no ORDER BY asks for; the tables these connections write have
    row groups of ``ROW_GROUP_ROWS`` rows (see ``_open``).
    """
    _check_database_file(path)
    deadline = time.monotonic() + wait
    pause = 0.05
    said = False
    while True:
        try:
            con = _open(path, read_only=read_only, row_groups=memory_limit is not None)
            break
        except duckdb.Error as e:
            message = duck_message(e)
            if damaged_file(e, path):
                raise _damaged(path, e) from e
            if not lock_conflict(e):
                raise DatabaseError(
                    f"cannot open database {str(path)!r}: {message} Check that --db / EMBEDSQL_DB names a "
                    "DuckDB file you can write."
                ) from e
            pid = re.search(r"PID (\d+)", message)
            holder = f" (PID {pid.group(1)})" if pid else ""
            if time.monotonic() < deadline:
                if on_wait is not None and not said:
                    on_wait(
                        f"Database {str(path)!r} is in use by another process{holder}: waiting up to {wait:g} s "
                        "for it (EMBEDSQL_LOCK_WAIT)."
                    )
                    said = True
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
                continue
            waited = f" and stayed busy for {wait:g} s" if wait else ""
            raise DatabaseError(
                f"database {str(path)!r} is in use by another process{holder}{waited}. DuckDB allows one "
                "writer at a time: wait for that process to finish, or close it, then run again "
                "(EMBEDSQL_LOCK_WAIT sets how long embedsql waits).",
                locked=True,
            ) from e
    try:
        # DuckDB draws a progress bar on standard output for long queries: it would land inside the rows
        # `embedsql sql` prints. Planning reports its progress as events instead.
        con.execute("SET enable_progress_bar = false")
        # A query naming https://, s3:// or an .xlsx file would make DuckDB download an extension.
        con.execute("SET autoinstall_known_extensions = false")
        if memory_limit is not None:
            con.execute(f"SET memory_limit = '{memory_limit}'")
            con.execute("SET disabled_compression_methods = 'alp,alprd'")
            # Reading result files in file order made DuckDB hold ~370 MB of decoded lines ahead of
            # the reader (and run out of memory at 512MB); embedsql orders explicitly where it matters.
            con.execute("SET preserve_insertion_order = false")
            # A big insert's full row groups go to the database file one at a time, not five together
            # (DuckDB's default: five groups of 1536-d vectors outgrew the limit and were spilled first).
            con.execute("SET write_buffer_row_group_count = 1")
        if read_only or (not create_ledger and not has_ledger(con)):
            _check_version(con, path)
        else:
            ensure_schema(con, path)
    except BaseException as e:
        con.close()
        if damaged_file(e, path):
            raise _damaged(path, e) from e
        raise
    return con


def _open(path: Path, *, read_only: bool, row_groups: bool) -> duckdb.DuckDBPyConnection:
    """DuckDB's connection to the database at ``path``; with ``row_groups``, one whose new tables have
    row groups of ``ROW_GROUP_ROWS`` rows. DuckDB takes a row group size only when it attaches a
    database, so the file is attached to an in-memory connection and made the one that statements use,
    named as ``duckdb.connect(path)`` names it (after the file) and with the spill folder it would use
    (``<db>.tmp``); the in-memory database is detached, so that no name means another database."""
    if not row_groups:
        return duckdb.connect(str(path), read_only=read_only)
    con = duckdb.connect()
    try:
        scratch = con.execute("SELECT current_database()").fetchall()[0][0]
        try:
            con.execute(f"ATTACH {literal(str(path))} (ROW_GROUP_SIZE {ROW_GROUP_ROWS}{', READ_ONLY' * read_only})")
        except duckdb.BinderException:  # a file named like the in-memory database ("memory.duckdb")
            con.close()
            return duckdb.connect(str(path), read_only=read_only)
        name = con.execute(
            "SELECT database_name FROM duckdb_databases() WHERE NOT internal AND database_name <> ?", [scratch]
        ).fetchall()[0][0]
        con.execute(f"USE {quote(name)}")
        con.execute(f"DETACH {quote(scratch)}")
        con.execute(f"SET temp_directory = {literal(str(path) + '.tmp')}")
    except BaseException:
        con.close()
        raise
    return con


@contextlib.contextmanager
def explained(db: Path) -> Iterator[None]:
    """Errors of DuckDB that are about the database file or DuckDB's installation, not about the step
    that met them, as the ``EmbedsqlError`` that says so, wherever they surface: a damaged block is
    found by whichever statement first reads it, and a missing extension by the statement that needs
    it, inside the user's query as well as embedsql's. Each public command runs inside this, once.

    An error that a step already turned into its own ``EmbedsqlError`` (``raise ... from e``, "check
    the SQL") is replaced too: its advice would send the user to the wrong place.
    """
    try:
        yield
    except (duckdb.Error, EmbedsqlError) as e:
        cause = e if isinstance(e, duckdb.Error) else e.__cause__
        if not isinstance(cause, duckdb.Error):
            raise
        if damaged_file(cause, db):
            raise _damaged(db, cause) from cause
        extension = missing_extension(cause)
        if extension is not None:
            raise QueryError(
                f"the SQL needs DuckDB's {extension} extension, which is not installed, and embedsql never installs "
                f"one (that would download it from the internet). Install it once yourself (INSTALL {extension} in "
                f'DuckDB, or embedsql sql "INSTALL {extension}"), then run the command again.'
            ) from cause
        # Only one no step explained (a full disk at a commit is a FatalException that one did).
        if cause is e and isinstance(cause, duckdb.InternalException | duckdb.FatalException):
            raise DatabaseError(
                f"DuckDB failed inside while working on database {str(db)!r}: {duck_message(cause)} This is a "
                "damaged database file or a bug of DuckDB: if DuckDB itself fails on the file too, restore it from a "
                "backup or another copy (embedsql never repairs a database); otherwise report the message to DuckDB."
            ) from cause
        raise


def _damaged(path: Path, error: BaseException) -> DatabaseError:
    """The error for database ``path`` found damaged by DuckDB (``error``)."""
    cut = "Could not read enough bytes" in str(error)
    what = (
        "it is shorter than DuckDB wrote it (a copy or download cut short?)"
        if cut
        else ("what it holds is not what DuckDB wrote into it")
    )
    return DatabaseError(
        f"database {str(path)!r} is damaged: {what}. DuckDB says: {duck_message(error)} embedsql never repairs a "
        "database: restore the file from a backup or another copy, then run the command again."
    )


# Bytes 8 to 12 of every DuckDB database file.
_DUCKDB_MAGIC = b"DUCK"


def _check_database_file(path: Path) -> None:
    """Refuse a ``path`` that is missing or is not a DuckDB database, before DuckDB opens it: DuckDB
    opens a CSV or SQLite file as a passing in-memory database, where a job's writes would vanish."""
    try:
        with open(path, "rb") as file:
            head = file.read(16)
    except FileNotFoundError as e:
        raise DatabaseError(missing_database_message(path)) from e
    except IsADirectoryError as e:
        raise DatabaseError(
            f"--db {str(path)!r} is a folder, not a DuckDB database. Pass --db / EMBEDSQL_DB the database file "
            "(a .duckdb file) instead."
        ) from e
    except OSError as e:
        raise DatabaseError(
            f"cannot read database {str(path)!r}: {e.strerror or e} (errno {e.errno}). "
            f"{os_error_fix(e, '--db / EMBEDSQL_DB', 'a database')}"
        ) from e
    if head[8:12] != _DUCKDB_MAGIC:
        kind = "an empty file" if not head else "a SQLite database" if head.startswith(b"SQLite format 3") else None
        what = f" ({kind})" if kind else ""
        raise DatabaseError(
            f"--db {str(path)!r} is not a DuckDB database{what}. Pass --db / EMBEDSQL_DB a DuckDB database file; "
            f"to embed the rows of another file, query it from one (select ... from '{path.name}')."
        )


def has_ledger(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con``'s database holds an embedsql ledger (one opened ``read_only`` may not)."""
    return _version(con) is not None


def _check_version(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    row = _version(con)
    if row is not None and row > SCHEMA_VERSION:
        raise DatabaseError(
            f"the embedsql ledger in {str(path)!r} has schema version {row}, newer than this embedsql "
            f"understands ({SCHEMA_VERSION}). Upgrade embedsql (pip install -U embedsql)."
        )


def interrupted(error: BaseException) -> bool:
    """Whether ``error`` is Ctrl-C: a ``KeyboardInterrupt``, or DuckDB's "Query interrupted" (a bare
    ``RuntimeError``) when the signal arrived while DuckDB ran a statement."""
    if isinstance(error, KeyboardInterrupt | duckdb.InterruptException):
        return True
    return type(error) is RuntimeError and str(error) == "Query interrupted"


def ensure_schema(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Create the ledger schema in ``con``'s database, or check that the one there is current."""
    row = _version(con)
    if row == SCHEMA_VERSION:
        return  # the common case, checked with one query: every step of a job connects again
    _check_version(con, path)
    if row is None:
        foreign = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'embedsql' ORDER BY 1"
            ).fetchall()
        ]
        if foreign:
            raise DatabaseError(
                f"schema embedsql in {str(path)!r} holds tables that are not an embedsql ledger "
                f"({', '.join(foreign[:5])}). embedsql keeps its ledger in that schema: rename yours "
                "(ALTER TABLE embedsql.t SET SCHEMA other) or use another --db."
            )
    # A new ledger, or an older one: the DDL creates what is missing (later versions add migrations here).
    ddl = (resources.files("embedsql") / "sql" / "ledger.sql").read_text(encoding="utf-8")
    try:
        with transaction(con):
            con.execute(ddl)
            # Version 1 -> 2: jobs record the API they were sent to.
            con.execute("ALTER TABLE embedsql.jobs ADD COLUMN IF NOT EXISTS base_url VARCHAR")
            # Version 2 -> 3: shards record the prompt tokens billed for them.
            con.execute("ALTER TABLE embedsql.shards ADD COLUMN IF NOT EXISTS billed_tokens BIGINT")
            con.execute("INSERT OR REPLACE INTO embedsql.meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    except duckdb.OutOfMemoryException:
        raise  # not a read-only database: the memory limit, which the pipeline explains
    except duckdb.Error as e:
        raise DatabaseError(
            f"cannot write the embedsql ledger into {str(path)!r}: {duck_message(e)} "
            "Check that the database is writable (not opened read-only, not on a full disk)."
        ) from e


def _version(con: duckdb.DuckDBPyConnection) -> int | None:
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'embedsql' AND table_name = 'meta'"
    ).fetchall()[0][0]
    if not exists:
        return None
    rows = con.execute("SELECT value FROM embedsql.meta WHERE key = 'schema_version'").fetchall()
    return int(rows[0][0]) if rows else None


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection, *, write_behind: Path | None = None) -> Iterator[None]:
    """Commit what the block does, or roll all of it back if the block raises.

    A full disk (DuckDB cannot write its write-ahead log or the database file, at a statement or at
    the commit) is a ``StorageError``: nothing of the block was kept, and it can be run again.

    ``write_behind``: the database file, for a block that writes much to it (see ``_writing_behind``).
    """
    con.execute("BEGIN TRANSACTION")
    try:
        with _writing_behind(write_behind):
            yield
    except BaseException as e:
        with contextlib.suppress(duckdb.Error):  # a failed write may have ended the transaction already
            con.execute("ROLLBACK")
        if isinstance(e, duckdb.Error) and disk_full(e):
            raise _disk_full_error(e) from e
        raise
    try:
        con.execute("COMMIT")
    except duckdb.Error as e:
        if disk_full(e):
            raise _disk_full_error(e) from e
        raise


# Seconds between two flushes of a database file that a transaction writes much to.
FLUSH_EVERY = 0.5


@contextlib.contextmanager
def _writing_behind(path: Path | None) -> Iterator[None]:
    """While the block runs, a thread has the system write the database file's new pages to disk every
    ``FLUSH_EVERY`` seconds, as DuckDB writes them, rather than all when the transaction commits: the
    disk works while DuckDB computes, and the commit waits on far less (committing 100k 1536-d vectors,
    600 MB, took ~1.2 s after the copy, ~0.3 s with this; ~0.4 s less in all). PostgreSQL does the
    same with its writes (its ``*_flush_after`` settings). A block shorter than ``FLUSH_EVERY`` never
    opens the file; nothing happens where the system has no ``fdatasync`` (macOS, Windows)."""
    if path is None or not hasattr(os, "fdatasync"):
        yield
        return
    flusher = _Flusher(path)
    try:
        with every(FLUSH_EVERY, flusher, name="embedsql-write-behind"):
            yield
    finally:
        flusher.close()


class _Flusher:
    """``fdatasync`` of one file, opened at the first call; after an error, nothing more: a write error
    is DuckDB's to meet, at its own write or sync, and to report."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: int | None = None
        self.failed = False

    def __call__(self) -> None:
        if self.failed:
            return
        try:
            if self.file is None:
                self.file = os.open(self.path, os.O_RDONLY)
            os.fdatasync(self.file)
        except OSError:
            self.failed = True

    def close(self) -> None:
        if self.file is not None:
            os.close(self.file)
            self.file = None


# How the operating system says that a disk (or the user's quota on it) is full, in DuckDB's messages.
_FULL = ("No space left on device", "Disk quota exceeded", "File too large")


def disk_full(error: duckdb.Error) -> bool:
    """Whether DuckDB failed because a disk (or the user's quota on it) is full."""
    return any(words in str(error) for words in _FULL)


def _disk_full_error(error: duckdb.Error) -> StorageError:
    return StorageError(
        f"the database's disk is full: {duck_message(error).removeprefix('TransactionContext Error: ')} "
        "Nothing of the step was kept. Free some space there (DuckDB writes its log beside the database) "
        "and run the command again."
    )


_JOB_FIELDS = [f.name for f in fields(Job)]
_SHARD_FIELDS = [f.name for f in fields(Shard)]


def _job_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The fields of ``Job`` that the ledger's jobs table has (see ``_present``)."""
    return _present(con, "jobs", _JOB_FIELDS)


def _shard_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The fields of ``Shard`` that the ledger's shards table has (see ``_present``)."""
    return _present(con, "shards", _SHARD_FIELDS)


def _present(con: duckdb.DuckDBPyConnection, table: str, wanted: list[str]) -> list[str]:
    """The fields of ``wanted`` that the ledger's ``table`` has: a ledger of an older schema, read by a
    command that only reads (``jobs``, ``status``) and so does not bring it up to date, lacks the newer ones
    (their defaults stand)."""
    present = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'embedsql' AND table_name = ? "
            "AND database_name = current_database()",
            [table],
        ).fetchall()
    }
    return [f for f in wanted if f in present]


def insert_job(con: duckdb.DuckDBPyConnection, job: Job) -> None:
    """Record a new job."""
    _insert(con, "embedsql.jobs", _JOB_FIELDS, [[getattr(job, f) for f in _JOB_FIELDS]])


def get_job(con: duckdb.DuckDBPyConnection, job_id: str) -> Job:
    """The job ``job_id``, or a ``JobError`` that lists recent ones."""
    rows = _select(con, "embedsql.jobs", _job_columns(con), "job_id = ?", [job_id])
    if rows:
        return Job(**rows[0])
    recent = [r[0] for r in con.execute("SELECT job_id FROM embedsql.jobs ORDER BY job_id DESC LIMIT 3").fetchall()]
    if not recent:
        raise JobError(no_jobs_yet(job_id))
    raise JobError(f"no job {job_id!r} in this database. Recent jobs: {', '.join(recent)}.")


def no_jobs_yet(job_id: str | None) -> str:
    """The message for a database without jobs, asked for ``job_id`` (or for the newest job)."""
    asked = (
        f"no job {job_id!r} in this database. This database has no jobs yet"
        if job_id
        else ("this database has no jobs yet")
    )
    return f"{asked}. Start one with `embedsql run SQL`."


def find_pending_job(con: duckdb.DuckDBPyConnection, fingerprint: str) -> Job | None:
    """The newest unfinished job with this definition, which a re-run should continue."""
    rows = _select(
        con,
        "embedsql.jobs",
        _job_columns(con),
        "fingerprint = ? AND status = 'prepared' ORDER BY job_id DESC LIMIT 1",
        [fingerprint],
    )
    return Job(**rows[0]) if rows else None


def set_job_status(con: duckdb.DuckDBPyConnection, job_id: str, status: str) -> None:
    """Move a job to ``status``; a finished job gets its finish time."""
    finished = "now()" if status in ("complete", "cancelled") else "NULL"
    con.execute(f"UPDATE embedsql.jobs SET status = ?, finished_at = {finished} WHERE job_id = ?", [status, job_id])


def failed_for_good(con: duckdb.DuckDBPyConnection, job_id: str) -> bool:
    """Whether some text of the job failed for good (it will not be sent again)."""
    return bool(con.execute("SELECT 1 FROM embedsql.errors WHERE job_id = ? AND final LIMIT 1", [job_id]).fetchall())


def update_shard(con: duckdb.DuckDBPyConnection, job_id: str, shard: int, **fields: Any) -> None:
    """Set ``fields`` of one shard's ledger row."""
    unknown = set(fields) - set(_SHARD_FIELDS)
    if unknown:
        raise ValueError(f"not shard fields: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = ?" for name in fields)
    con.execute(
        f"UPDATE embedsql.shards SET {assignments} WHERE job_id = ? AND shard = ?", [*fields.values(), job_id, shard]
    )


def drop_older_snapshots(con: duckdb.DuckDBPyConnection, job: Job, *, same_target: Callable[[str], bool]) -> None:
    """Drop the row snapshots of earlier complete jobs into the same target: only the latest
    describes the table as it is, and each snapshot is as long as its query. ``same_target`` tells
    whether a job's recorded target names this job's table (``t``, ``main.T`` and ``"t"`` do)."""
    older = con.execute(
        "SELECT target, rows_table FROM embedsql.jobs WHERE status = 'complete' AND job_id <> ?", [job.job_id]
    ).fetchall()
    for target, rows_table in older:
        if same_target(target):
            con.execute(f"DROP TABLE IF EXISTS {rows_table}")


def insert_shards(con: duckdb.DuckDBPyConnection, shards: Sequence[Shard]) -> None:
    """Record written shards."""
    _insert(con, "embedsql.shards", _SHARD_FIELDS, [[getattr(s, f) for f in _SHARD_FIELDS] for s in shards])


def job_shards(con: duckdb.DuckDBPyConnection, job_id: str) -> list[Shard]:
    """The shards of a job, in order."""
    rows = _select(con, "embedsql.shards", _shard_columns(con), "job_id = ? ORDER BY shard", [job_id])
    return [Shard(**{**r, "status": ShardStatus(r["status"])}) for r in rows]


def _insert(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], rows: list[list[Any]]) -> None:
    if rows:
        marks = ", ".join("?" for _ in columns)
        con.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


def _select(
    con: duckdb.DuckDBPyConnection, table: str, columns: list[str], where: str, params: list[Any]
) -> list[dict[str, Any]]:
    result = con.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE {where}", params).fetchall()
    return [dict(zip(columns, row, strict=True)) for row in result]
