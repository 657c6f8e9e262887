"""DuckDB values through Arrow, unchanged: what ``embedsql.sql`` and ``embedsql.search`` return.

DuckDB's Arrow export changes the values of a few types: BIT comes as DuckDB's internal bytes, BIGNUM
as opaque bytes, TIME WITH TIME ZONE without its offset, and a UHUGEINT above 2**127 as a negative
DECIMAL(38,0). ``to_arrow`` has DuckDB turn those into its own text of the value (a CAST to VARCHAR,
also inside lists, arrays, structs, maps and unions). It names the DuckDB type in the field's metadata
(``DUCKDB_TYPE``) of those columns, and of those that DuckDB would read back as another type (HUGEINT
comes as a DECIMAL(38,0) that cannot hold all of it, JSON as VARCHAR), so that ``restored`` gives back
the very same values when the table goes back into DuckDB: to be printed (``formats.render``) or
joined (``search``). Every other type DuckDB exports as a value it reads back as the same one (an
infinite DATE, a TIME_NS, an INTERVAL, a MAP).
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pyarrow as pa
from duckdb.sqltypes import DuckDBPyType

from .duck import quote

__all__ = ["DUCKDB_TYPE", "NESTED", "NUMBERS", "parts", "restored", "to_arrow", "type_with_text"]

# Field metadata: the DuckDB type of a column that comes as its text, or that DuckDB reads back as another.
DUCKDB_TYPE = b"embedsql.duckdb_type"
# Type ids whose Arrow form is not the value (see the module's docstring).
_AS_TEXT = frozenset({"bit", "bignum", "time with time zone", "uhugeint"})
# Types that DuckDB reads back from their Arrow form as another type.
_READ_AS_OTHER = frozenset({"HUGEINT", "JSON"})
# Type ids of the types that hold other values.
NESTED = frozenset({"list", "array", "struct", "map", "union"})
# Type ids of numbers: their text is a number (or nan, inf, -inf).
NUMBERS = frozenset(
    {
        *("tinyint", "smallint", "integer", "bigint", "hugeint", "bignum"),
        *("utinyint", "usmallint", "uinteger", "ubigint", "uhugeint"),
        *("float", "double", "decimal"),
    }
)


def parts(duck_type: DuckDBPyType) -> list[tuple[str, DuckDBPyType]]:
    """(name, type) of the values inside a LIST or ARRAY (one, ``child``), a STRUCT (its fields), a MAP
    (``key`` and ``value``) or a UNION (its members, without the tag); [] for any other type."""
    if duck_type.id not in NESTED:
        return []
    children = [(name, t) for name, t in duck_type.children if isinstance(t, DuckDBPyType)]
    return children[1:] if duck_type.id == "union" else children


def type_with_text(duck_type: DuckDBPyType, as_text: Callable[[DuckDBPyType], bool]) -> str | None:
    """SQL of ``duck_type`` with every part for which ``as_text`` holds (at any depth) made VARCHAR;
    None when no part is."""
    kind = duck_type.id
    if kind not in NESTED:
        return "VARCHAR" if as_text(duck_type) else None
    members = parts(duck_type)
    changed = [type_with_text(t, as_text) for _, t in members]
    if all(c is None for c in changed):
        return None
    # A NULL-typed member has no SQL spelling of its own; VARCHAR holds its NULLs alike.
    spelled = [c or ("VARCHAR" if t.id == "null" else str(t)) for c, (_, t) in zip(changed, members, strict=True)]
    if kind == "list":
        return f"{spelled[0]}[]"
    if kind == "array":
        return f"{spelled[0]}[{dict(duck_type.children)['size']}]"
    if kind == "map":
        return f"MAP({spelled[0]}, {spelled[1]})"
    fields = ", ".join(f"{quote(name)} {s}" for (name, _), s in zip(members, spelled, strict=True))
    return f"{kind.upper()}({fields})"


def to_arrow(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    """The rows of ``relation`` as Arrow (run once), every value as DuckDB holds it (module docstring)."""
    types = relation.types
    text = [type_with_text(t, lambda part: part.id in _AS_TEXT) for t in types]
    marked = [
        t is not None or type_with_text(d, lambda p: str(p) in _READ_AS_OTHER) is not None
        for d, t in zip(types, text, strict=True)
    ]
    if not any(marked):
        return relation.to_arrow_table()
    if all(t is None for t in text):
        table = relation.to_arrow_table()
    else:
        # By position: a query may return two columns of one name.
        select = ", ".join(
            (f"CAST(#{i} AS {t})" if t else f"#{i}") + f" AS {quote(name)}"
            for i, (name, t) in enumerate(zip(relation.columns, text, strict=True), 1)
        )
        table = relation.project(select).to_arrow_table()
    fields = [
        field.with_metadata({**(field.metadata or {}), DUCKDB_TYPE: str(duck_type).encode()}) if mark else field
        for field, duck_type, mark in zip(table.schema, types, marked, strict=True)
    ]
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields, metadata=table.schema.metadata))


def restored(source: str, schema: pa.Schema) -> str:
    """A SELECT of the Arrow table registered as ``source`` (of ``schema``) that gives every column its
    DuckDB type back (those ``to_arrow`` marked), under its own name."""
    columns = []
    for i, field in enumerate(schema, 1):
        duck_type = (field.metadata or {}).get(DUCKDB_TYPE)
        columns.append((f"CAST(#{i} AS {duck_type.decode()})" if duck_type else f"#{i}") + f" AS {quote(field.name)}")
    return f"SELECT {', '.join(columns)} FROM {source}"
