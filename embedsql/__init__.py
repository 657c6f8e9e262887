"""embedsql: from a SQL query to a DuckDB table of embeddings.

>>> import embedsql
>>> result = embedsql.run("select movieId, genres from movies", db="warehouse.duckdb")
>>> result.target, result.rows
('movies_embeddings', 62423)
"""

from .config import Settings, load_settings
from .errors import (
    ConfigError,
    DatabaseError,
    EmbedsqlError,
    InputError,
    JobError,
    LoadError,
    QueryError,
    TargetError,
)
from .events import Notice, Progress
from .pipeline import RunResult, resume, run

__all__ = [
    "ConfigError",
    "DatabaseError",
    "EmbedsqlError",
    "InputError",
    "JobError",
    "LoadError",
    "Notice",
    "Progress",
    "QueryError",
    "RunResult",
    "Settings",
    "TargetError",
    "load_settings",
    "resume",
    "run",
]
