"""The example warehouse: ``warehouse.duckdb`` built from ``sql/warehouse.sql`` on first use."""

from __future__ import annotations

from pathlib import Path

import duckdb

from .duck import duck_message
from .errors import DatabaseError
from .files import commit_file

__all__ = ["EXAMPLE_DB", "SCRIPT", "build_example_warehouse", "missing_database_message"]

EXAMPLE_DB = "warehouse.duckdb"
SCRIPT = Path("sql") / "warehouse.sql"


def build_example_warehouse(db: Path) -> bool:
    """Build the example warehouse at ``db`` if it is missing and its script lies beside it.

    Only a database named ``warehouse.duckdb`` with ``sql/warehouse.sql`` in the same folder is
    built, so a mistyped ``--db`` still fails loudly. Returns whether it built one.
    """
    root = db.parent
    script = root / SCRIPT
    try:
        if db.name != EXAMPLE_DB or db.exists() or not script.is_file():
            return False
    except OSError:  # a path the system refuses (too long, say): opening the database explains it
        return False
    partial = db.with_name(db.name + ".building")
    partial.unlink(missing_ok=True)
    try:
        con = duckdb.connect(str(partial))
        try:
            # The script's relative paths (data/movies.csv) are relative to the repository root.
            con.execute("SET file_search_path = ?", [str(root.resolve())])
            con.execute(script.read_text(encoding="utf-8"))
            con.execute("CHECKPOINT")
        finally:
            con.close()
    except duckdb.Error as e:
        partial.unlink(missing_ok=True)
        raise DatabaseError(
            f"cannot build the example warehouse from {script}: {duck_message(e)} "
            "Check that data/movies.csv is the file shipped with embedsql."
        ) from e
    commit_file(partial, db)
    return True


def missing_database_message(db: Path) -> str:
    """What to do about a database ``db`` that does not exist (and that ``build_example_warehouse``
    did not build): the example is built only where its script lies beside it."""
    if db.name == EXAMPLE_DB:
        return (
            f"database {str(db)!r} does not exist, and the example warehouse cannot be built here: there is no "
            f"{db.parent / SCRIPT}. Run the quickstart in the embedsql repository's folder (it holds "
            f"{SCRIPT}), or pass --db / EMBEDSQL_DB naming your DuckDB database."
        )
    return (
        f"database {str(db)!r} does not exist. Check --db / EMBEDSQL_DB: embedsql opens an existing DuckDB "
        f"database (only the example, {EXAMPLE_DB}, is built, from {SCRIPT} beside it)."
    )
