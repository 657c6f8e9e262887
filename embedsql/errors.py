"""The exceptions embedsql raises on purpose.

Every message says what happened, the offending value and how to fix it, so the CLI can print
it as it is (``Error: <message>``) and exit 1. Anything that is not an ``EmbedsqlError`` is a
bug and keeps its traceback.

::

    EmbedsqlError
     ├── ConfigError        a setting, flag, environment variable or config file is wrong
     ├── DatabaseError      the database file cannot be opened or is in use
     ├── QueryError         the SQL query fails, or its columns do not fit the job
     ├── InputError         the rows themselves are unusable (duplicate or NULL keys)
     ├── TargetError        the target table exists with another model or shape
     ├── JobError           a job id that does not exist, or a job that cannot go on
     └── LoadError          a result file that cannot be read back
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatabaseError",
    "EmbedsqlError",
    "InputError",
    "JobError",
    "LoadError",
    "QueryError",
    "TargetError",
]


class EmbedsqlError(Exception):
    """Base class of every error embedsql raises on purpose."""


class ConfigError(EmbedsqlError):
    """A setting is missing, malformed, or names something that does not exist."""


class DatabaseError(EmbedsqlError):
    """The DuckDB database cannot be opened, created or written."""


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
