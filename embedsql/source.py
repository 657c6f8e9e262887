"""The user's query: check it, and decide which columns are the key and which the text.

By default the first column is the key and the others are joined (with a space) into the text,
as ``llm embed-multi --sql`` does; ``key=``/``text=`` name them instead. Composite keys are allowed
and keep their DuckDB types all the way to the target table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from .duck import describe, duck_message, literal, quote
from .errors import QueryError
from .readonly import read_only

__all__ = [
    "KEY_TYPES_SUPPORTED",
    "Query",
    "blank",
    "blank_sql",
    "inspect_query",
    "invalid_utf8",
    "key_type",
    "text_expression",
]

# Key types whose equality is exact, so a key joins back to exactly one row.
_KEY_TYPES = frozenset(
    {
        *("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"),
        *("UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"),
        *("VARCHAR", "UUID", "BOOLEAN", "BLOB", "DATE", "TIME"),
        *("TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE"),
    }
)
# The same, as messages list them.
KEY_TYPES_SUPPORTED = "integers, DECIMAL, VARCHAR, UUID, DATE, TIME, TIMESTAMP, BOOLEAN and BLOB"
_RESERVED = {"embedding"}


def key_type(type_name: str) -> bool:
    """Whether a column of this DuckDB type can be a key."""
    return type_name in _KEY_TYPES or type_name.startswith("DECIMAL")


# What "empty" means for a text, everywhere: Python's whitespace (str.isspace), which is what the
# services strip before refusing an input: U+3000, U+00A0, U+2000-U+200A, U+2028, U+0085, \x1c...
# Written out rather than found by testing all 1,114,112 code points, which cost every process that
# imports embedsql ~0.15 s at start-up; tests/test_empty_text.py checks it is exactly str.isspace's set.
_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# The same set as a regular expression (RE2) of any number of them.
_WHITESPACE_CLASS = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in _WHITESPACE) + "]*"


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
    if not sql.strip():
        raise QueryError("the query is empty. Pass a SELECT statement, or -f FILE with one.")
    checked = read_only(con, sql)
    try:
        columns = tuple(describe(con, checked.sql))
    except duckdb.Error as e:
        raise QueryError(f"{duck_message(e)} Check the query's table and column names.") from e

    names = [name for name, _ in columns]
    # DuckDB names are case-insensitive: "Title" and "title" are one name to every query over this one.
    repeated = sorted({n for n in names if [m.lower() for m in names].count(n.lower()) > 1})
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
        if not key_type(types[name]):
            raise QueryError(
                f"key column {name!r} has type {types[name]}, which cannot serve as a key. Supported: "
                f"{KEY_TYPES_SUPPORTED}. Cast it in the query or choose another --key."
            )
    return Query(checked.sql, columns, tuple(keys), tuple(texts), checked.tables())


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


def blank(text: object) -> bool:
    """True for a text that is never sent: NULL (None), empty, or only whitespace."""
    return not isinstance(text, str) or not text.strip(_WHITESPACE)


def blank_sql(text: str) -> str:
    """SQL that is true where the SQL expression ``text`` is NULL, empty or only whitespace (see ``blank``)."""
    # A full match of a character class fails at the first character that is not whitespace, so a
    # text costs a character or two; trim() copies the whole text first (2.3 s instead of 0.09 s for
    # 100k texts of ~1.3 kB, most of planning them).
    return f"coalesce(regexp_full_match({text}, {literal(_WHITESPACE_CLASS)}), true)"


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
