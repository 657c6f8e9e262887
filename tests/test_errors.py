"""Bad input gets one clear line on stderr, exit status 1, and leaves nothing half-done."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

from embedsql.cli import cli
from embedsql.ledger import SCHEMA_VERSION
from embedsql.local_model import LocalModel

from helpers import fetch

EXTRA_TABLES = """
    CREATE TABLE dupes AS SELECT * FROM (VALUES (1, 'a'), (1, 'b'), (2, 'c'), (2, 'd'), (2, 'e'), (3, 'f')) t(id, body);
    CREATE TABLE null_keys AS SELECT * FROM (VALUES (1, 'a'), (NULL, 'b')) t(id, body);
    CREATE TABLE double_keys AS SELECT 1.5::DOUBLE AS id, 'x' AS body;
    CREATE TABLE other AS SELECT 1 AS id;
    CREATE TABLE embedding_key AS SELECT 1 AS embedding, 'x' AS body;
"""
Q = "select movieId, genres from movies"

CASES = [
    (
        "wrong SQL",
        ["selec movieId from movies"],
        'Parser Error: syntax error at or near "selec". Check the SQL of the query.',
    ),
    (
        "missing table",
        ["select movieId, genres from moviez"],
        'Catalog Error: Table with name moviez does not exist! Did you mean "movies"? '
        "Check the query's table and column names.",
    ),
    (
        "missing column",
        ["select movieId, genre from movies"],
        'Binder Error: Referenced column "genre" not found in FROM clause! Candidate bindings: "genres". '
        "Check the query's table and column names.",
    ),
    (
        "one column",
        ["select movieId from movies"],
        "the query returns only the key column 'movieId' and nothing to embed. "
        "Add the text column(s) after the key, e.g. select id, title from ...",
    ),
    (
        "unknown --key",
        [Q, "--key", "nope"],
        "--key 'nope' is not a column of the query. Its columns are: movieId, genres.",
    ),
    (
        "unknown --text",
        [Q, "--text", "title"],
        "--text 'title' is not a column of the query. Its columns are: movieId, genres.",
    ),
    (
        "column both key and text",
        [Q, "--key", "genres", "--text", "genres"],
        "column 'genres' is given as both key and text; a column can be one of them.",
    ),
    (
        "duplicate keys",
        ["select id, body from dupes"],
        "the key (id) is not unique: 2 values appear more than once, e.g. 2 (3 rows), 1 (2 rows). "
        "Make the key unique in the query, or name unique column(s) with --key.",
    ),
    (
        "NULL keys",
        ["select id, body from null_keys"],
        "the key (id) is NULL in 1 of 2 rows; every row needs a key to join its vector back. "
        "Filter them out (WHERE ... IS NOT NULL) or choose another --key.",
    ),
    (
        "unsupported key type",
        ["select id, body from double_keys"],
        "key column 'id' has type DOUBLE, which cannot serve as a key. Supported: integers, DECIMAL, VARCHAR, "
        "UUID, DATE, TIME, TIMESTAMP, BOOLEAN and BLOB. Cast it in the query or choose another --key.",
    ),
    (
        "key named embedding",
        ["select embedding, body from embedding_key"],
        "a key column may not be called 'embedding': the target table uses that name for the vectors. "
        'Rename it in the query, e.g. "embedding" AS embedding_key.',
    ),
    (
        "repeated column name",
        ["select movieId, genres, genres from movies"],
        "the query returns more than one column named 'genres'. Give each column its own name with AS.",
    ),
    (
        "side effects",
        ["delete from movies"],
        "embedsql only reads data: the query is a DELETE statement. Pass a SELECT (or FROM) query.",
    ),
    (
        "a CREATE statement",
        ["create table stolen as select * from movies"],
        "embedsql only reads data: the query is a CREATE statement. Pass a SELECT (or FROM) query.",
    ),
    (
        "an INSERT hidden after a comment",
        ["/* select movieId, genres from movies */ insert into movies values (0, 'x', 'y')"],
        "embedsql only reads data: the query is an INSERT statement. Pass a SELECT (or FROM) query.",
    ),
    (
        "two statements",
        ["select 1 as a, 2 as b; drop table movies"],
        "the query holds 2 statements; pass exactly one SELECT.",
    ),
    (
        "no rows under replace",
        [Q + " where movieId < 0"],
        "the query returned no rows; replacing the target with an empty table is almost certainly a mistake. "
        "Check the query's WHERE clause, or use --mode upsert to add nothing.",
    ),
    (
        "query fails while running",
        ["select movieId, cast(title as integer) from movies"],
        "the query failed: Conversion Error: Could not convert string 'Toy Story (1995)' to INT32 when casting "
        "from source column title. Check the query and the data it reads.",
    ),
    (
        "two tables, no --into",
        ["select m.movieId, m.genres from movies m join other o on m.movieId = o.id"],
        "the query reads 2 tables (movies, other), so the target table cannot be named after it. "
        "Name it with --into TABLE.",
    ),
    (
        "--into another database",
        [Q, "--into", "a.b.c"],
        "--into a.b.c names a table of database a, but embedsql works only in the database of --db / EMBEDSQL_DB "
        "(warehouse). Name a table there, e.g. --into b.c.",
    ),
    (
        "SQL injection through --into",
        [Q, "--into", "x; drop table movies"],
        "--into 'x; drop table movies' is not a table name. Use table or schema.table (letters, digits, _), "
        "or double-quote a name with other characters: --into '\"my table\"'.",
    ),
    (
        "--into the ledger schema",
        [Q, "--into", "embedsql.x"],
        "--into 'embedsql.x' names the ledger's own schema `embedsql`; pick another schema.",
    ),
    (
        "target is a user table",
        [Q, "--into", "other"],
        "table other already exists and was not written by embedsql. Choose another --into, "
        'or drop it first (DROP TABLE "other").',
    ),
    (
        "unknown model",
        [Q, "--model", "nope"],
        "unknown model 'nope'. Known models: all-MiniLM-L6-v2, text-embedding-3-small, text-embedding-3-large, "
        "text-embedding-ada-002. Check --model / EMBEDSQL_MODEL.",
    ),
    (
        "--dimensions on a fixed-size model",
        [Q, "--dimensions", "100"],
        "model all-MiniLM-L6-v2 always returns 384 dimensions; it cannot give 100. "
        "Drop --dimensions / EMBEDSQL_DIMENSIONS, or use a text-embedding-3 model.",
    ),
    (
        "--dimensions above the model's",
        [Q, "--model", "text-embedding-3-small", "--dimensions", "5000", "--dry-run"],
        "--dimensions 5000 is more than model text-embedding-3-small returns (1536). Pick a value from 1 to 1536.",
    ),
    (
        "OpenAI model without a key",
        [Q, "--model", "text-embedding-3-small"],
        "model text-embedding-3-small runs on the OpenAI API, which needs a key. Set OPENAI_API_KEY in the "
        "environment or in .env, or use the offline model (--model all-MiniLM-L6-v2).",
    ),
]


@pytest.fixture
def db(movies_db: Path) -> Path:
    con = duckdb.connect(str(movies_db))
    con.execute(EXTRA_TABLES)
    con.close()
    return movies_db


def assert_nothing_written(db: Path, tmp_path: Path) -> None:
    assert fetch(
        db,
        "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '%embeddings%' "
        "OR schema_name NOT IN ('main', 'embedsql')",
    ) == [(0,)]
    if fetch(db, "SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'embedsql'") == [(1,)]:
        assert fetch(db, "SELECT count(*) FROM embedsql.jobs") == [(0,)]
        assert fetch(db, "SELECT count(*) FROM embedsql.shards") == [(0,)]
        assert fetch(
            db, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'embedsql' AND table_name LIKE 'rows_%'"
        ) == [(0,)]
    assert fetch(db, "SELECT count(*) FROM movies") == [(62_423,)]
    work = tmp_path / ".embedsql"
    assert not work.exists() or not [p for p in work.iterdir() if not p.name.startswith("dry-run-")]


@pytest.mark.parametrize(("args", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_and_writes_nothing(
    db: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(cli, ["run", *args])

    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == f"Error: {message}"
    assert_nothing_written(db, tmp_path)


def test_a_target_written_with_another_model_is_refused(db: Path, tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, ["run", Q + " where movieId <= 3"]).exit_code == 0
    jobs = fetch(db, "SELECT count(*) FROM embedsql.jobs")

    result = CliRunner().invoke(cli, ["run", Q, "--model", "text-embedding-3-small", "--dry-run"])

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: table movies_embeddings holds 384-d vectors of all-MiniLM-L6-v2; this job makes 1536-d vectors of "
        "text-embedding-3-small, which cannot be compared with them. Use --model all-MiniLM-L6-v2, another --into, "
        'or drop the table (DROP TABLE "movies_embeddings").'
    )
    assert fetch(db, "SELECT count(*) FROM embedsql.jobs") == jobs
    assert fetch(db, "SELECT count(*) FROM movies_embeddings") == [(3,)]


def test_a_target_with_another_key_is_refused(db: Path) -> None:
    assert CliRunner().invoke(cli, ["run", Q + " where movieId <= 3"]).exit_code == 0

    result = CliRunner().invoke(cli, ["run", "select movieId::VARCHAR as movieId, genres from movies"])

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: table movies_embeddings is keyed by (movieId INTEGER) but this query's key is (movieId VARCHAR). "
        'Use the same key columns, another --into, or drop the table (DROP TABLE "movies_embeddings").'
    )
    assert fetch(db, "SELECT count(*) FROM movies_embeddings") == [(3,)]


def test_a_database_that_does_not_exist(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", Q, "--db", "nowhere/x.duckdb"])

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: database 'nowhere/x.duckdb' does not exist. Check --db / EMBEDSQL_DB: embedsql opens an existing "
        "DuckDB database (only the example, warehouse.duckdb, is built, from sql/warehouse.sql beside it)."
    )
    assert not (tmp_path / "nowhere").exists()


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "notes.duckdb").write_text("just some text, not a database\n" * 200)

    result = CliRunner().invoke(cli, ["run", Q, "--db", "notes.duckdb"])

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: --db 'notes.duckdb' is not a DuckDB database. Pass --db / EMBEDSQL_DB a DuckDB database file; to "
        "embed the rows of another file, query it from one (select ... from 'notes.duckdb')."
    )
    assert (tmp_path / "notes.duckdb").read_text() == "just some text, not a database\n" * 200


def test_a_database_in_use_by_another_process(db: Path) -> None:
    import subprocess
    import sys
    import time

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); time.sleep(60)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "ok\n"
        result = CliRunner().invoke(cli, ["run", Q], env={"EMBEDSQL_LOCK_WAIT": "0.3"})
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
        time.sleep(0.1)

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: database 'warehouse.duckdb' is in use by another process (PID {holder.pid}) and stayed busy for "
        "0.3 s. DuckDB allows one writer at a time: wait for that process to finish, or close it, then run again "
        "(EMBEDSQL_LOCK_WAIT sets how long embedsql waits)."
    )


def test_the_query_is_required_once(db: Path) -> None:
    neither = CliRunner().invoke(cli, ["run"])
    both = CliRunner().invoke(cli, ["run", Q, "-f", "q.sql"])

    assert neither.exit_code == 2
    assert (
        neither.stderr.splitlines()[-1] == "Error: pass the query as an argument or with -f FILE (exactly one of them)."
    )
    assert both.exit_code == 2


def test_an_unknown_mode_is_a_usage_error(db: Path) -> None:
    result = CliRunner().invoke(cli, ["run", Q, "--mode", "merge"])

    assert result.exit_code == 2
    assert "Invalid value for '--mode': 'merge' is not one of 'replace', 'upsert'." in result.stderr


def test_resume_of_an_unknown_job(db: Path) -> None:
    assert CliRunner().invoke(cli, ["run", Q + " where movieId <= 3"]).exit_code == 0
    ((job_id,),) = fetch(db, "SELECT job_id FROM embedsql.jobs")

    unknown = CliRunner().invoke(cli, ["resume", "20990101-000000-beef"])
    done = CliRunner().invoke(cli, ["resume", job_id])

    assert unknown.exit_code == 1
    assert unknown.stderr == f"Error: no job '20990101-000000-beef' in this database. Recent jobs: {job_id}.\n"
    assert done.stderr == f"Error: job {job_id} is already complete; there is nothing to resume.\n"


def test_a_target_with_another_dimension_is_refused(db: Path, tmp_path: Path) -> None:
    first = CliRunner().invoke(
        cli, ["run", Q, "--model", "text-embedding-3-small", "--dimensions", "256", "--dry-run", "--into", "v"]
    )
    assert first.exit_code == 0, first.output
    con = duckdb.connect(str(db))  # a target written earlier with 256-d vectors of the model
    con.execute("CREATE TABLE v (movieId INTEGER, embedding FLOAT[256])")
    con.execute(
        "INSERT INTO embedsql.targets VALUES "
        "('\"v\"', 'text-embedding-3-small', 256, ['movieId'], ['INTEGER'], 'x', now())"
    )
    # ... with the comment embedsql writes on a table it wrote, by which it knows the table as its own.
    con.execute("COMMENT ON TABLE v IS 'embedsql: 256-d vectors of text-embedding-3-small, job x'")
    con.close()

    result = CliRunner().invoke(cli, ["run", Q, "--model", "text-embedding-3-small", "--dry-run", "--into", "v"])

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: table v holds 256-d vectors of text-embedding-3-small; this job makes 1536-d vectors of "
        "text-embedding-3-small, which cannot be compared with them. Use --model text-embedding-3-small "
        '--dimensions 256, another --into, or drop the table (DROP TABLE "v").'
    )


def test_invalid_utf8_in_a_blob_text_column_is_skipped_with_its_reason(tmp_path: Path, model: LocalModel) -> None:
    con = duckdb.connect(str(tmp_path / "b.duckdb"))
    con.execute("CREATE TABLE b (id INTEGER, body BLOB)")
    con.execute("INSERT INTO b VALUES (1, 'caf\\xC3\\xA9'::BLOB), (2, '\\xFF\\xFEbroken'::BLOB), (3, NULL)")
    con.close()

    result = CliRunner().invoke(cli, ["run", "select id, body from b", "--db", "b.duckdb"])

    assert result.exit_code == 0, result.output
    assert "  skipped rows             2 (1 NULL text, 1 invalid UTF-8)\n" in result.stdout
    ((key, vector),) = fetch(tmp_path / "b.duckdb", "SELECT id, embedding FROM b_embeddings")
    assert key == 1
    np.testing.assert_array_equal(np.array(vector, np.float32), model.embed(["café"])[0])
    assert fetch(
        tmp_path / "b.duckdb", f'SELECT __embedsql_skip FROM embedsql."rows_{_job(tmp_path)}" ORDER BY id'
    ) == [(None,), ("invalid UTF-8",), ("NULL text",)]


def _job(tmp_path: Path) -> str:
    return str(fetch(tmp_path / "b.duckdb", "SELECT job_id FROM embedsql.jobs")[0][0])


def test_a_ledger_from_a_newer_embedsql_is_refused(db: Path) -> None:
    assert CliRunner().invoke(cli, ["run", Q + " where movieId <= 3"]).exit_code == 0
    con = duckdb.connect(str(db))
    con.execute("UPDATE embedsql.meta SET value = '99' WHERE key = 'schema_version'")
    con.close()

    result = CliRunner().invoke(cli, ["run", Q])

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: the embedsql ledger in 'warehouse.duckdb' has schema version 99, newer than this embedsql "
        f"understands ({SCHEMA_VERSION}). Upgrade embedsql (pip install -U embedsql)."
    )


def test_a_schema_called_embedsql_that_is_not_a_ledger_is_refused(db: Path) -> None:
    con = duckdb.connect(str(db))
    con.execute("CREATE SCHEMA embedsql; CREATE TABLE embedsql.jobs (x INTEGER)")
    con.close()

    result = CliRunner().invoke(cli, ["run", Q])

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: schema embedsql in 'warehouse.duckdb' holds tables that are not an embedsql ledger (jobs). "
        "embedsql keeps its ledger in that schema: rename yours (ALTER TABLE embedsql.t SET SCHEMA other) or use "
        "another --db."
    )
    assert fetch(db, "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'embedsql'") == [("x",)]
