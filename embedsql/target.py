"""The target table: ``<key columns>, embedding FLOAT[N]``, and the model its vectors come from.

A fixed-size ``FLOAT[N]`` column lets ``array_cosine_similarity`` and friends work on it directly.
Vectors of different models cannot be compared, so a target remembers its model (in
``embedsql.targets``) and refuses vectors of another one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb

from .duck import quote
from .errors import ConfigError, TargetError
from .models import recorded_choice
from .plan import snapshot_columns
from .source import Query

__all__ = [
    "TargetName",
    "TargetRecord",
    "check_target",
    "default_target",
    "materialise",
    "parse_target",
    "recorded_target",
    "target_models",
]

_PART = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_NAME = re.compile(rf"^({_PART})(?:\.({_PART}))?$")


@dataclass(frozen=True)
class TargetName:
    """A table name as the user wrote it, split and quoted safely."""

    schema: str | None
    table: str

    @property
    def sql(self) -> str:
        """The name as quoted SQL: ``"schema"."table"`` or ``"table"``."""
        return f"{quote(self.schema)}.{quote(self.table)}" if self.schema else quote(self.table)

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table


def parse_target(text: str) -> TargetName:
    """Parse ``table``, ``schema.table`` or their double-quoted forms; anything else is refused."""
    match = _NAME.match(text.strip())
    if not match:
        raise ConfigError(
            f"--into {text!r} is not a table name. Use table or schema.table (letters, digits, _), "
            "or double-quote a name with other characters: --into '\"my table\"'."
        )
    parts = [_unquote(p) for p in match.groups() if p is not None]
    name = TargetName(parts[0], parts[1]) if len(parts) == 2 else TargetName(None, parts[0])
    if (name.schema or "").lower() == "embedsql":
        raise ConfigError(f"--into {text!r} names the ledger's own schema `embedsql`; pick another schema.")
    return name


def default_target(query: Query) -> TargetName:
    """``<table>_embeddings`` when the query reads exactly one table."""
    if len(query.tables) == 1:
        (table,) = query.tables
        return TargetName(None, f"{table}_embeddings")
    read = f"reads {len(query.tables)} tables ({', '.join(sorted(query.tables))})" if query.tables else "reads no table"
    raise ConfigError(f"the query {read}, so the target table cannot be named after it. Name it with --into TABLE.")


@dataclass(frozen=True)
class TargetRecord:
    """What ``embedsql.targets`` records of a table embedsql wrote."""

    model: str
    dimensions: int
    key_columns: tuple[str, ...]
    key_types: tuple[str, ...]


def recorded_target(con: duckdb.DuckDBPyConnection, name: TargetName) -> TargetRecord | None:
    """The record of table ``name``, or None if embedsql did not write it."""
    rows = con.execute(
        "SELECT model, dimensions, key_columns, key_types FROM embedsql.targets WHERE table_name = ?", [name.sql]
    ).fetchall()
    if not rows:
        return None
    model, dimensions, keys, types = rows[0]
    return TargetRecord(model, int(dimensions), tuple(keys), tuple(types))


def target_models(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    """(model, dimensions) of the vectors in the tables embedsql wrote, each pair once."""
    rows = con.execute("SELECT DISTINCT model, dimensions FROM embedsql.targets ORDER BY 1, 2").fetchall()
    return [(model, int(dimensions)) for model, dimensions in rows]


def check_target(
    con: duckdb.DuckDBPyConnection, name: TargetName, *, model: str, dimensions: int, query: Query
) -> None:
    """Refuse a target that exists with another model, size or key; pass one that fits or is new."""
    if not _exists(con, name):
        return
    recorded = recorded_target(con, name)
    if recorded is None:
        raise TargetError(
            f"table {name} already exists and was not written by embedsql. Choose another --into, "
            f"or drop it first (DROP TABLE {name.sql})."
        )
    old_model, old_dimensions = recorded.model, recorded.dimensions
    old_keys, old_types = recorded.key_columns, recorded.key_types
    if (old_model, old_dimensions) != (model, dimensions):
        native = recorded_choice(old_model, old_dimensions).model.dimensions
        flags = f"--model {old_model}" + ("" if old_dimensions == native else f" --dimensions {old_dimensions}")
        raise TargetError(
            f"table {name} holds {old_dimensions}-d vectors of {old_model}; this job makes {dimensions}-d "
            f"vectors of {model}, which cannot be compared with them. Use {flags}, "
            f"another --into, or drop the table (DROP TABLE {name.sql})."
        )
    keys = query.key_types()
    if [list(k) for k in keys] != [list(pair) for pair in zip(old_keys, old_types, strict=True)]:
        was = ", ".join(f"{k} {t}" for k, t in zip(old_keys, old_types, strict=True))
        now = ", ".join(f"{k} {t}" for k, t in keys)
        raise TargetError(
            f"table {name} is keyed by ({was}) but this query's key is ({now}). Use the same key "
            f"columns, another --into, or drop the table (DROP TABLE {name.sql})."
        )


def materialise(
    con: duckdb.DuckDBPyConnection,
    name: TargetName,
    *,
    mode: str,
    rows_table: str,
    cache: str,
    query: Query,
    model: str,
    dimensions: int,
    job_id: str,
) -> int:
    """Write the job's vectors into the target (call inside a transaction); returns rows written.

    A target that no longer fits the job (see ``check_target``) is refused and left as it is.
    ``replace`` makes the table exactly the query's rows that have a vector. ``upsert`` replaces the
    rows of the query's keys (dropping those whose text now has no vector) and keeps all others.
    """
    # Checked again here, in the transaction that writes: while the job waited, the table may have
    # been rewritten with another model's vectors, or replaced by a table of the user's.
    check_target(con, name, model=model, dimensions=dimensions, query=query)
    keys = ", ".join(f"r.{quote(k)}" for k in query.key_columns)
    joined = f"{rows_table} r JOIN {cache} c ON c.text_hash = r.{quote(snapshot_columns(query.key_columns).hash)}"
    select = f"SELECT {keys}, c.embedding FROM {joined}"
    if name.schema:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(name.schema)}")
    if mode == "replace" or not _exists(con, name):
        con.execute(f"CREATE OR REPLACE TABLE {name.sql} AS {select}")
    else:
        match = " AND ".join(f"t.{quote(k)} = r.{quote(k)}" for k in query.key_columns)
        con.execute(f"DELETE FROM {name.sql} t USING {rows_table} r WHERE {match}")
        con.execute(f"INSERT INTO {name.sql} {select}")
    written = con.execute(f"SELECT count(*) FROM {joined}").fetchall()[0][0]
    key_names = [k for k, _ in query.key_types()]
    key_types = [t for _, t in query.key_types()]
    con.execute(
        "INSERT OR REPLACE INTO embedsql.targets VALUES (?, ?, ?, ?, ?, ?, now())",
        [name.sql, model, dimensions, key_names, key_types, job_id],
    )
    comment = f"embedsql: {dimensions}-d vectors of {model}, job {job_id}"
    con.execute(f"COMMENT ON TABLE {name.sql} IS '{comment}'")
    return int(written)


def _exists(con: duckdb.DuckDBPyConnection, name: TargetName) -> bool:
    schema = name.schema or con.execute("SELECT current_schema()").fetchall()[0][0]
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ?",
        [schema, name.table],
    ).fetchall()[0][0]
    return bool(found)


def _unquote(part: str) -> str:
    return part[1:-1].replace('""', '"') if part.startswith('"') else part
