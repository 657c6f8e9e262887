"""embedsql: from a SQL query to a DuckDB table of embeddings.

>>> import embedsql
>>> result = embedsql.run("select movieId, genres from movies", db="warehouse.duckdb")
>>> result.target, result.rows
('movies_embeddings', 62423)
"""

from .config import Settings, load_settings
from .embed import connect
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
from .pipeline import RunResult, cancel, resume, run
from .search import search

__all__ = [
    "BatchProgress",
    "ConfigError",
    "DatabaseError",
    "Detached",
    "EmbedsqlError",
    "InputError",
    "JobError",
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
    "load_settings",
    "resume",
    "run",
    "search",
]
