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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(_TEXTS, min_size=1, max_size=12, unique=True))
def test_a_planned_texts_hash_is_duckdbs_sha256_prefix(db: Path, texts: list[str]) -> None:
    rows, functions = _plan_hashes(db, texts, db.parent / "shards")
    assert [ours for ours, _ in rows] == [theirs for _, theirs in rows]
    sent = [t for t in texts if not blank(t)]
    assert sorted(h for h, _ in rows if h is not None) == sorted(text_hash(t) for t in sent)
    assert functions == []  # planning leaves no function of its own on the connection
