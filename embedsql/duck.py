"""Small helpers for writing DuckDB SQL and reading its errors, shared by every module that does."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import duckdb

__all__ = [
    "damaged_file",
    "describe",
    "duck_message",
    "literal",
    "lock_conflict",
    "missing_extension",
    "quote",
    "scratch",
]

# DuckDB's words when a database file does not hold what DuckDB wrote into it: a block whose checksum
# does not match, a file shorter than its blocks, stored metadata or data that does not parse. They
# come from whichever statement first reads the damaged part, which may be long after the file opened.
_DAMAGED = (
    "Corrupt database file",
    "Corrupted ",  # "Corrupted ALP segment", "Corrupted DICT_FSST segment", ...
    "Failed to load metadata pointer",
    "No more data remaining in MetadataReader",
    "Failed to deserialize",
)
# A read past the end of a file: the database, or its log, cut short (DuckDB names the file).
_CUT = re.compile(r'Could not read enough bytes from file "([^"]*)"')
# How DuckDB names the extension a statement needs and does not have (with autoinstall off).
_MISSING_EXTENSION = re.compile(r'Install it first using "INSTALL (\w+)"|it exists in the (\w+) extension')


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


def lock_conflict(error: BaseException) -> bool:
    """Whether DuckDB refused to open a database file because another process holds its lock (and
    nothing else: "lock" appears in other messages too, "block" for one)."""
    return isinstance(error, duckdb.IOException) and "Could not set lock on file" in str(error)


def damaged_file(error: BaseException, database: Path) -> bool:
    """Whether DuckDB's ``error`` says that the file of ``database`` is damaged (see ``_DAMAGED``)."""
    if not isinstance(error, duckdb.Error):
        return False
    if isinstance(error, duckdb.SerializationException):  # what DuckDB stored does not read back
        return True
    cut = _CUT.search(str(error))
    if cut:
        return Path(cut.group(1)).resolve() in (database.resolve(), Path(f"{database}.wal").resolve())
    return any(words in str(error) for words in _DAMAGED)


def missing_extension(error: BaseException) -> str | None:
    """The DuckDB extension that ``error`` says a statement needs and is not installed, else None."""
    found = _MISSING_EXTENSION.search(str(error)) if isinstance(error, duckdb.Error) else None
    return (found.group(1) or found.group(2)) if found else None


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
