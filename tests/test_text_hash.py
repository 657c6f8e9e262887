"""Planning keys each text as the cache does: the first 32 hex digits of the sha256 of its UTF-8
bytes, exactly DuckDB's ``substr(sha256(text), 1, 32)``, whichever of DuckDB or Python hashes it."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedsql import ledger
from embedsql.config import Settings
from embedsql.embed import text_hash
from embedsql.errors import QueryError
from embedsql.models import choose_model
from embedsql.plan import make_plan
from embedsql.shards import ShardLimits
from embedsql.source import blank, inspect_query

# Around the length where planning stops hashing in DuckDB and starts hashing in Python, and far past it.
_LENGTHS = st.sampled_from([0, 1, 199, 200, 201, 5_000])
_TEXTS = st.one_of(
    st.text(),  # any code point DuckDB can hold (no surrogates), NUL included
    st.text(alphabet="\x00 \t\u3000😀é\U0010ffff"),  # NUL, whitespace, emoji, the last code point
    st.builds(lambda n, s: (s or "x") * n, _LENGTHS, st.text(min_size=1, max_size=3)),
    st.builds(lambda t: " " * 300 + t + "\u3000" * 300, st.text(max_size=3)),  # long, empty after trim
)


def _plan_hashes(db: Path, texts: list[str], shards: Path) -> tuple[list[tuple[str | None, str | None]], list[str]]:
    """(the snapshot's hash, DuckDB's substr(sha256(text), 1, 32)) of each text in key order, and
    the functions left on the connection after planning."""
    con = ledger.connect(db, memory_limit="512MB")
    try:
        con.register("given", pa.table({"id": range(len(texts)), "body": pa.array(texts, pa.string())}))
        con.execute("CREATE OR REPLACE TABLE docs AS SELECT * FROM given")
        query = inspect_query(con, "SELECT id, body FROM docs")
        con.execute("BEGIN TRANSACTION")
        make_plan(
            con,
            query,
            job_id="j",
            rows_table='embedsql."rows_j"',
            choice=choose_model(Settings(db=db, model="text-embedding-3-small")),  # type: ignore[call-arg]
            mode="replace",
            directory=shards,
            limits=ShardLimits(lines=1_000, bytes=10_000_000),
            on_long="truncate",  # every text keeps its hash
            memory_limit="512MB",
        )
        rows = con.execute(
            "SELECT r.__embedsql_hash, CASE WHEN r.__embedsql_skip IS NULL THEN substr(sha256(d.body), 1, 32) END "
            'FROM embedsql."rows_j" AS r JOIN docs AS d USING (id) ORDER BY id'
        ).fetchall()
        con.execute("ROLLBACK")
        functions = [r[0] for r in con.execute("SELECT function_name FROM duckdb_functions()").fetchall()]
    finally:
        con.close()
        shutil.rmtree(shards, ignore_errors=True)
    return rows, [f for f in functions if "embedsql" in f]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hash") / "w.duckdb"
    duckdb.connect(str(path)).close()
    return path


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(_TEXTS, min_size=1, max_size=12, unique=True))
def test_a_planned_texts_hash_is_duckdbs_sha256_prefix(db: Path, texts: list[str]) -> None:
    rows, functions = _plan_hashes(db, texts, db.parent / "shards")
    assert [ours for ours, _ in rows] == [theirs for _, theirs in rows]
    sent = [t for t in texts if not blank(t)]
    assert sorted(h for h, _ in rows if h is not None) == sorted(text_hash(t) for t in sent)
    assert functions == []  # planning leaves no function of its own on the connection


@pytest.mark.parametrize("memory_limit", ["512MB", "100MB"])  # planning lowers the limit, or not
def test_a_plan_that_fails_leaves_its_connection_able_to_plan_again(tmp_path: Path, memory_limit: str) -> None:
    db = tmp_path / "w.duckdb"
    duckdb.connect(str(db)).close()
    con = ledger.connect(db, memory_limit=memory_limit)
    limit = "SELECT current_setting('memory_limit')"
    before = con.execute(limit).fetchall()
    try:
        con.execute("CREATE TABLE docs AS SELECT 1 AS id, 'Toy Story (1995)' AS body, repeat('x', 300) AS long")
        choice = choose_model(Settings(db=db, model="text-embedding-3-small"))  # type: ignore[call-arg]

        def plan(sql: str, job: str) -> None:
            make_plan(
                con,
                inspect_query(con, sql),
                job_id=job,
                rows_table=f'embedsql."rows_{job}"',
                choice=choice,
                mode="replace",
                directory=tmp_path / job,
                limits=ShardLimits(lines=1_000, bytes=10_000_000),
                on_long="truncate",
                memory_limit=memory_limit,
            )

        con.execute("BEGIN TRANSACTION")
        with pytest.raises(QueryError, match=r"^the query failed: Conversion Error: Could not convert string"):
            plan("SELECT id, body::INTEGER::VARCHAR AS t FROM docs", "a")
        con.execute("ROLLBACK")
        con.execute("BEGIN TRANSACTION")
        plan("SELECT id, long FROM docs", "b")
        hashes = con.execute('SELECT __embedsql_hash FROM embedsql."rows_b"').fetchall()
        con.execute("COMMIT")

        assert hashes == [(text_hash("x" * 300),)]
        assert con.execute(limit).fetchall() == before  # the user's limit, back after each plan
    finally:
        con.close()
