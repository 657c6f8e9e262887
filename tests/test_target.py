"""The target table is checked again when a job writes it, not only when the job is planned.

A batch job can wait for hours between its plan and its write; meanwhile another job, or the user,
may rewrite the target. Vectors of two models in one table cannot be compared, and a table of the
user's must never be replaced: the waiting job refuses to write, keeps its place, and finishes once
the target fits again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import embedsql
from embedsql.cli import cli
from embedsql.errors import TargetError

from fake_openai import FakeOpenAI, expected_vector
from helpers import FakeTime, fetch, make_db, texts_table, vectors_by_key

MODEL = "text-embedding-3-small"
QUERY = "select id, body from docs"


def _submitted(db: Path, fake_time: FakeTime, *, mode: str, into: str = "t") -> str:
    """A job of the OpenAI model at 384-d (the local model's size) into ``into``, submitted and left."""
    result = embedsql.run(
        QUERY,
        db=db,
        into=into,
        mode=mode,
        model=MODEL,
        dimensions=384,
        wait=False,
        **fake_time,
    )
    assert result.status == "submitted"
    return result.job_id


def _job_status(db: Path, job_id: str) -> str:
    ((status,),) = fetch(db, f"SELECT status FROM embedsql.jobs WHERE job_id = '{job_id}'")
    return str(status)


@pytest.mark.parametrize("mode", ["upsert", "replace"])
def test_a_waiting_job_refuses_a_target_rewritten_with_another_model(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, mode: str
) -> None:
    texts = {i: f"note {i} about {'owls' if i % 3 else 'foxes'}" for i in range(12)}
    db = texts_table(tmp_path / "d.duckdb", texts)
    job_id = _submitted(db, fake_time, mode=mode)
    # Meanwhile the offline model writes the same table, at the same size.
    embedsql.run(QUERY, db=db, into="t", model="all-MiniLM-L6-v2", runner="local")
    before = fetch(db, "SELECT id, embedding FROM t ORDER BY id")

    with pytest.raises(TargetError) as caught:
        embedsql.resume(job_id, db=db, **fake_time)

    assert str(caught.value) == (
        "table t holds 384-d vectors of all-MiniLM-L6-v2; this job makes 384-d vectors of text-embedding-3-small, "
        "which cannot be compared with them. Use --model all-MiniLM-L6-v2, another --into, or drop the table (DROP "
        f'TABLE "t"). Job {job_id} keeps its place: continue it with `embedsql resume {job_id}`.'
    )
    assert caught.value.job_id == job_id
    assert fetch(db, "SELECT id, embedding FROM t ORDER BY id") == before
    assert _job_status(db, job_id) == "prepared"

    # Once the table is out of the way, the job finishes from the cache: nothing is sent again.
    created = openai_server.batches_created
    make_db(db, "DROP TABLE t")
    result = embedsql.resume(job_id, db=db, **fake_time)
    assert (result.status, result.target_rows) == ("complete", 12)
    assert openai_server.batches_created == created
    vectors = vectors_by_key(db, "t")
    for key, text in texts.items():
        assert vectors[key].tolist() == expected_vector(MODEL, text, 384).tolist()


def test_a_waiting_job_never_replaces_a_table_the_user_made_meanwhile(tmp_path: Path, fake_time: FakeTime) -> None:
    db = texts_table(tmp_path / "d.duckdb", {1: "alpha", 2: "beta"})
    job_id = _submitted(db, fake_time, mode="replace", into="notes.t")
    make_db(db, "CREATE SCHEMA notes; CREATE TABLE notes.t AS SELECT 42 AS answer")

    with pytest.raises(TargetError) as caught:
        embedsql.resume(job_id, db=db, **fake_time)

    assert str(caught.value) == (
        "table notes.t already exists and was not written by embedsql. Choose another --into, or drop it first "
        f'(DROP TABLE "notes"."t"). Job {job_id} keeps its place: continue it with `embedsql resume {job_id}`.'
    )
    assert fetch(db, "SELECT * FROM notes.t") == [(42,)]
    assert _job_status(db, job_id) == "prepared"


def test_a_table_made_again_in_embedsqls_shape_is_the_users(tmp_path: Path) -> None:
    """After embedsql's table is dropped, a table the user makes under that name, with the same columns,
    is the user's: its record in the ledger does not make it embedsql's."""
    db = texts_table(tmp_path / "d.duckdb", {1: "alpha", 2: "beta", 3: "gamma"})
    embedsql.run(QUERY, db=db, into="t")
    make_db(db, "DROP TABLE t; CREATE TABLE t (id INTEGER, embedding FLOAT[384]); INSERT INTO t VALUES (7, NULL)")

    with pytest.raises(TargetError) as caught:
        embedsql.run("select id, body from docs where id < 3", db=db, into="T")

    assert str(caught.value) == (
        "table t already exists and was not written by embedsql. Choose another --into, or drop it first "
        '(DROP TABLE "t").'
    )
    assert fetch(db, "SELECT * FROM t") == [(7, None)]


SYSTEM = "names a table of database system, but embedsql works only in the database of --db / EMBEDSQL_DB (d)."
AMBIGUOUS = "which has the name of a database: DuckDB cannot tell the two apart in a name."


@pytest.mark.parametrize(
    ("into", "message"),
    [
        (
            "information_schema.tables",
            f"--into information_schema.tables {SYSTEM} Name a table there, e.g. --into tables.",
        ),
        ("INFORMATION_SCHEMA.x", f"--into INFORMATION_SCHEMA.x {SYSTEM} Name a table there, e.g. --into x."),
        ("pg_catalog.pg_class", f"--into pg_catalog.pg_class {SYSTEM} Name a table there, e.g. --into pg_class."),
        ("d.notes", f"--into d.notes names schema d, {AMBIGUOUS} Choose a table in another schema, e.g. --into notes."),
        ("D.notes", f"--into D.notes names schema D, {AMBIGUOUS} Choose a table in another schema, e.g. --into notes."),
        (
            "d.d.notes",
            f"--into d.d.notes names schema d, {AMBIGUOUS} Choose a table in another schema, e.g. --into notes.",
        ),
    ],
)
def test_names_duckdb_resolves_elsewhere_or_cannot_resolve_are_refused_before_the_job(
    tmp_path: Path, into: str, message: str
) -> None:
    db = texts_table(tmp_path / "d.duckdb", {1: "alpha"})
    make_db(db, "CREATE SCHEMA d")

    result = CliRunner().invoke(cli, ["run", QUERY, "--db", str(db), "--into", into])

    assert (result.exit_code, result.stderr.splitlines()[-1]) == (1, f"Error: {message}")
    assert fetch(db, "SELECT count(*) FROM embedsql.jobs") == [(0,)]
    assert fetch(db, "SELECT * FROM docs") == [(1, "alpha")]
