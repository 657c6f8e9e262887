"""Names and messages printed for a person are unambiguous: a control character (a line break, a tab, an
escape sequence, a line separator, a bidirectional override) is shown as an escape, and so is a backslash,
so that a name keeps to its line and two different names never look alike, in `jobs`, `status` and the
run summary. Output for programs (csv, json, jsonl) keeps every value exact.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hostile import QUERY, docs_db

import embedsql
from embedsql.cli import cli

# (id, the table's name as the user writes it for --into, the name as DuckDB has it, as shown to a person)
NAMES = [
    ("line break", '"a\nb"', "a\nb", '"a\\nb"'),
    ("backslash n", '"a\\nb"', "a\\nb", '"a\\\\nb"'),
    ("space", '"a b"', "a b", '"a b"'),
    ("tab", '"a\tb"', "a\tb", '"a\\tb"'),
    ("carriage return", '"a\rb"', "a\rb", '"a\\rb"'),
    ("escape sequence", '"red\x1b[31m"', "red\x1b[31m", '"red\\x1b[31m"'),
    ("line separator", '"a\u2028b"', "a\u2028b", '"a\\u2028b"'),
    ("right-to-left override", '"abc\u202edef"', "abc\u202edef", '"abc\\u202edef"'),
    ("C1 next line", '"a\x85b"', "a\x85b", '"a\\x85b"'),
    ("accents and emoji stay", '"café 😀"', "café 😀", '"café 😀"'),
]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return docs_db(tmp_path / "d.duckdb")


@pytest.mark.parametrize(("into", "name", "shown"), [n[1:] for n in NAMES], ids=[n[0] for n in NAMES])
def test_jobs_status_and_the_summary_show_a_name_unambiguously(db: Path, into: str, name: str, shown: str) -> None:
    run = CliRunner().invoke(cli, ["run", QUERY, "--db", "d.duckdb", "--into", into])

    assert run.exit_code == 0, run.output
    assert run.stdout.splitlines()[0].startswith(f"{shown} in d.duckdb: 30 rows of all-MiniLM-L6-v2 FLOAT[384]")
    (job,) = embedsql.list_jobs(db)
    assert job.target == into  # the library keeps the name as it is

    table = CliRunner().invoke(cli, ["jobs", "--db", "d.duckdb"])
    markdown = CliRunner().invoke(cli, ["jobs", "--db", "d.duckdb", "--format", "markdown"])
    status = CliRunner().invoke(cli, ["status", "--db", "d.duckdb"])

    assert len(table.stdout.splitlines()) == 3  # header, rule, one line for the one job
    assert f"  complete  {shown} " in table.stdout.splitlines()[2]
    assert f"| complete | {shown} | all-MiniLM-L6-v2 |" in markdown.stdout.splitlines()[2]
    assert status.stdout.splitlines()[1] == f"  target      {shown} (replace)"
    assert len(status.stdout.splitlines()) == 6


def test_two_names_that_differ_by_a_line_break_or_a_backslash_look_different(db: Path) -> None:
    for into in ('"a\nb"', '"a\\nb"', '"a b"'):
        assert CliRunner().invoke(cli, ["run", QUERY, "--db", "d.duckdb", "--into", into]).exit_code == 0

    listed = CliRunner().invoke(cli, ["jobs", "--db", "d.duckdb"])

    targets = [
        line.split("  complete  ")[1].split("  all-MiniLM")[0].strip() for line in listed.stdout.splitlines()[2:]
    ]
    assert sorted(targets) == sorted(['"a\\nb"', '"a\\\\nb"', '"a b"'])


@pytest.mark.parametrize("name", ["a\nb", "a\\nb", "red\x1b[31m", "a\u2028b"])
def test_output_for_programs_keeps_the_name_exact(db: Path, name: str) -> None:
    into = '"' + name + '"'
    assert CliRunner().invoke(cli, ["run", QUERY, "--db", "d.duckdb", "--into", into]).exit_code == 0

    as_json = CliRunner().invoke(cli, ["jobs", "--db", "d.duckdb", "--format", "json"])
    as_jsonl = CliRunner().invoke(cli, ["jobs", "--db", "d.duckdb", "--format", "jsonl"])
    as_csv = CliRunner().invoke(cli, ["jobs", "--db", "d.duckdb", "--format", "csv"])

    assert json.loads(as_json.stdout)[0]["target"] == into
    assert json.loads(as_jsonl.stdout)["target"] == into
    assert next(csv.DictReader(io.StringIO(as_csv.stdout)))["target"] == into


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_output_for_programs_keeps_escape_sequences_in_values(db: Path, fmt: str) -> None:
    """click drops ANSI sequences from what it prints off a terminal; values printed for programs keep them."""
    result = CliRunner().invoke(cli, ["sql", "select chr(27) || '[31mred' as x", "--db", "d.duckdb", "--format", fmt])

    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout))) if fmt == "csv" else json.loads(f"[{result.stdout}]")
    values = [row["x"] for row in rows] if fmt != "json" else [row["x"] for row in rows[0]]
    assert values == ["\x1b[31mred"]
