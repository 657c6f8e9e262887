"""A query given on the command line may begin with a SQL comment, which starts with a dash like an option."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from embedsql.cli import cli

from helpers import REPO, fetch, texts_table

QUERIES = [
    "-- the documents\nselect id, body from docs",
    "--the documents\nselect id, body from docs",
    "-- the documents\r\nselect id, body from docs",
    "--\tdocuments\nselect id, body from docs",
    "-- one\n-- two\nselect id, body from docs",
    "-- a=b\nselect id, body from docs",
]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("where", ["first", "last", "after --"])
def test_run_takes_a_query_that_begins_with_a_comment(tmp_path: Path, query: str, where: str) -> None:
    db = texts_table(tmp_path / "d.duckdb", {1: "alpha", 2: "beta"})
    options = ["--db", str(db), "--into", "vecs"]
    args = {
        "first": ["run", query, *options],
        "last": ["run", *options, query],
        "after --": ["run", *options, "--", query],
    }[where]

    result = CliRunner().invoke(cli, args)

    assert result.exit_code == 0, result.output
    assert fetch(db, "SELECT id FROM vecs ORDER BY id") == [(1,), (2,)]


@pytest.mark.parametrize("query", ["-- the answer\nselect 42 as x", "--x\nselect 42 as x"])
def test_sql_takes_a_query_that_begins_with_a_comment(tmp_path: Path, query: str) -> None:
    db = texts_table(tmp_path / "d.duckdb", {1: "alpha"})

    result = CliRunner().invoke(cli, ["sql", "--format", "csv", "--db", str(db), query])

    assert (result.exit_code, result.stdout) == (0, "x\n42\n")


def test_a_mistyped_option_is_still_an_unknown_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "select 1", "--modle", "x"])

    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: No such option '--modle'. (Did you mean one of: '--file', '--mode', '--model'?)\n"
    )


def test_two_queries_are_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "-- a\nselect 1", "-- b\nselect 2"])

    assert result.exit_code == 2
    assert result.stderr.endswith("Error: Got unexpected extra argument (-- b\nselect 2)\n")


def test_a_long_query_prints_only_its_rows(tmp_path: Path) -> None:
    """DuckDB draws a progress bar on standard output for queries over 2 s: none lands in the rows."""
    db = texts_table(tmp_path / "d.duckdb", {1: "alpha"})
    query = "select count(s) as n from (select coalesce(sleep_ms(150)::varchar, 'x') as s from range(20))"

    done = subprocess.run(
        [sys.executable, "-m", "embedsql.cli", "sql", "--format", "csv", "--db", str(db), query],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )

    assert (done.returncode, done.stdout) == (0, "n\n20\n")
