"""The user's query: check it, and decide which columns are the key and which the text.

By default the first column is the key and the others are joined (with a space) into the text,
as ``llm embed-multi --sql`` does; ``key=``/``text=`` name them instead. Composite keys are allowed
and keep their DuckDB types all the way to the target table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from .duck import duck_message, quote
from .errors import QueryError

__all__ = ["Query", "inspect_query", "invalid_utf8", "text_expression"]

# Key types whose equality is exact, so a key joins back to exactly one row.
_KEY_TYPES = frozenset(
    {
        *("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"),
        *("UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"),
        *("VARCHAR", "UUID", "BOOLEAN", "BLOB", "DATE", "TIME"),
        *("TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE"),
    }
)
_RESERVED = {"embedding"}


@dataclass(frozen=True)
class Query:
    """A checked query: its SQL, its columns with their types, and the role of each column."""

    sql: str
    columns: tuple[tuple[str, str], ...]
    key_columns: tuple[str, ...]
    text_columns: tuple[str, ...]
    # Tables the query reads, unqualified (used to name the default target).
    tables: frozenset[str]

    def key_types(self) -> tuple[tuple[str, str], ...]:
        """(name, DuckDB type) of each key column, in key order."""
        types = dict(self.columns)
        return tuple((name, types[name]) for name in self.key_columns)


def inspect_query(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    key: Sequence[str] = (),
    text: Sequence[str] = (),
) -> Query:
    """Bind ``sql`` without running it and work out its key and text columns."""
    sql = sql.strip().rstrip(";").strip()
    if not sql:
        raise QueryError("the query is empty. Pass a SELECT statement, or -f FILE with one.")
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise QueryError(f"{duck_message(e)} Check the SQL of the query.") from e
    if len(statements) != 1:
        raise QueryError(f"the query holds {len(statements)} statements; pass exactly one SELECT.")
    kind = statements[0].type.name
    if kind != "SELECT":
        article = "an" if kind[0] in "AEIOU" else "a"
        raise QueryError(
            f"embedsql only reads data: the query is {article} {kind} statement. Pass a SELECT (or FROM) query."
        )
    try:
        relation = con.sql(sql)
        columns = tuple(zip(relation.columns, (str(t) for t in relation.types), strict=True))
        tables = frozenset(con.get_table_names(sql))
    except duckdb.Error as e:
        raise QueryError(f"{duck_message(e)} Check the query's table and column names.") from e

    names = [name for name, _ in columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise QueryError(
            f"the query returns more than one column named {', '.join(map(repr, repeated))}. "
            "Give each column its own name with AS."
        )
    keys = _pick(key, names, "--key") or names[:1]
    texts = _pick(text, names, "--text") or [n for n in names if n not in keys]
    if not texts:
        raise QueryError(
            f"the query returns only the key column {', '.join(map(repr, keys))} and nothing to embed. "
            "Add the text column(s) after the key, e.g. select id, title from ..."
        )
    both = [n for n in keys if n in texts]
    if both:
        raise QueryError(f"column {both[0]!r} is given as both key and text; a column can be one of them.")
    types = dict(columns)
    for name in keys:
        if name.lower() in _RESERVED:
            raise QueryError(
                f"a key column may not be called {name!r}: the target table uses that name for the "
                f"vectors. Rename it in the query, e.g. {quote(name)} AS {name}_key."
            )
        if types[name] not in _KEY_TYPES and not types[name].startswith("DECIMAL"):
            raise QueryError(
                f"key column {name!r} has type {types[name]}, which cannot serve as a key. Supported: "
                "integers, DECIMAL, VARCHAR, UUID, DATE, TIME, TIMESTAMP, BOOLEAN and BLOB. "
                "Cast it in the query or choose another --key."
            )
    return Query(sql, columns, tuple(keys), tuple(texts), tables)


def text_expression(query: Query) -> str:
    """SQL for the text of a row: the text columns as VARCHAR, joined by spaces, NULLs left out.

    A row whose text columns are all NULL has a NULL text (not an empty one), so that the summary
    can tell "no value" from "empty value".
    """
    types = dict(query.columns)
    # A BLOB is text only if it is UTF-8: decode it strictly (a failed decode is NULL, and
    # `invalid_utf8` tells that row apart); a cast would turn its bytes into \xNN escapes instead.
    parts = [
        f"try(decode({quote(c)}))" if types[c] == "BLOB" else f"CAST({quote(c)} AS VARCHAR)" for c in query.text_columns
    ]
    if len(parts) == 1:
        return parts[0]
    all_null = " AND ".join(f"{quote(c)} IS NULL" for c in query.text_columns)
    return f"CASE WHEN {all_null} THEN NULL ELSE concat_ws(' ', {', '.join(parts)}) END"


def invalid_utf8(query: Query) -> str:
    """SQL that is true for a row whose BLOB text columns hold bytes that are not UTF-8."""
    types = dict(query.columns)
    checks = [
        f"({quote(c)} IS NOT NULL AND try(decode({quote(c)})) IS NULL)"
        for c in query.text_columns
        if types[c] == "BLOB"
    ]
    return " OR ".join(checks) or "false"


def _pick(wanted: Sequence[str], names: list[str], flag: str) -> list[str]:
    picked = []
    for name in wanted:
        if name in names:
            picked.append(name)
            continue
        folded = [n for n in names if n.lower() == name.lower()]
        if len(folded) == 1:  # DuckDB identifiers are case-insensitive; be as forgiving
            picked.append(folded[0])
            continue
        raise QueryError(f"{flag} {name!r} is not a column of the query. Its columns are: {', '.join(names)}.")
    return picked
