"""The target table: ``<key columns>, embedding FLOAT[N]``, and the model its vectors come from.

A fixed-size ``FLOAT[N]`` column lets ``array_cosine_similarity`` and friends work on it directly.
Vectors of different models cannot be compared, so a target remembers its model (in
``embedsql.targets``) and refuses vectors of another one.

A table is the one DuckDB takes its name for: names match whatever their ASCII letter case, quoted
or not; a name without a schema is in ``main``; ``x.t`` is table ``t`` of database ``x`` when this
database has no schema ``x``. ``lookup`` is the one place that decides it, for every table
embedsql writes (``--into``) or searches (``--table``), and ``TargetName.key`` tells two spellings
of one table apart from two tables (so a ledger that recorded another spelling still matches).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from dataclasses import dataclass
from typing import Any

import duckdb

from .duck import literal, quote, scratch
from .errors import ConfigError, TargetError
from .ledger import has_ledger
from .models import recorded_choice
from .plan import snapshot_columns
from .source import Query

__all__ = [
    "TargetName",
    "TargetRecord",
    "check_target",
    "default_target",
    "exists",
    "lookup",
    "materialise",
    "parse_target",
    "recorded_target",
    "target_models",
    "written_target",
]

# A part DuckDB reads without quotes: a letter or _ (any script), then letters, digits, _ or $.
_BARE = re.compile(r"[^\W\d][\w$]*")
_PART = rf'(?:{_BARE.pattern}|"(?:[^"]|"")*")'
_NAME = re.compile(rf"({_PART})(?:\.({_PART}))?(?:\.({_PART}))?")
# Databases other than ``?`` that hold a schema named ``?`` (any case).
_SCHEMA_ELSEWHERE = (
    "SELECT database_name FROM duckdb_schemas() WHERE database_name <> ? AND lower(schema_name) = lower(?)"
)
# The schema of a name without one (embedsql never changes a connection's search path).
_DEFAULT_SCHEMA = "main"
# DuckDB folds ASCII letters only: "Movies" is movies, "Données" is not données.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class TargetName:
    """A table name: its parts as written (``catalog`` only until it is looked up), or as the
    database spells the table it names."""

    schema: str | None
    table: str
    catalog: str | None = None

    @property
    def sql(self) -> str:
        """The name as quoted SQL: ``"schema"."table"`` or ``"table"``."""
        return ".".join(quote(part) for part in self._parts())

    @property
    def key(self) -> tuple[str, str]:
        """What DuckDB tells tables apart by: the schema (``main`` when none) and table, case folded."""
        return (_fold(self.schema or _DEFAULT_SCHEMA), _fold(self.table))

    def __str__(self) -> str:
        """The name as embedsql prints it: each part quoted only when it must be, so that the
        printed name, passed back to ``--into`` or ``--table`` (or written in SQL), is this table."""
        return ".".join(part if _plain(part) else quote(part) for part in self._parts())

    def _parts(self) -> list[str]:
        return [part for part in (self.catalog, self.schema) if part is not None] + [self.table]


def parse_target(text: str, *, flag: str = "--into") -> TargetName:
    """Parse ``table``, ``schema.table`` or ``catalog.schema.table``, each part bare or double-quoted
    (as ``str(TargetName)`` prints it); anything else is refused, naming ``flag``."""
    match = _NAME.fullmatch(text.strip())
    parts = [_unquote(p) for p in match.groups() if p is not None] if match else [text]
    if not all(part.strip() for part in parts):
        raise ConfigError(f"{flag} {text!r} is blank; pass a table name (table or schema.table).")
    if not match:
        raise ConfigError(
            f"{flag} {text!r} is not a table name. Use table or schema.table (letters, digits, _), "
            f"or double-quote a name with other characters: {flag} '\"my table\"'."
        )
    *prefix, table = parts
    catalog, schema = ([None] * (2 - len(prefix)) + prefix)[-2:]
    name = TargetName(schema, table, catalog)
    if _fold(schema or "") == "embedsql":
        raise ConfigError(f"{flag} {text!r} names the ledger's own schema `embedsql`; pick another schema.")
    return name


def default_target(con: duckdb.DuckDBPyConnection, query: Query) -> TargetName:
    """``<source>_embeddings`` when the query reads exactly one table or file; a file is named by
    its name without folder and extension (``'data/movies.csv'``, ``read_csv('movies.csv')``: movies)."""
    sources = sorted({_source_name(t) for t in query.tables} | _files_read(con, query.sql))
    if len(sources) == 1:
        return TargetName(None, f"{sources[0]}_embeddings")
    read = f"reads {len(sources)} tables ({', '.join(sources)})" if sources else "reads no table"
    raise ConfigError(f"the query {read}, so the target table cannot be named after it. Name it with --into TABLE.")


@dataclass(frozen=True)
class TargetRecord:
    """What ``embedsql.targets`` records of a table embedsql wrote."""

    model: str
    dimensions: int
    key_columns: tuple[str, ...]
    key_types: tuple[str, ...]
    # The job that wrote the table last.
    job_id: str


def recorded_target(con: duckdb.DuckDBPyConnection, name: TargetName) -> TargetRecord | None:
    """The record of table ``name`` (under any spelling of it, the newest), or None if embedsql did not write it."""
    records = _records(con, name)
    if not records:
        return None
    _, model, dimensions, keys, types, job_id = records[0]
    where = "WHERE database_name = current_database() AND schema_name = ? AND table_name = ?"
    at = [name.schema or _DEFAULT_SCHEMA, name.table]
    columns = con.execute(
        f"SELECT column_name, data_type FROM duckdb_columns() {where} ORDER BY column_index", at
    ).fetchall()
    comments = _column(con, f"SELECT comment FROM duckdb_tables() {where}", *at)
    # A table dropped and made again by someone else keeps embedsql's record, but neither the comment
    # embedsql wrote on it nor, usually, embedsql's columns.
    shape = ([c for c, _ in columns], columns[-1][1]) if columns else None
    if shape not in (None, ([*keys, "embedding"], f"FLOAT[{dimensions}]")):
        return None
    if comments and comments[0] != _comment(model, int(dimensions), job_id):
        return None
    return TargetRecord(model, int(dimensions), tuple(keys), tuple(types), str(job_id))


def written_target(
    con: duckdb.DuckDBPyConnection, text: str, *, flag: str = "--table"
) -> tuple[TargetName, TargetRecord]:
    """The table that ``text`` (passed as ``flag``) names, as the database spells it, and embedsql's record
    of it; refused, with the tables embedsql wrote, when there is no such table or embedsql did not write it."""
    name, kind = lookup(con, parse_target(text, flag=flag), flag=flag)
    recorded = recorded_target(con, name) if kind == "table" else None
    if recorded is not None:
        return name, recorded
    if kind is None:
        what = f"table {name} does not exist"
    elif kind == "view":
        what = f"{name} is a view, not a table embedsql wrote"
    else:
        what = f"table {name} was not written by embedsql, so its model is unknown"
    written = _written(con)
    close = difflib.get_close_matches(str(name), written, n=1)
    if close:
        fix = f"Did you mean {flag} {close[0]}?"
    elif written:
        fix = f"Tables embedsql wrote: {', '.join(written)}."
    else:
        fix = "embedsql has written no table in this database yet; make one with `embedsql run`."
    raise TargetError(f"{what} ({flag} {text.strip()}). {fix}")


def target_models(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    """(model, dimensions) of the vectors in the tables embedsql wrote, each pair once."""
    if not has_ledger(con):
        return []
    rows = con.execute("SELECT DISTINCT model, dimensions FROM embedsql.targets ORDER BY 1, 2").fetchall()
    return [(model, int(dimensions)) for model, dimensions in rows]


def check_target(
    con: duckdb.DuckDBPyConnection, name: TargetName, *, model: str, dimensions: int, query: Query
) -> TargetName:
    """The table ``name`` (``--into``) means, as the database spells it; refused when it is a view, or
    exists with another model, size or key, and passed when it fits or is new."""
    name, kind = lookup(con, name, flag="--into")
    if kind == "view":
        raise TargetError(
            f"{name} is a view; embedsql writes its vectors into a table of their own and never replaces a view. "
            f"Choose another --into, e.g. --into {TargetName(name.schema, name.table + '_embeddings')}."
        )
    if kind is None:
        return name
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
    return name


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
    create_empty: bool = True,
) -> int:
    """Write the job's vectors into the target (call inside a transaction); returns rows written.

    A target that no longer fits the job (see ``check_target``) is refused and left as it is.
    ``replace`` makes the table exactly the query's rows that have a vector. ``upsert`` replaces the
    rows of the query's keys (dropping those whose text now has no vector) and keeps all others.
    ``create_empty=False``: a target that does not exist is not created when no row has a vector (a job
    whose texts all failed leaves no empty table of its size in the way of the next run).
    """
    # Checked again here, in the transaction that writes: while the job waited, the table may have
    # been rewritten with another model's vectors, or replaced by a table of the user's.
    name = check_target(con, name, model=model, dimensions=dimensions, query=query)
    keys = ", ".join(f"r.{quote(k)}" for k in query.key_columns)
    joined = f"{rows_table} r JOIN {cache} c ON c.text_hash = r.{quote(snapshot_columns(query.key_columns).hash)}"
    select = f"SELECT {keys}, c.embedding FROM {joined}"
    if not create_empty and not exists(con, name) and not con.execute(f"SELECT 1 FROM {joined} LIMIT 1").fetchall():
        return 0
    if name.schema:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(name.schema)}")
    # Each writing statement answers the rows it wrote.
    if mode == "replace" or not exists(con, name):
        written = con.execute(f"CREATE OR REPLACE TABLE {name.sql} AS {select}").fetchall()[0][0]
    else:
        match = " AND ".join(f"t.{quote(k)} = r.{quote(k)}" for k in query.key_columns)
        con.execute(f"DELETE FROM {name.sql} t USING {rows_table} r WHERE {match}")
        written = con.execute(f"INSERT INTO {name.sql} {select}").fetchall()[0][0]
    key_names = [k for k, _ in query.key_types()]
    key_types = [t for _, t in query.key_types()]
    _forget(con, name)
    con.execute(
        "INSERT OR REPLACE INTO embedsql.targets VALUES (?, ?, ?, ?, ?, ?, now())",
        [name.sql, model, dimensions, key_names, key_types, job_id],
    )
    con.execute(f"COMMENT ON TABLE {name.sql} IS {literal(_comment(model, dimensions, job_id))}")
    return int(written)


def _comment(model: str, dimensions: int, job_id: str) -> str:
    """What embedsql writes on a table it wrote (``COMMENT ON TABLE``): how it tells its tables from
    tables of the same name and shape that someone made after dropping one of them."""
    return f"embedsql: {dimensions}-d vectors of {model}, job {job_id}"


def lookup(con: duckdb.DuckDBPyConnection, name: TargetName, *, flag: str = "--into") -> tuple[TargetName, str | None]:
    """The table or view ``name`` means in this database, as DuckDB resolves it, spelled as the database
    spells it (see ``_named``), and ``"table"``, ``"view"`` or None (nothing by that name yet).

    A name in another attached database (``temp.t``, ``system.main.t``) is refused: embedsql reads and
    writes only the database of ``--db``.
    """
    database = con.execute("SELECT current_database()").fetchall()[0][0]
    schemas = _column(con, "SELECT schema_name FROM duckdb_schemas() WHERE database_name = ?", database)
    catalog, schema = name.catalog, name.schema
    catalogs = _column(con, "SELECT database_name FROM duckdb_databases()")
    if schema is not None and _spelled(catalogs, schema) and _spelled(schemas, schema):
        raise ConfigError(  # DuckDB itself refuses such names as ambiguous
            f"{flag} {name} names schema {schema}, which has the name of a database: DuckDB cannot tell "
            f"the two apart in a name. Choose a table in another schema, e.g. {flag} {name.table}."
        )
    if catalog is None and schema is not None and not _spelled(schemas, schema):
        if _spelled(catalogs, schema):
            catalog, schema = schema, None  # DuckDB reads `x.t` as table t of database x when there is no schema x
        else:  # information_schema, pg_catalog: DuckDB finds them in its system database
            catalog = next(iter(_column(con, _SCHEMA_ELSEWHERE, database, schema)), None)
            schema = _DEFAULT_SCHEMA if catalog is not None else schema
    schema = _spelled(schemas, schema or _DEFAULT_SCHEMA) or schema
    if catalog is not None and _fold(catalog) != _fold(database):
        raise ConfigError(
            f"{flag} {name} names a table of database {catalog}, but embedsql works only in the database of "
            f"--db / EMBEDSQL_DB ({database}). Name a table there, e.g. {flag} {_named(schema, name.table)}."
        )
    found = con.execute(
        "SELECT table_name, 'table' FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
        "AND lower(table_name) = lower(?) UNION ALL "
        "SELECT view_name, 'view' FROM duckdb_views() WHERE database_name = ? AND schema_name = ? "
        "AND lower(view_name) = lower(?) AND NOT internal",
        [database, schema, name.table] * 2,
    ).fetchall()
    # lower() folds every script, DuckDB's names only ASCII: keep the matches DuckDB makes.
    matches = [(table, kind) for table, kind in found if _fold(table) == _fold(name.table)]
    table, kind = matches[0] if matches else (name.table, None)
    return _named(schema, table), kind


def _named(schema: str | None, table: str) -> TargetName:
    """A table's name as embedsql records and prints it: no schema when it is in the default one."""
    return TargetName(None if _fold(schema or _DEFAULT_SCHEMA) == _DEFAULT_SCHEMA else schema, table)


def _column(con: duckdb.DuckDBPyConnection, sql: str, *parameters: str) -> list[str]:
    return [value for (value,) in con.execute(sql, list(parameters)).fetchall()]


def exists(con: duckdb.DuckDBPyConnection, name: TargetName) -> bool:
    """Whether table ``name`` exists."""
    return lookup(con, name)[1] == "table"


def _records(con: duckdb.DuckDBPyConnection, name: TargetName) -> list[tuple[Any, ...]]:
    """The rows of ``embedsql.targets`` recorded for table ``name``, under any spelling, newest first."""
    if not has_ledger(con):  # a database embedsql never ran in, opened without starting a ledger
        return []
    rows = con.execute(
        "SELECT table_name, model, dimensions, key_columns, key_types, job_id FROM embedsql.targets "
        "ORDER BY updated_at DESC, table_name"
    ).fetchall()
    return [row for row in rows if parse_target(row[0]).key == name.key]


def _written(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The tables embedsql wrote that are still there (not made again by someone else), as embedsql prints them."""
    if not has_ledger(con):
        return []
    recorded = (lookup(con, parse_target(t)) for t in _column(con, "SELECT table_name FROM embedsql.targets"))
    return sorted({str(name) for name, kind in recorded if kind == "table" and recorded_target(con, name)})


def _forget(con: duckdb.DuckDBPyConnection, name: TargetName) -> None:
    """Remove the records of table ``name`` (any spelling), so that it is recorded once, as it is spelled now."""
    spellings = [row[0] for row in _records(con, name)]
    con.execute("DELETE FROM embedsql.targets WHERE list_contains(?, table_name)", [spellings])


def _source_name(source: str) -> str:
    """A table as it is named; a file (a path, a URL, a glob) by its last name without extension."""
    if not re.search(r"[./\\*:?]", source):
        return source
    for part in reversed(re.split(r"[/\\]", source)):
        stem = re.sub(r"\W+", "_", part.split(".")[0]).strip("_")
        if stem:
            return stem
    return source


def _files_read(con: duckdb.DuckDBPyConnection, sql: str) -> set[str]:
    """The names of the files that table functions in ``sql`` read: ``read_csv('movies.csv')`` gives movies."""
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "TABLE_FUNCTION":
                arguments = (node.get("function") or {}).get("arguments") or [{}]
                literal = (arguments[0].get("expression") or {}).get("literal") or {}
                if literal.get("kind") == "STRING":
                    names.add(_source_name(str(literal.get("text"))))
            node = list(node.values())
        if isinstance(node, list):
            for child in node:
                walk(child)

    walk(tree.get("statements") or [])
    return names


def _spelled(names: list[str], wanted: str) -> str | None:
    """The one of ``names`` that DuckDB takes ``wanted`` for, or None."""
    return next((n for n in names if _fold(n) == _fold(wanted)), None)


def _fold(name: str) -> str:
    return name.translate(_ASCII_LOWER)


@functools.cache
def _reserved() -> frozenset[str]:
    """DuckDB's reserved words, which a name can only be as a quoted identifier."""
    con = scratch()
    try:
        rows = con.execute("SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'").fetchall()
    finally:
        con.close()
    return frozenset(_fold(word) for (word,) in rows)


def _plain(part: str) -> bool:
    """True if DuckDB reads ``part`` without quotes as this very name."""
    return bool(_BARE.fullmatch(part)) and _fold(part) not in _reserved()


def _unquote(part: str) -> str:
    return part[1:-1].replace('""', '"') if part.startswith('"') else part
