"""embedsql: from a SQL query to a DuckDB table of embeddings.

>>> import embedsql
>>> result = embedsql.run("select movieId, genres from movies", db="warehouse.duckdb")
>>> result.target, result.rows
('movies_embeddings', 62423)

The functions and classes below are imported when first used: ``import embedsql`` itself imports
neither DuckDB nor numpy, so that the ``embedsql`` command (``embedsql.__main__``) starts in a moment
and can answer a Ctrl-C during its imports with one line instead of a traceback.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigError,
    DatabaseError,
    Detached,
    EmbedsqlError,
    InputError,
    JobError,
    LoadError,
    QueryError,
    RemoteError,
    StorageError,
    TargetError,
)
from .events import BatchProgress, Notice, Outage, Progress

if TYPE_CHECKING:
    from .config import Settings, load_settings
    from .embed import connect, sql
    from .jobs import JobStatus, JobSummary, RunResult, job_status, list_jobs
    from .maps import map
    from .pipeline import cancel, resume, run
    from .search import search

__all__ = [
    "BatchProgress",
    "ConfigError",
    "DatabaseError",
    "Detached",
    "EmbedsqlError",
    "InputError",
    "JobError",
    "JobStatus",
    "JobSummary",
    "LoadError",
    "Notice",
    "Outage",
    "Progress",
    "QueryError",
    "RemoteError",
    "RunResult",
    "Settings",
    "StorageError",
    "TargetError",
    "cancel",
    "connect",
    "job_status",
    "list_jobs",
    "load_settings",
    "map",
    "resume",
    "run",
    "search",
    "sql",
]

# The module of each name imported on first use.
_LAZY = {
    "Settings": "config",
    "load_settings": "config",
    "connect": "embed",
    "sql": "embed",
    "JobStatus": "jobs",
    "JobSummary": "jobs",
    "RunResult": "jobs",
    "job_status": "jobs",
    "list_jobs": "jobs",
    "map": "maps",
    "cancel": "pipeline",
    "resume": "pipeline",
    "run": "pipeline",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'embedsql' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """The package, whose ``search`` is the function even once the module ``embedsql.search`` is imported
    (importing a submodule sets the package's attribute of that name to the module)."""

    @property
    def search(self) -> Any:
        return importlib.import_module(".search", __name__).search

    @search.setter
    def search(self, value: Any) -> None:
        pass  # the import system setting the submodule: embedsql.search stays the function


sys.modules[__name__].__class__ = _Package
