"""Small helpers for writing DuckDB SQL and reading its errors, shared by every module that does."""

from __future__ import annotations

import functools

import duckdb

__all__ = ["describe", "duck_message", "literal", "quote", "scratch"]


def quote(identifier: str) -> str:
    """``identifier`` as a double-quoted SQL identifier, safe for any name."""
    return '"' + identifier.replace('"', '""') + '"'


def duck_message(error: BaseException) -> str:
    """DuckDB's message as one sentence, without the caret drawing under the SQL."""
    lines = []
    for line in str(error).splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            lines.append(line.strip())
    text = " ".join(lines).rstrip(".!") or type(error).__name__
    return text if text.endswith("?") else text + "."


def literal(text: str) -> str:
    """``text`` as a single-quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def describe(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[str, str]]:
    """(name, DuckDB type) of each column of the query ``sql``, bound but not run (``con.sql(...)``
    runs a query to learn its columns, and with it any ``random()`` or sequence the query calls)."""
    return [(row[0], row[1]) for row in con.execute(f"DESCRIBE (\n{sql}\n)").fetchall()]


def scratch() -> duckdb.DuckDBPyConnection:
    """A connection of its own (settings, registered tables) to the process's in-memory DuckDB, for
    work on values that touches no database file. Close it when done.

    Opening a DuckDB database costs ~30 ms (its catalog of functions is built each time); a cursor on
    one that is open costs nothing, so ``embedsql sql`` and ``search`` render their rows without
    opening a second database per command.
    """
    return _memory().cursor()


@functools.cache
def _memory() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()
