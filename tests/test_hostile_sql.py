"""The user's SQL that embedsql only reads (``run``'s query, ``search --show``, ``--where``): it cannot
change anything, it is evaluated once per job, and embedsql's own names never collide with the user's.

Each refused case asserts the exact message, exit status 1, and that every user table, sequence,
database and file is exactly as before.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

import embedsql
from embedsql.cli import cli
from embedsql.duck import describe
from embedsql.local_model import LocalModel

from helpers import copy_db, fetch, isolated, make_db, vectors_by_key

EXTRA = """
    CREATE SEQUENCE s;
    CREATE TABLE small AS SELECT movieId, genres FROM movies WHERE movieId <= 5;
    CREATE MACRO bump() AS nextval('s');
    CREATE MACRO through(t) AS TABLE SELECT * FROM query_table(t);
    CREATE MACRO doubled(x) AS x * 2;
    CREATE VIEW numbered AS SELECT nextval('s') AS id, genres FROM small;
    CREATE VIEW "Numbered Twice" AS SELECT * FROM numbered;
    CREATE SCHEMA other;
    CREATE VIEW other.reseeded (id, t) AS SELECT movieId, genres || setseed(0.5) FROM small;
    CREATE MACRO over_view() AS TABLE SELECT * FROM numbered;
    CREATE VIEW shuffled AS SELECT movieId, genres, random() AS r, uuid() AS u FROM small;
"""
READS = "embedsql only reads data"
PARAMETERS = "has parameters (? or $1), and embedsql has no values to give them. Write the values into the SQL instead."
EFFECT = "which changes the database or runs other SQL. Take it out (for numbering rows, use row_number() OVER ())."
NEXTVAL = f"calls nextval(), {EFFECT}"


def statement(kind: str, what: str = "the query") -> str:
    article = "an" if kind[0] in "AEIOU" else "a"
    return f"{READS}: {what} is {article} {kind} statement. Pass a SELECT (or FROM) query."


@pytest.fixture(scope="module")
def db_template(tmp_path_factory: pytest.TempPathFactory, movies_template: Path) -> Path:
    return make_db(copy_db(movies_template, tmp_path_factory.mktemp("extra")), EXTRA)


@pytest.fixture
def db(db_template: Path, tmp_path: Path) -> Path:
    return copy_db(db_template, tmp_path)


def user_state(db: Path) -> dict[str, object]:
    """Everything of the user's that a side effect could change: every table's rows, the
    sequences, the databases attached, the extensions loaded, and the files beside the database.

    Rows as Arrow tables, which compare exactly and are read ~3x faster than Python tuples (the
    movies table has 62,423 rows)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [
            row[0]
            for row in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY 1"
            ).fetchall()
        ]
        state: dict[str, object] = {t: con.sql(f'SELECT * FROM "{t}" ORDER BY ALL').to_arrow_table() for t in tables}
        state["sequences"] = con.execute("SELECT sequence_name, last_value FROM duckdb_sequences()").fetchall()
        state["views"] = con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall()
    finally:
        con.close()
    state["files"] = sorted(p.name for p in db.parent.iterdir() if not p.name.startswith(".embedsql"))
    return state


def assert_no_job(db: Path) -> None:
    if fetch(db, "SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'embedsql'") == [(1,)]:
        assert fetch(db, "SELECT count(*) FROM embedsql.jobs") == [(0,)]


# (id, query, message) for `embedsql run QUERY --into out`.
REFUSED_QUERIES = [
    ("drop", "drop table movies", statement("DROP")),
    ("DROP upper", "DROP TABLE Movies", statement("DROP")),
    ("delete", "delete from movies", statement("DELETE")),
    (
        "update",
        "update movies set genres = ''",
        statement("UPDATE"),
    ),
    (
        "select then drop",
        "select movieId, genres from movies; drop table movies",
        "the query holds 2 statements; pass exactly one SELECT.",
    ),
    (
        "three statements",
        "select 1 as a, 'x' as b; delete from movies; select 2 as a, 'y' as b",
        "the query holds 3 statements; pass exactly one SELECT.",
    ),
    ("copy to", "copy movies to 'out.csv'", statement("COPY")),
    (
        "copy query to",
        "COPY (select movieId, genres from movies) TO 'out.parquet'",
        statement("COPY"),
    ),
    (
        "attach",
        "attach 'other.duckdb' as o",
        statement("ATTACH"),
    ),
    ("detach", "detach o", statement("DETACH")),
    ("install", "install json", statement("INSTALL")),
    ("INSTALL from a repository", "INSTALL json FROM core", statement("INSTALL")),
    ("force install", "force install json", statement("INSTALL")),
    ("install after comments", "-- the json reader\n/* once */ install json;", statement("INSTALL")),
    ("update extensions", "update extensions", statement("UPDATE")),
    ("load", "LOAD json", statement("LOAD")),
    ("load after a comment naming install", "/* install */ load json", statement("LOAD")),
    ("set", "set threads = 1", statement("SET")),
    ("pragma", "pragma version", statement("PRAGMA")),
    ("call", "call checkpoint()", statement("CALL")),
    ("export", "export database 'dump'", statement("EXPORT")),
    (
        "create sequence",
        "create sequence t",
        statement("CREATE"),
    ),
    (
        "nextval",
        "select nextval('s') as id, genres from movies limit 3",
        f"{READS}: the query calls nextval(), {EFFECT}",
    ),
    (
        "NEXTVAL qualified, upper",
        "SELECT main.NEXTVAL('s') AS id, genres FROM movies LIMIT 3",
        f"{READS}: the query calls nextval(), {EFFECT}",
    ),
    ("setval", "select setval('s', 100) as id, 'x' as t", f"{READS}: the query calls setval(), {EFFECT}"),
    (
        "nextval in a subquery",
        "select movieId, genres from movies where movieId in (select nextval('s'))",
        f"{READS}: the query calls nextval(), {EFFECT}",
    ),
    (
        "nextval in a CTE",
        "with n as (select nextval('s') as id) select id, 'x' as t from n",
        f"{READS}: the query calls nextval(), {EFFECT}",
    ),
    (
        "query()",
        "select * from query('select movieId, genres from movies')",
        f"{READS}: the query calls query(), {EFFECT}",
    ),
    ("query_table()", "select * from query_table('small')", f"{READS}: the query calls query_table(), {EFFECT}"),
    ("checkpoint()", "select * from checkpoint()", f"{READS}: the query calls checkpoint(), {EFFECT}"),
    ("setseed", "select setseed(0.5) as id, 'x' as t", f"{READS}: the query calls setseed(), {EFFECT}"),
    (
        "macro over nextval",
        "select bump() as id, 'x' as t",
        f"{READS}: the query (through macro bump) calls nextval(), {EFFECT}",
    ),
    (
        "table macro over query_table",
        "select * from through('small')",
        f"{READS}: the query (through macro through) calls query_table(), {EFFECT}",
    ),
    (
        "view calling nextval",
        "select id, genres from numbered",
        f"{READS}: the query (through view numbered) {NEXTVAL}",
    ),
    ("view, other case", "SELECT * FROM NUMBERED", f"{READS}: the query (through view numbered) {NEXTVAL}"),
    ("view, qualified", "select * from main.numbered", f"{READS}: the query (through view numbered) {NEXTVAL}"),
    (
        "view of that view, quoted",
        'select * from "Numbered Twice"',
        f"{READS}: the query (through view numbered) {NEXTVAL}",
    ),
    (
        "view in another schema",
        "select id, t from Other.Reseeded",
        f"{READS}: the query (through view reseeded) calls setseed(), {EFFECT}",
    ),
    ("table macro over the view", "select * from over_view()", f"{READS}: the query (through view numbered) {NEXTVAL}"),
    (
        "view in a subquery",
        "select movieId, genres from small where movieId in (select id from numbered)",
        f"{READS}: the query (through view numbered) {NEXTVAL}",
    ),
    (
        "CTE reading the view it is named after",
        "with numbered as (select * from numbered) select * from numbered",
        f"{READS}: the query (through view numbered) {NEXTVAL}",
    ),
    (
        "CTE of the view's name in a subquery, view outside",
        "select n.id, s.genres from (with numbered as (select 1 as id) select * from numbered) s2, numbered n, small s",
        f"{READS}: the query (through view numbered) {NEXTVAL}",
    ),
    ("write_log", "select write_log('x') as id, 'x' as t", f"{READS}: the query calls write_log(), {EFFECT}"),
    (
        "delete in a CTE",
        "with d as (delete from movies returning *) select movieId, genres from d",
        f"{READS}: the query holds a DELETE (in a WITH clause or a subquery). Pass a query that only reads.",
    ),
    (
        "update in a CTE",
        "with u as (update movies set genres = 'x' returning movieId, genres) select * from u",
        f"{READS}: the query holds an UPDATE (in a WITH clause or a subquery). Pass a query that only reads.",
    ),
    (
        "insert in a nested CTE",
        "select * from (with i as (insert into small values (99, 'x') returning *) select * from i)",
        f"{READS}: the query holds an INSERT (in a WITH clause or a subquery). Pass a query that only reads.",
    ),
    (
        "? parameter",
        "select movieId, genres from movies where movieId = ?",
        f"the query {PARAMETERS}",
    ),
    (
        "$1 parameter",
        "select $1 as id, genres from movies",
        f"the query {PARAMETERS}",
    ),
    (
        "named parameter",
        "select movieId, genres from movies where movieId = $id",
        f"the query {PARAMETERS}",
    ),
    (
        "only a comment",
        "/* select movieId, genres from movies */",
        "the query holds only comments. Pass a SELECT statement.",
    ),
    (
        "pivot in a subquery",
        "select * from (pivot small on genres using count(*))",
        "the query holds a PIVOT whose columns DuckDB must look up first, by running more than one statement. "
        "Name its columns: PIVOT ... ON col IN ('a', 'b') ...",
    ),
]


@pytest.mark.parametrize(("sql", "message"), [c[1:] for c in REFUSED_QUERIES], ids=[c[0] for c in REFUSED_QUERIES])
def test_run_refuses_sql_that_does_more_than_read(db: Path, sql: str, message: str) -> None:
    before = user_state(db)

    result = CliRunner().invoke(cli, ["run", sql, "--into", "out"])

    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == f"Error: {message}"
    assert user_state(db) == before
    assert_no_job(db)


@pytest.mark.parametrize(("sql", "message"), [REFUSED_QUERIES[0][1:], REFUSED_QUERIES[17][1:]])
def test_the_python_api_refuses_them_alike(db: Path, sql: str, message: str) -> None:
    before = user_state(db)

    with pytest.raises(embedsql.QueryError) as raised:
        embedsql.run(sql, into="out", db=db)

    assert str(raised.value) == message
    assert user_state(db) == before


def test_reading_files_is_allowed(db: Path, model: LocalModel, tmp_path: Path) -> None:
    con = duckdb.connect()
    con.execute("COPY (SELECT 1 AS id, 'red apples' AS body UNION ALL SELECT 2, 'sour lemons') TO 'docs.parquet'")
    con.execute("COPY (SELECT 3 AS id, 'green pears' AS body) TO 'docs.csv'")
    con.close()

    for sql, into in [("select * from 'docs.parquet'", "p"), ("select * from read_csv('docs.csv')", "c")]:
        result = CliRunner().invoke(cli, ["run", sql, "--into", into])
        assert result.exit_code == 0, result.output

    vectors = {**vectors_by_key(db, "p"), **vectors_by_key(db, "c")}
    expected = dict(zip([1, 2, 3], model.embed(["red apples", "sour lemons", "green pears"]), strict=True))
    assert set(vectors) == {1, 2, 3}
    for key, vector in expected.items():
        np.testing.assert_allclose(vectors[key], vector, atol=1e-6)


# --- evaluated once ---------------------------------------------------------------------------------


def test_binding_a_query_does_not_run_it() -> None:
    con = duckdb.connect()
    con.execute("CREATE SEQUENCE s")

    assert describe(con, "select nextval('s') as id, 'x' as t from range(3)") == [("id", "BIGINT"), ("t", "VARCHAR")]
    assert con.execute("SELECT last_value FROM duckdb_sequences()").fetchall() == [(None,)]


def test_a_query_that_is_not_deterministic_is_snapshotted_once(db: Path, model: LocalModel) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "select movieId, uuid()::VARCHAR || ' ' || random() as t from movies where movieId <= 4",
            "--into",
            "r",
        ],
    )

    assert result.exit_code == 0, result.output
    # Every vector in the target is that of the one text recorded for its key: one evaluation.
    job = fetch(db, "SELECT rows_table, distinct_texts FROM embedsql.jobs")[0]
    assert job[1] == 4
    hashes = dict(fetch(db, f"SELECT movieId, __embedsql_hash FROM {job[0]}"))
    cache = fetch(
        db,
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'embedsql' AND starts_with(table_name, 'cache_')",
    )
    assert len(cache) == 1
    stored = dict(fetch(db, f'SELECT text_hash, embedding FROM embedsql."{cache[0][0]}"'))
    vectors = vectors_by_key(db, "r", "movieId")
    assert sorted(vectors) == [1, 2, 3, 4]
    for key, vector in vectors.items():
        np.testing.assert_allclose(vector, np.asarray(stored[hashes[key]], np.float32))


# --- search --show and --where ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def searchable_template(tmp_path_factory: pytest.TempPathFactory, db_template: Path) -> Path:
    directory = tmp_path_factory.mktemp("searchable")
    db = copy_db(db_template, directory)
    with isolated(directory):
        embedsql.run("select movieId, genres from movies where movieId <= 20", into="movies_embeddings", db=db)
    return db


@pytest.fixture
def searchable(searchable_template: Path, tmp_path: Path) -> Path:
    return copy_db(searchable_template, tmp_path)


SEARCH = ["search", "space adventure", "--table", "movies_embeddings", "-k", "3", "--format", "csv"]
REFUSED_SEARCHES = [
    (
        "--show drop",
        ["--show", "drop table movies"],
        statement("DROP", "the --show query"),
    ),
    (
        "--show delete",
        ["--show", "DELETE FROM movies"],
        statement("DELETE", "the --show query"),
    ),
    (
        "--show two statements",
        ["--show", "select movieId, title from movies; drop table movies"],
        "the --show query holds 2 statements; pass exactly one SELECT.",
    ),
    (
        "--show copy to",
        ["--show", "copy movies to 'leak.csv'"],
        statement("COPY", "the --show query"),
    ),
    (
        "--show attach",
        ["--show", "attach 'x.duckdb'"],
        statement("ATTACH", "the --show query"),
    ),
    (
        "--show nextval",
        ["--show", "select movieId, nextval('s') as n from movies"],
        f"{READS}: the --show query calls nextval(), {EFFECT}",
    ),
    (
        "--show delete in a CTE",
        ["--show", "with d as (delete from movies returning *) select movieId, title from d"],
        f"{READS}: the --show query holds a DELETE (in a WITH clause or a subquery). Pass a query that only reads.",
    ),
    (
        "--show query()",
        ["--show", "select * from query('select movieId, title from movies')"],
        f"{READS}: the --show query calls query(), {EFFECT}",
    ),
    (
        "--show parameter",
        ["--show", "select movieId, title from movies where movieId > ?"],
        f"the --show query {PARAMETERS}",
    ),
    (
        "--where closing the parenthesis",
        ["--where", "true) ; drop table movies; select (1"],
        '--where must be one SQL condition: Parser Error: syntax error at or near ")". Check its SQL.',
    ),
    (
        "--where with a second statement",
        ["--where", "true; drop table movies"],
        '--where must be one SQL condition: Parser Error: "true; drop table movies" is not an expression list: it '
        "holds more than one statement. Check its SQL.",
    ),
    (
        "--show a view calling nextval",
        ["--show", "select m.movieId, n.id from movies m join numbered n using (genres)"],
        f"{READS}: the --show query (through view numbered) {NEXTVAL}",
    ),
    (
        "--where through a view",
        ["--where", "movieId in (select id from Numbered)"],
        f"{READS}: --where (through view numbered) {NEXTVAL}",
    ),
    (
        "--where nextval",
        ["--where", "movieId > nextval('s')"],
        f"{READS}: --where calls nextval(), {EFFECT}",
    ),
    (
        "--where through a macro",
        ["--where", "movieId > bump()"],
        f"{READS}: --where (through macro bump) calls nextval(), {EFFECT}",
    ),
    (
        "--where DELETE in a subquery",
        ["--where", "exists (with d as (delete from movies returning *) select 1 from d)"],
        f"{READS}: --where holds a DELETE (in a WITH clause or a subquery). Pass a query that only reads.",
    ),
    (
        "--where parameter",
        ["--where", "movieId = $1"],
        f"--where {PARAMETERS}",
    ),
]


@pytest.mark.parametrize(("args", "message"), [c[1:] for c in REFUSED_SEARCHES], ids=[c[0] for c in REFUSED_SEARCHES])
def test_search_refuses_show_and_where_that_do_more_than_read(searchable: Path, args: list[str], message: str) -> None:
    before = user_state(searchable)

    result = CliRunner().invoke(cli, [*SEARCH, *args])

    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == f"Error: {message}"
    assert user_state(searchable) == before


@pytest.mark.parametrize(
    "args",
    [
        ["--show", "select movieId, title from movies; -- titles"],
        ["--show", "-- titles\nselect title from movies"],
        ["--show", "from movies select title"],
        ["--where", "doubled(movieId) > 0 -- any"],
        ["--show", "select movieId, title from movies", "--where", "title is not null -- all"],
    ],
    ids=["trailing ; and comment", "leading comment, key added", "FROM first", "macro and comment", "both"],
)
def test_search_takes_show_and_where_with_comments_and_macros(searchable: Path, args: list[str]) -> None:
    before = user_state(searchable)

    plain = CliRunner().invoke(cli, [*SEARCH, "--show", "select movieId, title from movies"])
    result = CliRunner().invoke(cli, [*SEARCH, *args])

    assert result.exit_code == 0, result.output
    keys = [line.split(",")[0] for line in result.stdout.splitlines()]
    assert keys == [line.split(",")[0] for line in plain.stdout.splitlines()]
    assert user_state(searchable) == before


# --- embedsql's own names never collide with the user's ------------------------------------------------

INTERNAL = [
    "__embedsql_hash",
    "__EMBEDSQL_HASH",
    "__embedsql_skip",
    "__Embedsql_Skip",
    "__embedsql_text",
    "__embedsql_hash_1",
    "_embedsql_source",
    "rowid",
    "hash",
    "skip",
    "text",
    "bad",
    "k1",
    "n",
    "keys",
    "q",
    "with space",
    'quo"te',
    "dot.ted",
    "select",
]


@pytest.mark.parametrize("name", INTERNAL)
def test_a_key_column_named_like_an_internal_column(
    db: Path, name: str, genre_vectors: dict[str, np.ndarray], model: LocalModel
) -> None:
    quoted = '"' + name.replace('"', '""') + '"'
    first = CliRunner().invoke(
        cli, ["run", f"select movieId as {quoted}, genres from movies where movieId <= 5", "--into", "g"]
    )
    # A later job with other texts (titles) on the same model must get the titles' vectors.
    second = CliRunner().invoke(
        cli, ["run", f"select movieId as {quoted}, title from movies where movieId <= 5", "--into", "t"]
    )

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert "skipped" not in first.stderr + second.stderr
    rows = dict(fetch(db, "SELECT movieId, genres FROM small"))
    titles = dict(fetch(db, "SELECT movieId, title FROM movies WHERE movieId <= 5"))
    genres = vectors_by_key(db, "g", quoted)
    by_title = vectors_by_key(db, "t", quoted)
    assert sorted(genres) == sorted(by_title) == [1, 2, 3, 4, 5]
    title_vectors = model.embed([titles[k] for k in range(1, 6)])
    for key in range(1, 6):
        np.testing.assert_allclose(genres[key], genre_vectors[str(rows[key])], atol=1e-6)
        np.testing.assert_allclose(by_title[key], title_vectors[key - 1], atol=1e-6)


@pytest.mark.parametrize("name", ["__embedsql_text", "__embedsql_skip", "hash", "k1", "text", "with space"])
def test_a_text_column_named_like_an_internal_column(db: Path, name: str, genre_vectors: dict[str, np.ndarray]) -> None:
    quoted = '"' + name.replace('"', '""') + '"'
    result = CliRunner().invoke(
        cli, ["run", f"select movieId, genres as {quoted} from movies where movieId <= 5", "--into", "g"]
    )

    assert result.exit_code == 0, result.output
    rows = dict(fetch(db, "SELECT movieId, genres FROM small"))
    vectors = vectors_by_key(db, "g", "movieId")
    assert sorted(vectors) == [1, 2, 3, 4, 5]
    for key, vector in vectors.items():
        np.testing.assert_allclose(vector, genre_vectors[str(rows[key])], atol=1e-6)


def test_composite_keys_named_like_the_internal_columns_and_their_numbered_forms(db: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "run",
            'select movieId as "__embedsql_hash", movieId + 1 as "__embedsql_hash_1", movieId as "__EMBEDSQL_SKIP", '
            "genres from movies where movieId <= 3",
            "--key",
            "__embedsql_hash",
            "--key",
            "__embedsql_hash_1",
            "--key",
            "__EMBEDSQL_SKIP",
            "--into",
            "c",
        ],
    )

    assert result.exit_code == 0, result.output
    assert fetch(db, 'SELECT "__embedsql_hash", "__embedsql_hash_1", "__EMBEDSQL_SKIP" FROM c ORDER BY 1') == [
        (1, 2, 1),
        (2, 3, 2),
        (3, 4, 3),
    ]


def test_a_job_planned_with_the_earlier_snapshot_layout_still_finishes(db: Path) -> None:
    # The snapshot of earlier versions: the keys under their own names, then __embedsql_hash and __embedsql_skip.
    # A job is planned, its runner stopped before it embeds anything, and resumed.
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE ws AS SELECT movieId, genres FROM small UNION ALL SELECT 6, '\u3000'")
    con.close()
    from embedsql import ledger

    class Stop(Exception):
        pass

    planned: list[object] = []

    def stop(event: object) -> None:
        if planned:  # the plan is committed: stop at the runner's first word
            raise Stop
        if "shard(s) to embed" in str(getattr(event, "message", "")):
            planned.append(event)

    with pytest.raises(Stop):
        embedsql.run("select movieId, genres from ws", into="w", db=db, on_event=stop)
    con = duckdb.connect(str(db))
    (job_id, rows_table) = con.execute("SELECT job_id, rows_table FROM embedsql.jobs").fetchall()[0]
    assert [row[0] for row in con.execute(f"DESCRIBE {rows_table}").fetchall()] == [
        "movieId",
        "__embedsql_hash",
        "__embedsql_skip",
    ]
    assert ledger.get_job(con, job_id).status == "prepared"
    con.close()

    result = embedsql.resume(job_id, db=db)

    assert result.status == "complete"
    assert result.skipped == {"empty text": 1}
    assert fetch(db, "SELECT movieId FROM w ORDER BY 1") == [(1,), (2,), (3,), (4,), (5,)]


# --- every query DuckDB accepts works -------------------------------------------------------------------

VALID = [
    ("join using", "select a.movieId, b.genres from movies a join movies b using (movieId) where movieId <= 5"),
    ("natural join", "select movieId, genres from small a natural join small b"),
    ("exclude", "select * exclude (title) from movies where movieId <= 5"),
    ("from first", "from movies select movieId, genres where movieId <= 5"),
    ("with", "with g as (select movieId, genres from movies) select * from g where movieId <= 5"),
    ("qualify", "select movieId, genres from movies qualify row_number() over (order by movieId) <= 5"),
    (
        "window in select",
        "select movieId, genres from (select movieId, genres, rank() over (order by movieId) r from movies) "
        "where r <= 5",
    ),
    ("leading comment", "-- the first five\nselect movieId, genres from movies where movieId <= 5"),
    ("trailing ; and comment", "select movieId, genres from movies where movieId <= 5; -- done"),
    ("block comment", "/* five */ select movieId, genres from movies where movieId <= 5 /* ; */"),
    ("union", "select movieId, genres from small union select movieId, genres from small"),
    ("macro", "select doubled(movieId) // 2 as movieId, genres from small"),
    ("a view calling random() and uuid()", "select movieId, genres from shuffled"),
    ("a CTE hiding a view of its name", "with numbered as (select movieId, genres from small) select * from numbered"),
]


@pytest.mark.parametrize("sql", [c[1] for c in VALID], ids=[c[0] for c in VALID])
def test_queries_duckdb_accepts_are_embedded(db: Path, sql: str, genre_vectors: dict[str, np.ndarray]) -> None:
    before = user_state(db)

    result = embedsql.run(sql, into="out", db=db)

    assert result.status == "complete"
    rows = dict(fetch(db, "SELECT movieId, genres FROM small"))
    vectors = vectors_by_key(db, "out", "movieId")
    assert sorted(int(k) for k in vectors) == [1, 2, 3, 4, 5]
    for key, vector in vectors.items():
        np.testing.assert_allclose(vector, genre_vectors[str(rows[int(key)])], atol=1e-6)
    after = user_state(db)
    assert {k: v for k, v in after.items() if k != "out"} == before


def test_a_query_file_beginning_with_a_comment(db: Path, genre_vectors: dict[str, np.ndarray]) -> None:
    (db.parent / "q.sql").write_text(
        "-- the first five\nselect movieId, genres from movies where movieId <= 5;\n-- end\n"
    )

    result = CliRunner().invoke(cli, ["run", "-f", "q.sql", "--into", "out"])

    assert result.exit_code == 0, result.output
    assert sorted(vectors_by_key(db, "out", "movieId")) == [1, 2, 3, 4, 5]


def test_columns_named_with_spaces_quotes_and_keywords(db: Path, genre_vectors: dict[str, np.ndarray]) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "run",
            'select movieId as "from", genres as "my ""text"" col" from movies where movieId <= 3',
            "--into",
            '"odd out"',
        ],
    )

    assert result.exit_code == 0, result.output
    rows = dict(fetch(db, "SELECT movieId, genres FROM small"))
    vectors = vectors_by_key(db, '"odd out"', '"from"')
    assert sorted(vectors) == [1, 2, 3]
    for key, vector in vectors.items():
        np.testing.assert_allclose(vector, genre_vectors[str(rows[key])], atol=1e-6)


def test_columns_whose_names_differ_only_in_case_are_refused(db: Path) -> None:
    before = user_state(db)

    result = CliRunner().invoke(cli, ["run", 'select movieId, genres as g, title as "G" from movies', "--into", "x"])

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: the query returns more than one column named 'G', 'g'. Give each column its own name with AS."
    )
    assert user_state(db) == before
