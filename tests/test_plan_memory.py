"""Planning runs DuckDB under a share of the user's memory_limit, and gives the connection back as it was."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from embedsql import ledger
from embedsql.config import Settings, size_bytes
from embedsql.models import choose_model
from embedsql.plan import make_plan
from embedsql.shards import ShardLimits
from embedsql.source import inspect_query


@pytest.mark.parametrize(
    ("user", "planning"),
    [("2GB", "244.1 MiB"), ("512MB", "244.1 MiB"), ("100MB", "95.3 MiB")],
)
def test_planning_runs_under_the_lower_of_its_share_and_the_users_limit(
    tmp_path: Path, user: str, planning: str
) -> None:
    db = tmp_path / "w.duckdb"
    duckdb.connect(str(db)).close()
    con = ledger.connect(db, memory_limit=user)
    try:
        con.execute("CREATE TABLE docs AS SELECT 1 AS id")
        before = con.execute("SELECT current_setting('memory_limit')").fetchall()
        # The text is the memory_limit DuckDB plans under, as planning reads the query.
        query = inspect_query(con, "SELECT id, current_setting('memory_limit') AS text FROM docs")
        con.execute("BEGIN TRANSACTION")
        plan = make_plan(
            con,
            query,
            job_id="j",
            rows_table='embedsql."rows_j"',
            choice=choose_model(Settings(db=db, model="text-embedding-3-small")),  # type: ignore[call-arg]
            mode="replace",
            directory=tmp_path / "shards",
            limits=ShardLimits(lines=10, bytes=10_000),
            on_long="error",
            memory_limit=user,
        )
        con.execute("ROLLBACK")
        after = con.execute("SELECT current_setting('memory_limit')").fetchall()
    finally:
        con.close()
    lines = (tmp_path / "shards" / plan.shards[0].path).read_text().splitlines()
    assert [json.loads(line)["body"]["input"] for line in lines] == [planning]
    assert after == before


def test_a_duckdb_size_in_bytes() -> None:
    assert [size_bytes(s) for s in ("512MB", "2GiB", "1.5 kb", "10B", "lots", "")] == [
        512_000_000,
        2 * 1024**3,
        1500,
        10,
        None,
        None,
    ]
