"""Where a job's files live: one folder per job, under one folder per database.

Shards and result files live beside the database (or under ``work_dir``) while a job runs, and go
once it completes unless ``keep_files`` is set. A job's folder is recorded in the ledger relative
to the database when it lies beside it, so that the two can be moved together.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import duckdb

from .config import Settings
from .errors import StorageError

__all__ = [
    "DRY_RUN_PREFIX",
    "job_folder",
    "make_work_root",
    "portable",
    "remove_dry_runs",
    "remove_job_folder",
    "remove_orphans",
    "work_root",
]

# Folders of dry runs: they have no job row, and the newest is kept for the user to read.
DRY_RUN_PREFIX = "dry-run-"


def work_root(settings: Settings) -> Path:
    """Folder of this database's job folders: one per database, so that cleaning up after one
    database never touches another's files, even when they share a folder or a work_dir."""
    base = settings.work_dir if settings.work_dir is not None else settings.db.parent / ".embedsql"
    return base / settings.db.name


def make_work_root(settings: Settings) -> Path:
    """``work_root``, made where it is missing; the folders above ``work_dir`` must exist already: a
    mistyped path, or a disk that is not mounted, is refused rather than made on whatever disk holds
    the path (the default, ``.embedsql`` beside the database, always has its parent)."""
    root = work_root(settings)
    try:
        root.parent.mkdir(exist_ok=True)
        root.mkdir(exist_ok=True)
    except OSError as e:
        raise StorageError.writing("job folders", root.parent, e) from e
    return root


def job_folder(settings: Settings, job_id: str, *, dry_run: bool) -> Path:
    """The folder of job ``job_id``'s files."""
    return work_root(settings) / (f"{DRY_RUN_PREFIX}{job_id}" if dry_run else job_id)


def portable(directory: Path, db: Path) -> str:
    """``directory`` relative to the database's folder when inside it, so the pair can move together."""
    try:
        return str(directory.resolve().relative_to(db.parent.resolve()))
    except ValueError:
        return str(directory.resolve())


def remove_orphans(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """Delete work folders of plans that crashed before they were committed (no job row)."""
    if not root.is_dir():
        return
    known = {r[0] for r in con.execute("SELECT job_id FROM embedsql.jobs").fetchall()}
    for child in root.iterdir():
        if child.is_dir() and not child.name.startswith(DRY_RUN_PREFIX) and child.name not in known:
            shutil.rmtree(child, ignore_errors=True)


def remove_dry_runs(root: Path) -> None:
    """Delete the folders of earlier dry runs of the database: only the newest one's shards are kept
    (a dry run of 1M texts writes ~190 MB of them)."""
    if not root.is_dir():
        return
    for child in root.iterdir():
        if child.is_dir() and child.name.startswith(DRY_RUN_PREFIX):
            shutil.rmtree(child, ignore_errors=True)


def remove_job_folder(directory: Path) -> None:
    """Delete a finished job's folder, and the folders above it that it leaves empty."""
    shutil.rmtree(directory, ignore_errors=True)
    for parent in (directory.parent, directory.parent.parent):
        with contextlib.suppress(OSError):  # only folders left empty go
            parent.rmdir()
