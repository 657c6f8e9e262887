"""embedsql: from a SQL query to a DuckDB table of embeddings.

>>> import embedsql
>>> result = embedsql.run("select movieId, genres from movies", db="warehouse.duckdb")
>>> result.target, result.rows
('movies_embeddings', 62423)
"""

from .config import Settings, load_settings
from .embed import connect, sql
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
from .events import BatchProgress, Notice, Progress
from .jobs import JobStatus, JobSummary, RunResult, job_status, list_jobs
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
    "resume",
    "run",
    "search",
    "sql",
]
