"""A table is the one DuckDB takes its name for, in every check and write of embedsql.

DuckDB matches names whatever their ASCII letter case (quoted or not), puts a name without a schema
in ``main``, and reads ``x.t`` as table ``t`` of database ``x`` when there is no schema ``x``. Each
case here names a table of the example warehouse another way (letter case, quoting, schema, catalog,
Unicode) and checks that embedsql finds, refuses, writes, records and prints the same table DuckDB
would, and that the user's tables are exactly as they were.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import embedsql
from embedsql.cli import cli
from embedsql.errors import EmbedsqlError, TargetError
from embedsql.target import TargetName, parse_target

from helpers import REPO, FakeTime, copy_db, fetch, isolated, make_db, texts_table

Q = "select movieId, genres from movies where movieId <= 12"
# Objects of the user's beside `movies`; the warehouse file is warehouse.duckdb, so its catalog is `warehouse`.
USER_OBJECTS = """
    CREATE VIEW movie_titles AS SELECT movieId, title FROM movies;
    CREATE SCHEMA Sales;
    CREATE TABLE sales.docs AS SELECT movieId AS id, title AS body FROM movies WHERE movieId <= 5;
    CREATE VIEW sales.Recent AS SELECT * FROM sales.docs WHERE id > 3;
    CREATE TABLE données AS SELECT 1 AS id, 'x' AS body;
"""


@pytest.fixture(scope="module")
def warehouse_template(tmp_path_factory: pytest.TempPathFactory, movies_template: Path) -> Path:
    return make_db(copy_db(movies_template, tmp_path_factory.mktemp("warehouse")), USER_OBJECTS)


@pytest.fixture
def warehouse(warehouse_template: Path, tmp_path: Path) -> Path:
    return copy_db(warehouse_template, tmp_path)


def user_objects(db: Path) -> dict[tuple[str, str], pa.Table]:
    """Every table and view outside the ledger, with all its rows in order: what the user has.

    As Arrow tables, which compare exactly (``==`` is ``Table.equals``) and are read ~3x faster than
    Python tuples: the warehouse's movies table has 62,423 rows, read twice by most tests.
    """
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name <> 'embedsql' UNION ALL "
            "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal AND schema_name <> 'embedsql' "
            "ORDER BY ALL"
        ).fetchall()
        return {
            (s, t): con.sql(f"SELECT * FROM {TargetName(s, t).sql} ORDER BY ALL").to_arrow_table() for s, t in names
        }
    finally:
        con.close()


def jobs(db: Path) -> int:
    """Jobs in the ledger (none when the command stopped before it opened one)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        ledger = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'embedsql' AND table_name = 'jobs'"
        ).fetchall()
        return len(con.execute("SELECT job_id FROM embedsql.jobs").fetchall()) if ledger == [(1,)] else 0
    finally:
        con.close()


def taken(name: str, sql: str) -> str:
    return (
        f"table {name} already exists and was not written by embedsql. Choose another --into, "
        f"or drop it first (DROP TABLE {sql})."
    )


def a_view(name: str) -> str:
    return (
        f"{name} is a view; embedsql writes its vectors into a table of their own and never replaces a view. "
        f"Choose another --into, e.g. --into {name}_embeddings."
    )


def blank(flag: str, text: str) -> str:
    return f"{flag} {text!r} is blank; pass a table name (table or schema.table)."


def elsewhere(flag: str, name: str, database: str, instead: str) -> str:
    return (
        f"{flag} {name} names a table of database {database}, but embedsql works only in the database of "
        f"--db / EMBEDSQL_DB (warehouse). Name a table there, e.g. {flag} {instead}."
    )


def ledger_schema(flag: str, text: str) -> str:
    return f"{flag} {text!r} names the ledger's own schema `embedsql`; pick another schema."


MOVIES = taken("movies", '"movies"')
DOCS = taken("Sales.docs", '"Sales"."docs"')
REFUSED_TARGETS = [
    # The user's own table, however it is spelled: DuckDB takes every one of these for `movies`.
    ("Movies", MOVIES),
    ("MOVIES", MOVIES),
    ('"Movies"', MOVIES),
    (" movies ", MOVIES),
    ("main.Movies", MOVIES),
    ("Main.movies", MOVIES),
    ('MAIN."MOVIES"', MOVIES),
    ("warehouse.main.movies", MOVIES),
    ('"Warehouse"."MAIN"."Movies"', MOVIES),
    ("WAREHOUSE.Movies", MOVIES),  # no schema `warehouse`: the database itself
    ("SALES.Docs", DOCS),
    ('"sales"."DOCS"', DOCS),
    ("warehouse.SALES.docs", DOCS),
    ("DONNéES", taken("données", '"données"')),  # ASCII letters fold; é is é
    # Views, which a table of vectors would replace.
    ("Movie_Titles", a_view("movie_titles")),
    ('"MOVIE_TITLES"', a_view("movie_titles")),
    ("warehouse.main.movie_titles", a_view("movie_titles")),
    ("SALES.recent", a_view("Sales.Recent")),
    ('"sales"."RECENT"', a_view("Sales.Recent")),
    # No name at all: never the default table.
    ("", blank("--into", "")),
    ("   ", blank("--into", "   ")),
    ("\t\n", blank("--into", "\t\n")),
    ("\u3000", blank("--into", "\u3000")),
    ('""', blank("--into", '""')),
    ('" "', blank("--into", '" "')),
    ('"\u00a0"', blank("--into", '"\u00a0"')),
    ('sales.""', blank("--into", 'sales.""')),
    # Another database: never written silently.
    ("temp.t", elsewhere("--into", "temp.t", "temp", "t")),
    ("TEMP.main.t", elsewhere("--into", "TEMP.main.t", "TEMP", "t")),
    ("system.main.movies", elsewhere("--into", "system.main.movies", "system", "movies")),
    ("elsewhere.Sales.docs", elsewhere("--into", "elsewhere.Sales.docs", "elsewhere", "Sales.docs")),
    # The ledger's own schema, under any spelling.
    ("EMBEDSQL.x", ledger_schema("--into", "EMBEDSQL.x")),
    ('warehouse."Embedsql".jobs', ledger_schema("--into", 'warehouse."Embedsql".jobs')),
]


@pytest.mark.parametrize(("into", "message"), REFUSED_TARGETS)
def test_a_target_that_is_not_a_new_or_embedsql_table_is_refused_before_anything_is_planned(
    warehouse: Path, into: str, message: str
) -> None:
    before = user_objects(warehouse)

    result = CliRunner().invoke(cli, ["run", Q, "--db", str(warehouse), "--into", into])

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.splitlines()[-1] == f"Error: {message}"
    assert user_objects(warehouse) == before
    assert jobs(warehouse) == 0


@pytest.mark.parametrize(("into", "message"), REFUSED_TARGETS[::4])
def test_the_python_api_refuses_the_same_targets(warehouse: Path, into: str, message: str) -> None:
    before = user_objects(warehouse)

    with pytest.raises(EmbedsqlError) as caught:
        embedsql.run(Q, db=warehouse, into=into)

    assert str(caught.value) == message
    assert user_objects(warehouse) == before


NEW_TARGETS = [
    # (--into, where the table lands, how embedsql prints it)
    ("warehouse.main.Vecs", ("main", "Vecs"), "Vecs"),
    ("WAREHOUSE.vecs", ("main", "vecs"), "vecs"),
    ("Main.vecs", ("main", "vecs"), "vecs"),
    ("SALES.vecs", ("Sales", "vecs"), "Sales.vecs"),
    ("Reports.Vecs", ("Reports", "Vecs"), "Reports.Vecs"),
    ('"Movie Vectors"', ("main", "Movie Vectors"), '"Movie Vectors"'),
    ("DONNÉES", ("main", "DONNÉES"), "DONNÉES"),
    ('"movies.csv_embeddings"', ("main", "movies.csv_embeddings"), '"movies.csv_embeddings"'),
    ('"select"', ("main", "select"), '"select"'),
    ('"2024"', ("main", "2024"), '"2024"'),
    ('"say ""hi"""', ("main", 'say "hi"'), '"say ""hi"""'),
]


@pytest.mark.parametrize(("into", "lands", "shown"), NEW_TARGETS)
def test_a_new_target_lands_where_duckdb_puts_it_and_is_printed_as_a_name_that_finds_it(
    warehouse: Path, into: str, lands: tuple[str, str], shown: str
) -> None:
    before = user_objects(warehouse)

    result = CliRunner().invoke(cli, ["run", Q, "--db", str(warehouse), "--into", into])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith(f"{shown} in {warehouse}: 12 rows of all-MiniLM-L6-v2")
    after = user_objects(warehouse)
    assert {name: rows for name, rows in after.items() if name != lands} == before
    assert after[lands].column(0).to_pylist() == list(range(1, 13))
    schema, table = lands
    recorded = TargetName(None if schema == "main" else schema, table).sql
    assert fetch(warehouse, "SELECT table_name FROM embedsql.targets") == [(recorded,)]
    assert fetch(warehouse, "SELECT target FROM embedsql.jobs") == [(recorded,)]
    # The printed name, passed back, is the same table.
    hits = embedsql.search("Comedy", table=shown, k=3, db=warehouse)
    assert hits.num_rows == 3
    again = CliRunner().invoke(cli, ["run", Q, "--db", str(warehouse), "--into", shown, "--mode", "upsert"])
    assert again.exit_code == 0, again.output
    assert fetch(warehouse, "SELECT table_name FROM embedsql.targets") == [(recorded,)]


@pytest.fixture(scope="module")
def dt_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with a table `dt` that embedsql wrote, keyed by INTEGER."""
    directory = tmp_path_factory.mktemp("dt")
    db = texts_table(directory / "d.duckdb", {1: "alpha", 2: "beta", 3: "gamma", 4: "delta"})
    with isolated(directory):
        embedsql.run("select id, body from docs", db=db, into="dt")
    return db


@pytest.fixture
def dt(dt_template: Path, tmp_path: Path) -> Path:
    return copy_db(dt_template, tmp_path)


DT_SPELLINGS = ["DT", '"DT"', "main.Dt", 'MAIN."dT"', "d.main.DT", "D.dt"]


@pytest.mark.parametrize("into", DT_SPELLINGS)
def test_another_spelling_of_an_existing_target_is_checked_like_the_target(dt: Path, into: str) -> None:
    db = dt
    before = user_objects(db)

    with pytest.raises(TargetError) as caught:
        embedsql.run("select id::VARCHAR AS id, body from docs where id <= 2", db=db, into=into, mode="upsert")
    with pytest.raises(TargetError) as other_model:
        embedsql.run("select id, body from docs", db=db, into=into, model="text-embedding-3-small", dry_run=True)

    assert str(caught.value) == (
        "table dt is keyed by (id INTEGER) but this query's key is (id VARCHAR). Use the same key columns, "
        'another --into, or drop the table (DROP TABLE "dt").'
    )
    assert str(other_model.value) == (
        "table dt holds 384-d vectors of all-MiniLM-L6-v2; this job makes 1536-d vectors of text-embedding-3-small, "
        "which cannot be compared with them. Use --model all-MiniLM-L6-v2, another --into, or drop the table "
        '(DROP TABLE "dt").'
    )
    assert user_objects(db) == before
    assert jobs(db) == 1


@pytest.mark.parametrize("into", DT_SPELLINGS)
def test_an_upsert_under_another_spelling_writes_and_records_the_same_table(dt: Path, into: str) -> None:
    db = dt
    rows = dict(fetch(db, "SELECT id, embedding FROM dt"))

    result = embedsql.run("select id, body || '!' from docs where id <= 2", db=db, into=into, mode="upsert")

    assert (result.target, result.target_rows) == ("dt", 2)
    after = dict(fetch(db, "SELECT id, embedding FROM dt"))
    assert sorted(after) == [1, 2, 3, 4]
    assert {k: after[k] for k in (3, 4)} == {k: rows[k] for k in (3, 4)}
    assert after[1] != rows[1]
    assert fetch(db, "SELECT table_name FROM embedsql.targets") == [('"dt"',)]
    assert fetch(db, "SELECT target FROM embedsql.jobs ORDER BY job_id") == [('"dt"',), ('"dt"',)]


@pytest.mark.parametrize("recorded", ['"DT"', '"main"."dt"', '"Main"."Dt"'])
def test_a_ledger_that_recorded_another_spelling_still_finds_its_table(dt: Path, recorded: str) -> None:
    db = dt
    # As an earlier embedsql recorded it: the spelling the user typed.
    make_db(
        db, f"UPDATE embedsql.targets SET table_name = '{recorded}'; UPDATE embedsql.jobs SET target = '{recorded}'"
    )
    before = user_objects(db)

    with pytest.raises(TargetError) as caught:
        embedsql.run("select id::VARCHAR AS id, body from docs", db=db, into="dt", mode="upsert")
    hits = embedsql.search("alpha", table="dt", columns=["body"], k=1, db=db)

    assert str(caught.value).startswith("table dt is keyed by (id INTEGER) but this query's key is (id VARCHAR).")
    assert user_objects(db) == before
    assert hits.to_pylist()[0]["body"] == "alpha"
    last = embedsql.run("select id, body from docs where id <= 2", db=db, into="dt", mode="upsert")
    assert fetch(db, "SELECT table_name FROM embedsql.targets") == [('"dt"',)]
    # The earlier job's snapshot, recorded under the other spelling, describes the same table: dropped.
    assert fetch(db, "SELECT table_name FROM duckdb_tables() WHERE starts_with(table_name, 'rows_')") == [
        (f"rows_{last.job_id}",)
    ]


@pytest.mark.parametrize("view", ["v", "V", '"V"', "notes.V"])
def test_a_view_made_while_a_job_waits_stops_the_write_and_the_job_keeps_its_place(
    tmp_path: Path, fake_time: FakeTime, view: str
) -> None:
    db = texts_table(tmp_path / "d.duckdb", {1: "alpha", 2: "beta"})
    into = "notes.v" if "." in view else "v"
    submitted = embedsql.run(
        "select id, body from docs", db=db, into=into, model="text-embedding-3-small", wait=False, **fake_time
    )
    make_db(db, ("CREATE SCHEMA notes; " if "." in view else "") + f"CREATE VIEW {view} AS SELECT 1 AS id")
    before = user_objects(db)
    shown = str(TargetName("notes" if "." in view else None, view.split(".")[-1].strip('"')))

    with pytest.raises(TargetError) as caught:
        embedsql.resume(submitted.job_id, db=db, **fake_time)

    assert str(caught.value) == (
        f"{a_view(shown)} Job {submitted.job_id} keeps its place: continue it with "
        f"`embedsql resume {submitted.job_id}`."
    )
    assert user_objects(db) == before
    make_db(db, f"DROP VIEW {view}")
    assert embedsql.resume(submitted.job_id, db=db, **fake_time).target_rows == 2


@pytest.fixture(scope="module")
def searchable_template(tmp_path_factory: pytest.TempPathFactory, warehouse_template: Path) -> Path:
    directory = tmp_path_factory.mktemp("searchable")
    db = copy_db(warehouse_template, directory)
    with isolated(directory):
        embedsql.run(Q, db=db)  # into movies_embeddings
    return db


@pytest.fixture
def searchable(searchable_template: Path, tmp_path: Path) -> Path:
    return copy_db(searchable_template, tmp_path)


WRITTEN = "Tables embedsql wrote: movies_embeddings."
REFUSED_SEARCH_TABLES = [
    ("nosuch", f"table nosuch does not exist (--table nosuch). {WRITTEN}"),
    ("movies_embedings", "table movies_embedings does not exist (--table movies_embedings). "
     "Did you mean --table movies_embeddings?"),
    ("Sales.Movies_Embeddings", "table Sales.Movies_Embeddings does not exist (--table Sales.Movies_Embeddings). "
     "Did you mean --table movies_embeddings?"),
    ('"movies.csv_embeddings"', 'table "movies.csv_embeddings" does not exist (--table "movies.csv_embeddings"). '
     "Did you mean --table movies_embeddings?"),
    ("movies", f"table movies was not written by embedsql, so its model is unknown (--table movies). {WRITTEN}"),
    ("MOVIES", f"table movies was not written by embedsql, so its model is unknown (--table MOVIES). {WRITTEN}"),
    ("warehouse.SALES.docs", "table Sales.docs was not written by embedsql, so its model is unknown "
     f"(--table warehouse.SALES.docs). {WRITTEN}"),
    ("Movie_Titles", f"movie_titles is a view, not a table embedsql wrote (--table Movie_Titles). {WRITTEN}"),
    ("", blank("--table", "")),
    ("\u2003", blank("--table", "\u2003")),
    ("x; drop table movies", "--table 'x; drop table movies' is not a table name. Use table or schema.table "
     "(letters, digits, _), or double-quote a name with other characters: --table '\"my table\"'."),
    ("temp.movies_embeddings", elsewhere("--table", "temp.movies_embeddings", "temp", "movies_embeddings")),
    ("Embedsql.targets", ledger_schema("--table", "Embedsql.targets")),
]  # fmt: skip


@pytest.mark.parametrize(("table", "message"), REFUSED_SEARCH_TABLES)
def test_search_names_what_is_wrong_with_its_table_and_the_tables_embedsql_wrote(
    searchable: Path, table: str, message: str
) -> None:
    before = user_objects(searchable)

    result = CliRunner().invoke(cli, ["search", "comedy", "--db", str(searchable), "--table", table])

    assert (result.exit_code, result.stdout, result.stderr) == (1, "", f"Error: {message}\n")
    assert user_objects(searchable) == before


def test_search_in_a_database_where_embedsql_wrote_nothing_says_so(warehouse: Path) -> None:
    with pytest.raises(TargetError) as caught:
        embedsql.search("comedy", table="movies_embeddings", db=warehouse)

    assert str(caught.value) == (
        "table movies_embeddings does not exist (--table movies_embeddings). "
        "embedsql has written no table in this database yet; make one with `embedsql run`."
    )


@pytest.mark.parametrize(
    "table",
    ["MOVIES_EMBEDDINGS", '"Movies_Embeddings"', "main.movies_embeddings", "warehouse.MAIN.Movies_embeddings"],
)
def test_search_finds_the_table_under_any_spelling_duckdb_accepts(searchable: Path, table: str) -> None:
    expected = embedsql.search("comedy", table="movies_embeddings", columns=["title"], db=searchable)

    hits = embedsql.search("comedy", table=table, columns=["title"], db=searchable)

    assert hits == expected
    assert hits.num_rows == 10


FILE_QUERIES = [
    ("select movieId, genres from 'movies.csv'", "movies_embeddings"),
    ("from 'data/movies.csv' select movieId, genres", "movies_embeddings"),
    ("select movieId, genres from read_csv('movies.csv')", "movies_embeddings"),
    ("select movieId, genres from read_csv_auto('./data/movies.csv', header = true) m", "movies_embeddings"),
    ("select movieId, genres from 'data/*.csv'", "data_embeddings"),
    ("select movieId, genres from 'My Movies.v2.csv'", "My_Movies_embeddings"),
    ("select movieId, genres from read_parquet('films.parquet')", "films_embeddings"),
    ("select f.movieId, f.genres from (select * from 'films.parquet') f", "films_embeddings"),
]


@pytest.mark.parametrize(("sql", "target"), FILE_QUERIES)
def test_a_query_over_a_file_is_embedded_into_a_table_named_after_the_file(
    tmp_path: Path, sql: str, target: str
) -> None:
    (tmp_path / "data").mkdir()
    csv = "".join((REPO / "data" / "movies.csv").read_text(encoding="utf-8").splitlines(keepends=True)[:7])
    for path in ("movies.csv", "data/movies.csv", "My Movies.v2.csv"):
        (tmp_path / path).write_text(csv, encoding="utf-8")
    make_db(tmp_path / "films.duckdb", "COPY (SELECT * FROM 'movies.csv') TO 'films.parquet'")
    db = make_db(tmp_path / "files.duckdb", "CREATE TABLE kept AS SELECT 1 AS answer")

    result = CliRunner().invoke(cli, ["run", sql, "--db", str(db)])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith(f"{target} in {db}: 6 rows")
    assert fetch(db, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY 1") == sorted(
        [(target,), ("kept",)]
    )
    found = CliRunner().invoke(cli, ["search", "comedy", "--db", str(db), "--table", target, "-k", "2"])
    assert found.exit_code == 0, found.output


def test_a_query_over_two_files_asks_for_into(tmp_path: Path) -> None:
    shutil.copyfile(REPO / "data" / "movies.csv", tmp_path / "movies.csv")
    make_db(tmp_path / "two.duckdb", "COPY (SELECT 1 AS movieId, 4.5 AS rating) TO 'ratings.csv'")

    result = CliRunner().invoke(
        cli,
        [
            "run",
            "select m.movieId, m.genres from 'movies.csv' m join read_csv('ratings.csv') r on r.movieId = m.movieId",
            "--db",
            "two.duckdb",
        ],
    )

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: the query reads 2 tables (movies, ratings), so the target table cannot be named after it. "
        "Name it with --into TABLE."
    )


DISPLAYED = [
    ('"movies_embeddings"', "movies_embeddings"),
    ('"main"."movies_embeddings"', "main.movies_embeddings"),
    ('"Sales"."docs"', "Sales.docs"),
    ('"Movie Vectors; drop table movies"', '"Movie Vectors; drop table movies"'),
    ('"movies.csv_embeddings"', '"movies.csv_embeddings"'),
    ('"select"', '"select"'),
    ('"Order"."x"', '"Order".x'),
    ('"données"', "données"),
    ('"_t$1"', "_t$1"),
    ('"$t"', '"$t"'),
    ('"1t"', '"1t"'),
    ('"a""b"', '"a""b"'),
    ('"t\u3000"', '"t\u3000"'),
]


@pytest.mark.parametrize(("recorded", "shown"), DISPLAYED)
def test_a_recorded_name_is_shown_quoted_only_where_it_must_be(recorded: str, shown: str) -> None:
    assert str(parse_target(recorded)) == shown
    assert parse_target(shown).sql == recorded


@given(st.text(min_size=1).filter(str.strip), st.none() | st.text(min_size=1).filter(str.strip))
def test_every_printed_name_parses_back_to_the_same_name(table: str, schema: str | None) -> None:
    if (schema or "").lower() == "embedsql":
        return
    name = TargetName(schema, table)

    assert parse_target(str(name)) == name
    assert parse_target(name.sql) == name


@pytest.mark.parametrize(
    "remade",
    [
        "CREATE TABLE dt AS SELECT 1 AS id, 'my own notes' AS note",
        "CREATE TABLE DT AS SELECT 1 AS id",
        "CREATE TABLE main.Dt AS SELECT 1 AS id, [1, 2, 3]::FLOAT[3] AS embedding",
        "CREATE TABLE dt AS SELECT 1 AS key, 'alpha' AS body, 2 AS embedding",
    ],
)
def test_a_table_made_again_by_the_user_under_a_recorded_name_is_not_taken_for_embedsqls(dt: Path, remade: str) -> None:
    db = dt
    make_db(db, f"DROP TABLE dt; {remade}")
    before = user_objects(db)
    shown = next(word for word in remade.split()[2].split(".") if word.lower() == "dt")

    with pytest.raises(TargetError) as written:
        embedsql.run("select id, body from docs", db=db, into="dt")
    with pytest.raises(TargetError) as searched:
        embedsql.search("alpha", table="dt", db=db)

    assert str(written.value) == taken(shown, f'"{shown}"')
    assert str(searched.value) == (
        f"table {shown} was not written by embedsql, so its model is unknown (--table dt). "
        "embedsql has written no table in this database yet; make one with `embedsql run`."
    )
    assert user_objects(db) == before
