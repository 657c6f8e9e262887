"""The exceptions embedsql raises on purpose.

Every message says what happened, the offending value and how to fix it, so the CLI can print
it as it is (``Error: <message>``) and exit 1. Anything that is not an ``EmbedsqlError`` is a
bug and keeps its traceback.

::

    EmbedsqlError
     ├── ConfigError        a setting, flag, environment variable or config file is wrong
     ├── DatabaseError      the database file cannot be opened, is in use, or is damaged
     ├── QueryError         the SQL query fails, or its columns do not fit the job
     ├── InputError         the rows themselves are unusable (duplicate or NULL keys)
     ├── TargetError        the target table exists with another model or shape
     ├── JobError           a job id that does not exist, or a job that cannot go on
     ├── LoadError          a result file that cannot be read back
     ├── StorageError       the work folder cannot be written (full disk, no permission)
     └── RemoteError        the OpenAI API refused or failed a request (key, rate limit, server)

    Detached (a KeyboardInterrupt)  Ctrl-C while a job waits: the job goes on remotely, resumable

The operating system's errors on a path (the work folder, the database) are explained here too, by errno,
in one place (``os_error_fix``): a full disk is not the only reason a folder cannot be written.
"""

from __future__ import annotations

import errno
from pathlib import Path

__all__ = [
    "ConfigError",
    "DatabaseError",
    "Detached",
    "EmbedsqlError",
    "InputError",
    "JobError",
    "LoadError",
    "QueryError",
    "RemoteError",
    "StorageError",
    "TargetError",
    "os_error_fix",
]


class EmbedsqlError(Exception):
    """Base class of every error embedsql raises on purpose.

    ``job_id`` names the job that the error stopped and that keeps its place in the ledger (set
    where the job is known); the message then says how to continue it.
    """

    job_id: str | None = None

    def __str__(self) -> str:
        message = super().__str__()
        if self.job_id is None:
            return message
        return f"{message} Job {self.job_id} keeps its place: continue it with `embedsql resume {self.job_id}`."


class ConfigError(EmbedsqlError):
    """A setting is missing, malformed, or names something that does not exist."""


class DatabaseError(EmbedsqlError):
    """The DuckDB database cannot be opened, created or written; ``locked``: another process has it."""

    def __init__(self, message: str, *, locked: bool = False) -> None:
        super().__init__(message)
        self.locked = locked


class QueryError(EmbedsqlError):
    """The user's query fails, or its columns do not fit the job."""


class InputError(EmbedsqlError):
    """The rows of the query cannot be embedded as they are."""


class TargetError(EmbedsqlError):
    """The target table exists and does not fit the job (model, dimensions or key columns)."""


class JobError(EmbedsqlError):
    """A job that does not exist, or that cannot continue."""


class LoadError(EmbedsqlError):
    """A result file that cannot be read back into the cache."""


class StorageError(EmbedsqlError):
    """Shard or result files cannot be written: a full disk, a missing or read-only folder."""

    @classmethod
    def writing(cls, what: str, folder: object, error: OSError) -> StorageError:
        """The error for ``error`` while writing ``what`` into ``folder`` (the work folder, or below it)."""
        return cls(
            f"cannot write {what} in {folder}: {error.strerror or error} (errno {error.errno}). "
            f"{os_error_fix(error, 'EMBEDSQL_WORK_DIR', 'a folder')}"
        )

    @classmethod
    def drawing(cls, what: str, path: object, error: OSError) -> StorageError:
        """The error for ``error`` while writing ``what`` (a map's page or picture) into the ``-o`` file ``path``."""
        return cls(
            f"cannot write {what} {str(path)!r}: {error.strerror or error} (errno {error.errno}). "
            f"{os_error_fix(error, '-o', 'a file')}"
        )


class RemoteError(EmbedsqlError):
    """The OpenAI API refused or failed a request; the message never contains the API key.

    ``retryable`` tells a failure that may pass on its own (timeouts, 429, 5xx) from one that will not;
    ``status`` is the HTTP status when there was one, ``retry_after`` the seconds the server asked for,
    ``request`` the request that failed ("GET /v1/batches/batch_1") when known.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
        request: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.request = request


class Detached(KeyboardInterrupt):
    """Ctrl-C while a job was working or waiting: the ledger keeps its state and batches keep running.

    A KeyboardInterrupt, so that code catching ``EmbedsqlError`` does not swallow the user's Ctrl-C.
    """

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


# What to do about a path that fails, by errno: the one place that explains the operating system's
# errors, for the work folder as for the database. {setting} is where the path is set, {thing} what it names.
_FULL = "Free some space there, or set {setting} to {thing} with room."
_NO_PERMISSION = "You may not write there: change its permissions, or set {setting} to a path you can write."
_NOT_A_FOLDER = "{file} is a file, where a folder must be: move it, or set {setting} to another path."
_FIXES = {
    errno.ENOSPC: _FULL,
    errno.EDQUOT: _FULL,
    errno.EFBIG: _FULL,
    errno.ENOENT: "{missing} does not exist: create that folder, or set {setting} to a path whose folders exist.",
    errno.ENOTDIR: _NOT_A_FOLDER,
    errno.EEXIST: _NOT_A_FOLDER,
    errno.EACCES: _NO_PERMISSION,
    errno.EPERM: _NO_PERMISSION,
    errno.EROFS: "That file system is read-only: set {setting} to a path on a disk that can be written.",
    errno.ENAMETOOLONG: "The path is too long for the file system: set {setting} to a shorter path.",
    errno.ELOOP: "Its path runs through a loop of symbolic links: fix the links, or set {setting} to another path.",
}


def os_error_fix(error: OSError, setting: str, thing: str) -> str:
    """What to do about ``error``, met on a path that ``setting`` (a variable or flag) names, where the
    path is ``thing`` ("a folder", "a database"), by the error's errno."""
    fix = _FIXES.get(error.errno or 0, "Check that path, or set {setting} to another one.")
    names = {"setting": setting, "thing": thing, "missing": "A folder on the way", "file": "A part of the path"}
    if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.EEXIST) and error.filename is not None:
        path = Path(str(error.filename))
        # The first part of the path that is missing, or that is a file where a folder must be.
        for part in [*reversed(path.parents), path]:
            if not part.exists():
                names["missing"] = str(part)
                break
            if not part.is_dir():
                names["file"] = str(part)
                break
    return fix.format(**names)
