"""Nothing happens that the user did not ask for: no DuckDB extension is downloaded because a query names
an https:// or s3:// file (or an .xlsx), and no command that only reads or queries starts embedsql's
ledger in a database that has none.

The extension checks run with HOME in tmp_path, so DuckDB's extension folder starts empty whatever the
machine has installed, and anything an install wrote would be found there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner
from hostile import QUERY, contents, docs_db

import embedsql
from embedsql.cli import cli
from embedsql.errors import QueryError

from helpers import fetch


def missing(extension: str) -> str:
    return (
        f"the SQL needs DuckDB's {extension} extension, which is not installed, and embedsql never installs one "
        f"(that would download it from the internet). Install it once yourself (INSTALL {extension} in DuckDB, or "
        f'embedsql sql "INSTALL {extension}"), then run the command again.'
    )


# (the SQL that names a remote or foreign file, the extension DuckDB would install for it)
REMOTE = [
    ("select * from 'https://example.com/docs.csv'", "httpfs"),
    ("select * from read_parquet('https://example.com/docs.parquet')", "httpfs"),
    ("select * from 's3://bucket/docs.parquet'", "httpfs"),
    ("FROM read_json('HTTPS://EXAMPLE.COM/docs.json')", "httpfs"),
    ("select * from 'hf://datasets/someone/docs/docs.csv'", "httpfs"),
    ("select * from 'docs.xlsx'", "excel"),
    ("select * from sqlite_scan('app.db', 'docs')", "sqlite_scanner"),
]
REMOTE_IDS = [sql.split("'")[1].split("/")[0].split(":")[0].lower() + f"-{i}" for i, (sql, _) in enumerate(REMOTE)]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of the test's own: DuckDB keeps installed extensions under ~/.duckdb."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def db(tmp_path: Path, home: Path) -> Path:
    """docs(id, body) and, written by embedsql, docs_embeddings."""
    db = docs_db(tmp_path / "d.duckdb")
    embedsql.run(QUERY, db=db)
    return db


def assert_nothing_installed(home: Path, extension: str) -> None:
    assert not (home / ".duckdb").exists() or [p.name for p in (home / ".duckdb").rglob("*") if p.is_file()] == []
    con = duckdb.connect()
    try:
        assert con.execute(
            "SELECT installed FROM duckdb_extensions() WHERE extension_name = ?", [extension]
        ).fetchall() == [(False,)]
    finally:
        con.close()


def _commands(sql: str) -> dict[str, list[str]]:
    return {
        "run": ["run", sql, "--into", "remote_embeddings"],
        "run --dry-run": ["run", sql, "--into", "remote_embeddings", "--dry-run"],
        "sql": ["sql", sql],
        "search --show": ["search", "alpha", "--table", "docs_embeddings", "--show", sql],
        "search --where": [
            "search",
            "alpha",
            "--table",
            "docs_embeddings",
            "--where",
            f"id in (select 1 from ({sql}))",
        ],
    }


@pytest.mark.parametrize("command", list(_commands("")))
@pytest.mark.parametrize(("sql", "extension"), REMOTE, ids=REMOTE_IDS)
def test_a_query_that_needs_an_extension_says_which_and_installs_nothing(
    db: Path, home: Path, sql: str, extension: str, command: str
) -> None:
    before = contents(db)

    result = CliRunner().invoke(cli, [*_commands(sql)[command], "--db", str(db)])

    assert (result.exit_code, result.stdout) == (1, ""), result.output
    assert result.stderr.splitlines()[-1] == f"Error: {missing(extension)}"
    assert contents(db) == before
    assert fetch(db, "SELECT count(*) FROM embedsql.jobs") == [(1,)]
    assert_nothing_installed(home, extension)


@pytest.mark.parametrize(("sql", "extension"), REMOTE, ids=REMOTE_IDS)
def test_the_python_api_says_which_extension_and_installs_nothing(
    db: Path, home: Path, sql: str, extension: str
) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: embedsql.run(sql, db=db, into="remote_embeddings"),
        lambda: embedsql.sql(sql, db=db),
        lambda: embedsql.search("alpha", table="docs_embeddings", show=sql, db=db),
    ]
    for call in calls:
        with pytest.raises(QueryError) as raised:
            call()
        assert str(raised.value) == missing(extension)
    assert_nothing_installed(home, extension)


def test_embedsqls_connections_autoload_but_never_autoinstall(db: Path) -> None:
    con = embedsql.connect(db)
    try:
        settings = con.execute(
            "SELECT current_setting('autoinstall_known_extensions'), current_setting('autoload_known_extensions')"
        ).fetchall()
    finally:
        con.close()

    assert settings == [(False, True)]


# A database without a ledger stays without one


def tables_and_schemas(db: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    return (
        fetch(db, "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database() ORDER BY 1"),
        fetch(db, "SELECT schema_name, table_name FROM duckdb_tables() ORDER BY ALL"),
    )


# (command, exit status, stdout) on a database that embedsql never ran in
QUERYING = [
    (["sql", "select id, body from docs where id < 2"], 0,
     "id  body\n--  --------------------\n 0  text 0: gamma 0\n 1  text 1: alpha beta 7\n"),
    (["sql", "select array_length(embed('alpha')) as n"], 0, "  n\n---\n384\n"),
    (["sql", "select id from docs order by array_cosine_similarity(embed(body), embed('gamma')) desc, id limit 1"], 0,
     "id\n--\n 0\n"),
    (["sql", "create table mine as select 1 as x"], 0, "Count\n-----\n    1\n"),
    (["search", "alpha", "--table", "docs"], 1, ""),
    (["search", "alpha", "--table", "docs_embeddings"], 1, ""),
    (["config"], 0, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("command", "status", "out"), QUERYING, ids=[f"{c[0]}-{i}" for i, (c, *_) in enumerate(QUERYING)]
)
def test_commands_that_query_never_start_a_ledger(
    tmp_path: Path, command: list[str], status: int, out: str | None
) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    (tmp_path / "embedsql.toml").write_text(f'db = "{db}"\n')
    schemas, tables = tables_and_schemas(db)

    result = CliRunner().invoke(cli, command)

    assert result.exit_code == status, result.output
    if out is not None:
        assert result.stdout == out
    if command[0] == "search":
        table = command[3]
        why = "was not written by embedsql, so its model is unknown" if table == "docs" else "does not exist"
        assert result.stderr == (
            f"Error: table {table} {why} (--table {table}). embedsql has written no table in this database yet; "
            "make one with `embedsql run`.\n"
        )
    created = [("main", "mine")] if "create table" in " ".join(command) else []
    assert tables_and_schemas(db) == (schemas, sorted(tables + created))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.duckdb", "embedsql.toml"]


def test_the_python_api_that_queries_never_starts_a_ledger(tmp_path: Path) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    before = tables_and_schemas(db)

    rows = embedsql.sql("select id, embed(body) as v from docs order by id", db=db)
    con = embedsql.connect(db)
    try:
        again = con.execute("select embed('text 0: gamma 0')").fetchall()[0][0]
    finally:
        con.close()

    assert rows.num_rows == 30
    assert list(again) == rows["v"][0].as_py()
    assert tables_and_schemas(db) == before


def test_the_dbt_plugin_never_starts_a_ledger(tmp_path: Path) -> None:
    pytest.importorskip("dbt.adapters.duckdb")
    from dbt.adapters.duckdb.credentials import DuckDBCredentials
    from dbt.adapters.duckdb.plugins import BasePlugin

    db = docs_db(tmp_path / "d.duckdb")
    before = tables_and_schemas(db)
    plugin = BasePlugin.create("embedsql.dbt_plugin", credentials=DuckDBCredentials(path=str(db)))
    con = duckdb.connect(str(db))
    try:
        plugin.configure_connection(con)
        (n,) = con.execute("select count(embed(body)) from docs").fetchall()[0]
    finally:
        con.close()

    assert n == 30
    assert tables_and_schemas(db) == before


def test_embed_with_a_ledger_still_fills_its_cache(tmp_path: Path) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    embedsql.run(QUERY, db=db)
    cache = "embedsql.cache_all_minilm_l6_v2_384"
    (cached,) = fetch(db, f"SELECT count(*) FROM {cache}")[0]

    embedsql.sql("select embed('a text no job embedded') as v", db=db)

    assert fetch(db, f"SELECT count(*) FROM {cache}") == [(cached + 1,)]
