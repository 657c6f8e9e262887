"""Small helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]


def make_db(path: Path, sql: str) -> Path:
    """A DuckDB file at ``path`` made by running ``sql``."""
    con = duckdb.connect(str(path))
    try:
        con.execute(sql)
    finally:
        con.close()
    return path


def fetch(db: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows of ``sql`` from the database file ``db`` (opened read-only, then closed)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()
