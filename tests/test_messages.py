"""Messages that must not mislead: a memory limit that is too small, where jobs stand and under which
name, what a dry run leaves, what a wait is for, what to do without the example's script, what an upsert
wrote, and NaN printed as NaN.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hostile import QUERY, assert_embedded_once_each, contents, docs_db, job_ids, leftovers

import embedsql
import embedsql.plan
from embedsql.cli import _Display, cli
from embedsql.errors import DatabaseError
from embedsql.events import Event, Notice, Progress

from fake_openai import FakeOpenAI
from helpers import fetch, make_db

JOB_ID = r"\d{8}-\d{6}-[0-9a-f]{4}"

# A memory limit too small for DuckDB


# DuckDB's own words, which depend on what it was doing when the limit came: allocating or pinning.
OUT_OF_MEMORY = re.compile(
    r"Error: DuckDB ran out of memory: failed to (?:allocate data|pin block) of size [\d.]+ [KMG]?i?B "
    r"\([\d.]+ [KMG]?i?B/[\d.]+ "
    r"[KMG]?i?B used\)\. Nothing of the step it was doing was kept\. Raise embedsql's memory_limit "
    r"\(EMBEDSQL_MEMORY_LIMIT=2GB, say\) and run the command again\."
)


@pytest.mark.parametrize("limit", ["1MB", "1mb", "512KB", "1000KiB"])
@pytest.mark.parametrize("command", [["run", QUERY], ["run", QUERY, "--dry-run"]], ids=["run", "dry-run"])
def test_a_memory_limit_too_small_is_named_as_such(tmp_path: Path, limit: str, command: list[str]) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    before = contents(db)

    result = CliRunner().invoke(cli, [*command, "--db", str(db)], env={"EMBEDSQL_MEMORY_LIMIT": limit})

    assert result.exit_code == 1, result.output
    assert OUT_OF_MEMORY.fullmatch(result.stderr.splitlines()[-1]), result.stderr
    assert "read-only" not in result.stderr
    assert contents(db) == before


def test_a_memory_limit_too_small_from_python(tmp_path: Path) -> None:
    db = docs_db(tmp_path / "d.duckdb")

    with pytest.raises(DatabaseError) as raised:
        embedsql.run(QUERY, db=db, memory_limit="1MB")

    assert OUT_OF_MEMORY.fullmatch(f"Error: {raised.value}")


# jobs and status: where a job stands, under the name the summary uses, without writing anything


def _summary_target(stdout: str) -> str:
    return stdout.splitlines()[0].split(" in d.duckdb: ")[0]


@pytest.mark.parametrize(
    ("into", "shown"),
    [
        (None, "docs_embeddings"),
        ("Docs_Vectors", "Docs_Vectors"),
        ('"docs vectors"', '"docs vectors"'),
        ('"Say ""hi"""', '"Say ""hi"""'),
        ("search.docs_vectors", "search.docs_vectors"),
        ('"My Schema"."été"', '"My Schema".été'),
    ],
)
def test_jobs_and_status_name_the_target_as_the_summary_does(tmp_path: Path, into: str | None, shown: str) -> None:
    docs_db(tmp_path / "d.duckdb")
    flags = ["--into", into] if into else []

    run = CliRunner().invoke(cli, ["run", QUERY, "--db", "d.duckdb", *flags])

    assert run.exit_code == 0, run.output
    assert _summary_target(run.stdout) == shown
    (job_id,) = job_ids(tmp_path / "d.duckdb", "complete")
    for fmt, expected in [
        ("csv", f"{job_id},complete,{_csv(shown)},all-MiniLM-L6-v2,30,30,"),
        ("jsonl", f'{{"job": "{job_id}", "status": "complete", "target": {_json(shown)}, '),
    ]:
        listed = CliRunner().invoke(cli, ["jobs", "--db", "d.duckdb", "--format", fmt])
        assert listed.exit_code == 0, listed.output
        assert listed.stdout.splitlines()[-1].startswith(expected), listed.stdout
    status = CliRunner().invoke(cli, ["status", "--db", "d.duckdb"])
    assert status.stdout.splitlines()[:2] == [f"job {job_id}: complete", f"  target      {shown} (replace)"]


def _csv(value: str) -> str:
    return f'"{value.replace(chr(34), chr(34) * 2)}"' if '"' in value else value


def _json(value: str) -> str:
    return '"' + value.replace('"', '\\"') + '"'


def test_jobs_and_status_show_a_job_whose_batches_are_submitted_as_submitted(
    tmp_path: Path, openai_server: FakeOpenAI
) -> None:
    docs_db(tmp_path / "d.duckdb")
    openai_server.in_progress_seconds = 3600

    run = CliRunner().invoke(cli, ["run", QUERY, "--db", "d.duckdb", "--no-wait"], env={"EMBEDSQL_POLL_INTERVAL": "0"})

    assert run.exit_code == 0, run.output
    (job_id,) = job_ids(tmp_path / "d.duckdb")
    listed = CliRunner().invoke(cli, ["jobs", "--db", "d.duckdb", "--format", "csv"])
    assert listed.stdout.splitlines()[1].startswith(f"{job_id},submitted,docs_embeddings,text-embedding-3-small,")
    status = CliRunner().invoke(cli, ["status", job_id, "--db", "d.duckdb"])
    assert status.stdout.splitlines()[0] == f"job {job_id}: submitted"
    assert status.stdout.splitlines()[-1] == f"Continue with: embedsql resume {job_id}"


@pytest.mark.parametrize(
    ("command", "code", "out", "err"),
    [
        (["jobs"], 0, "job  status  target  model  rows  texts_to_embed  billed_tokens  created\n"
                       "---  ------  ------  -----  ----  --------------  -------------  -------\n", ""),
        (["jobs", "--format", "json"], 0, "[]\n", ""),
        (["jobs", "--format", "csv"], 0, "job,status,target,model,rows,texts_to_embed,billed_tokens,created\n", ""),
        (["status"], 1, "", "Error: this database has no jobs yet. Start one with `embedsql run SQL`.\n"),
        (["status", "20260101-000000-abcd"], 1, "",
         "Error: no job '20260101-000000-abcd' in this database. This database has no jobs yet. Start one with "
         "`embedsql run SQL`.\n"),
        (["resume", "20260101-000000-abcd"], 1, "",
         "Error: no job '20260101-000000-abcd' in this database. This database has no jobs yet. Start one with "
         "`embedsql run SQL`.\n"),
        (["cancel", "20260101-000000-abcd"], 1, "",
         "Error: no job '20260101-000000-abcd' in this database. This database has no jobs yet. Start one with "
         "`embedsql run SQL`.\n"),
    ],
)  # fmt: skip
def test_commands_about_jobs_leave_a_database_without_a_ledger_as_it_is(
    tmp_path: Path, command: list[str], code: int, out: str, err: str
) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    before = db.read_bytes()

    result = CliRunner().invoke(cli, [*command, "--db", "d.duckdb"])

    assert (result.exit_code, result.stdout, result.stderr) == (code, out, err)
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.duckdb"]
    assert embedsql.list_jobs(db) == []


# Dry runs: the newest one's shards are kept, and the summary says until when


def test_a_dry_run_replaces_the_previous_dry_runs_files_and_says_so(tmp_path: Path) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    before = contents(db)
    root = tmp_path / ".embedsql" / "d.duckdb"

    first = CliRunner().invoke(cli, ["run", QUERY, "--db", "d.duckdb", "--dry-run"])
    second = CliRunner().invoke(cli, ["run", "select id, body from docs where id < 5", "--db", "d.duckdb", "--dry-run"])

    assert first.exit_code == second.exit_code == 0, first.output + second.output
    (folder,) = root.iterdir()
    assert second.stdout.splitlines()[-1] == (
        f"  shards          {Path('.embedsql') / 'd.duckdb' / folder.name} (kept until the next dry run)"
    )
    assert second.stdout.startswith(f"Dry run (job {folder.name.removeprefix('dry-run-')}):")
    assert sorted(p.name for p in folder.iterdir()) == ["shard-00001.jsonl"]
    assert contents(db) == before

    # A real job of the same database leaves the newest dry run's files alone, and removes its own.
    run = CliRunner().invoke(cli, ["run", QUERY, "--db", "d.duckdb"])
    assert run.exit_code == 0, run.output
    assert list(root.iterdir()) == [folder]


def test_a_failed_dry_run_leaves_no_files(tmp_path: Path) -> None:
    docs_db(tmp_path / "d.duckdb")
    CliRunner().invoke(cli, ["run", QUERY, "--db", "d.duckdb", "--dry-run"])

    failed = CliRunner().invoke(
        cli, ["run", QUERY, "--db", "d.duckdb", "--dry-run"], env={"EMBEDSQL_FAILPOINT": "shard-write:enospc"}
    )

    assert failed.exit_code == 1
    assert leftovers(tmp_path) == []


# Progress while planning, and what a wait for the database is for


def test_planning_reports_progress_then_the_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    monkeypatch.setattr(embedsql.plan, "_PROGRESS_EVERY", 0.001)
    events: list[Event] = []

    result = embedsql.run(QUERY, db=db, on_event=events.append)

    planning = [e for e in events if isinstance(e, Progress) and e.stage == "plan"]
    assert planning[-1] == Progress("plan", 100, 100)
    assert all(0 <= e.done <= 99 and e.total == 100 for e in planning[:-1])
    # Each step is said as it starts (0%), then DuckDB's percent for it (when DuckDB reports one in time).
    steps = [
        "reading the query",
        "checking the keys",
        "snapshotting the rows",
        "looking up the cache",
        "finding the texts to send",
    ]
    assert list(dict.fromkeys(e.step for e in planning[:-1])) == steps
    first: dict[str, int] = {}
    for e in planning[:-1]:
        first.setdefault(e.step, e.done)
    assert first == dict.fromkeys(steps, 0)
    # Writing the shards counts the texts written, up to the texts to send.
    shards = [e for e in events if isinstance(e, Progress) and e.stage == "shards"]
    assert [(e.done, e.total) for e in shards] == [(result.distinct_texts, result.distinct_texts)]
    assert events.index(shards[-1]) < events.index(planning[-1])
    # Planning is over before anything is embedded, and the job was announced meanwhile.
    embedding = [i for i, e in enumerate(events) if isinstance(e, Progress) and e.stage == "embed"]
    assert events.index(planning[-1]) < embedding[0]
    notices = [e.message for e in events[: embedding[0]] if isinstance(e, Notice)]
    assert re.fullmatch(f"Job {JOB_ID}: 30 rows, 1 shard\\(s\\) to embed\\.", notices[-1])


@pytest.mark.parametrize("runner", ["sync", "batch"])
def test_a_job_for_an_api_says_so_before_the_client_loads(
    tmp_path: Path, openai_server: FakeOpenAI, runner: str
) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    events: list[Event] = []

    embedsql.run(QUERY, db=db, runner=runner, model="text-embedding-3-small", on_event=events.append)

    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[0] == Progress("plan", 0, 100, step="starting the API client")
    assert progress[1] == Progress("plan", 0, 100, step="reading the query")


def test_a_local_job_loads_no_api_client(tmp_path: Path) -> None:
    events: list[Event] = []

    embedsql.run(QUERY, db=docs_db(tmp_path / "d.duckdb"), on_event=events.append)

    assert not [e for e in events if isinstance(e, Progress) and e.step == "starting the API client"]


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds ``d.duckdb`` open for writing until its stdin closes."""
    db = docs_db(tmp_path / "d.duckdb")
    process = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
         "sys.stdin.read()", str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    yield process
    assert process.stdin is not None
    process.stdin.close()
    process.wait(timeout=60)
    process.stdout.close()


@pytest.mark.parametrize("wait", ["0.2", "1"])
def test_a_wait_for_a_locked_database_says_for_whom_and_how_long(
    tmp_path: Path, holder: subprocess.Popen[str], wait: str
) -> None:
    before = (tmp_path / "d.duckdb").read_bytes()

    result = CliRunner().invoke(cli, ["run", QUERY, "--db", "d.duckdb"], env={"EMBEDSQL_LOCK_WAIT": wait})

    assert result.exit_code == 1
    assert result.stderr.splitlines()[1:] == [
        f"Database 'd.duckdb' is in use by another process (PID {holder.pid}): waiting up to {wait} s for it "
        "(EMBEDSQL_LOCK_WAIT).",
        f"Error: database 'd.duckdb' is in use by another process (PID {holder.pid}) and stayed busy for {wait} s. "
        "DuckDB allows one writer at a time: wait for that process to finish, or close it, then run again "
        "(EMBEDSQL_LOCK_WAIT sets how long embedsql waits).",
    ]
    assert (tmp_path / "d.duckdb").read_bytes() == before


# A missing database: the example warehouse is built only where its script is


@pytest.mark.parametrize("sql_folder", [False, True], ids=["no-sql-folder", "empty-sql-folder"])
@pytest.mark.parametrize("command", [["run", "select 1 as id, 'a' as t"], ["jobs"], ["status"], ["sql", "select 1"]])
def test_the_example_warehouse_without_its_script_says_what_to_do(
    tmp_path: Path, sql_folder: bool, command: list[str]
) -> None:
    if sql_folder:
        (tmp_path / "sql").mkdir()

    result = CliRunner().invoke(cli, command)

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: database 'warehouse.duckdb' does not exist, and the example warehouse cannot be built here: there "
        "is no sql/warehouse.sql. Run the quickstart in the embedsql repository's folder (it holds "
        "sql/warehouse.sql), or pass --db / EMBEDSQL_DB naming your DuckDB database."
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == (["sql"] if sql_folder else [])


@pytest.mark.parametrize("name", ["other.duckdb", "data/warehouse.db", "Warehouse.duckdb"])
def test_another_missing_database_is_not_promised_to_be_built(tmp_path: Path, name: str) -> None:
    result = CliRunner().invoke(cli, ["jobs", "--db", name])

    assert (result.exit_code, result.stderr) == (
        1,
        f"Error: database {name!r} does not exist. Check --db / EMBEDSQL_DB: embedsql opens an existing DuckDB "
        "database (only the example, warehouse.duckdb, is built, from sql/warehouse.sql beside it).\n",
    )


# What an upsert wrote, and what the table holds


def test_an_upsert_summary_says_what_it_wrote_and_what_the_table_holds(
    tmp_path: Path, alone: dict[str, np.ndarray]
) -> None:
    docs_db(tmp_path / "d.duckdb")
    first = CliRunner().invoke(cli, ["run", "select id, body from docs where id < 4", "--db", "d.duckdb"])
    assert first.stdout.splitlines()[0].startswith("docs_embeddings in d.duckdb: 4 rows of all-MiniLM-L6-v2")

    upsert = CliRunner().invoke(
        cli, ["run", "select id, body from docs where id >= 2 and id < 4", "--db", "d.duckdb", "--mode", "upsert"]
    )
    more = embedsql.run(QUERY, db=tmp_path / "d.duckdb", mode="upsert", into="docs_embeddings")

    assert upsert.exit_code == 0, upsert.output
    (job_id,) = re.findall(JOB_ID, upsert.stdout.splitlines()[0])
    assert upsert.stdout.splitlines()[0] == (
        f"docs_embeddings in d.duckdb: 2 rows written, 4 in the table, of all-MiniLM-L6-v2 FLOAT[384] (job {job_id})"
    )
    assert (more.target_rows, more.table_rows) == (30, 30)
    assert_embedded_once_each(tmp_path / "d.duckdb", alone)


def test_an_upsert_into_a_new_table_reads_like_a_replace(tmp_path: Path) -> None:
    docs_db(tmp_path / "d.duckdb")

    result = CliRunner().invoke(cli, ["run", QUERY, "--db", "d.duckdb", "--mode", "upsert", "--into", "fresh"])

    assert result.exit_code == 0, result.output
    assert re.fullmatch(
        f"fresh in d.duckdb: 30 rows of all-MiniLM-L6-v2 FLOAT\\[384\\] \\(job {JOB_ID}\\)",
        result.stdout.splitlines()[0],
    )
    assert fetch(tmp_path / "d.duckdb", "SELECT count(*) FROM fresh") == [(30,)]


# NaN and infinities printed as such in every format (in JSON, which has no number for them, as strings)


SPECIAL = "select 'nan'::double as a, 'inf'::float as b, '-inf'::double as c, null::double as d, ['nan'::double] as e"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("csv", "a,b,c,d,e\nnan,inf,-inf,,[nan]\n"),
        ("json", '[{"a": "NaN", "b": "Infinity", "c": "-Infinity", "d": null, "e": ["NaN"]}]\n'),
        ("jsonl", '{"a": "NaN", "b": "Infinity", "c": "-Infinity", "d": null, "e": ["NaN"]}\n'),
        ("table", "  a    b     c     d  e\n---  ---  ----  ----  -----\nnan  inf  -inf  NULL  [nan]\n"),
        ("markdown", "| a | b | c | d | e |\n|---|---|---|---|---|\n| nan | inf | -inf | NULL | [nan] |\n"),
    ],
)
def test_nan_and_infinities_are_printed_as_such(tmp_path: Path, fmt: str, expected: str) -> None:
    make_db(tmp_path / "d.duckdb", "CREATE TABLE t AS SELECT 1 AS x")

    result = CliRunner().invoke(cli, ["sql", SPECIAL, "--db", "d.duckdb", "--format", fmt])

    assert (result.exit_code, result.stdout) == (0, expected), result.output


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_shows_the_planning_step_then_the_texts_written_on_one_line() -> None:
    terminal = _Terminal()
    display = _Display(terminal)

    for event in [
        Progress("plan", 40, 100, step="reading the query"),
        Progress("plan", 99, 100, step="snapshotting the rows"),
        Progress("shards", 20_000, 61_000),
        Progress("shards", 61_000, 61_000),
        Progress("plan", 100, 100),
    ]:
        display(event)

    assert terminal.getvalue().split("\r\x1b[2K") == [
        "",
        "planning: reading the query, 40%",
        "planning: snapshotting the rows, 99%",
        "planning: writing shards, 20,000/61,000 texts",
        "planning: writing shards, 61,000/61,000 texts",
        "planning: done, 100%\n",
    ]
