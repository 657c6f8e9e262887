"""A damaged database file (valid magic bytes, then cut short or overwritten) is one error that says
so, for every command and the Python API, whether DuckDB finds the damage when it opens the file or
only when a statement reads the damaged part; a real lock held by another process is still a lock.

The damage is real: a database written by DuckDB, then cut or overwritten on disk.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hostile import QUERY, docs_db

import embedsql
from embedsql.cli import cli
from embedsql.errors import DatabaseError

NO_JOB = "20260101-000000-abcd"
# Every command that opens the database.
COMMANDS = [
    ["run", QUERY],
    ["run", QUERY, "--dry-run"],
    ["resume", NO_JOB],
    ["cancel", NO_JOB],
    ["jobs"],
    ["status"],
    ["sql", "select 1"],
    ["sql", "select * from docs"],
    ["search", "alpha", "--table", "docs_embeddings"],
]
IDS = [" ".join(c[:2]) + (" dry-run" if "--dry-run" in c else "") for c in COMMANDS]
CUT = "it is shorter than DuckDB wrote it (a copy or download cut short?)"
OVERWRITTEN = "what it holds is not what DuckDB wrote into it"
READ_SHORT = (
    r'IO Error: Could not read enough bytes from file "{path}": attempted to read \d+ bytes from location \d+\.'
)
CHECKSUM = r"Corrupt database file: computed checksum \d+ does not match stored checksum \d+ in block at location \d+\."
# Damage that DuckDB finds when it opens the file: (how to damage the file's bytes, what, DuckDB's words).
AT_OPEN: dict[str, tuple[Callable[[bytes], bytes], str, str]] = {
    "cut after the magic bytes": (lambda b: b[:20], CUT, READ_SHORT),
    "cut in the second header": (lambda b: b[:6000], CUT, READ_SHORT),
    "cut after the headers": (lambda b: b[:12288], CUT, READ_SHORT),
    "overwritten after the magic bytes": (lambda b: b[:16] + b"\xab" * (len(b) - 16), OVERWRITTEN, CHECKSUM),
    "headers zeroed": (lambda b: b[:16] + bytes(12288 - 16) + b[12288:], OVERWRITTEN, CHECKSUM),
}
# Damage to the block that holds table docs, found only when a statement reads docs.
LATER: dict[str, tuple[Callable[[bytes], bytes], str, str]] = {
    "last byte cut": (lambda b: b[:-1], CUT, READ_SHORT),
    "last bytes overwritten": (lambda b: b[:-8] + b"\xff" * 8, OVERWRITTEN, CHECKSUM),
}


def damaged_message(db: str, what: str, duckdb_says: str, path: Path) -> re.Pattern[str]:
    return re.compile(
        re.escape(f"database {db!r} is damaged: {what}. DuckDB says: ")
        + duckdb_says.format(path=re.escape(str(path)))
        + re.escape(
            " embedsql never repairs a database: restore the file from a backup or another copy, then run the "
            "command again."
        )
    )


def last_error(stderr: str) -> str:
    """The message of the ``Error:`` line that ends ``stderr`` (notices may come before it)."""
    last = stderr.splitlines()[-1]
    assert last.startswith("Error: "), stderr
    return last.removeprefix("Error: ")


def damage(db: Path, how: Callable[[bytes], bytes]) -> bytes:
    data = how(db.read_bytes())
    db.write_bytes(data)
    return data


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return docs_db(tmp_path / "d.duckdb")


@pytest.mark.parametrize("command", COMMANDS, ids=IDS)
@pytest.mark.parametrize("case", list(AT_OPEN))
def test_a_file_damaged_where_duckdb_opens_it_is_named_damaged_by_every_command(
    db: Path, tmp_path: Path, case: str, command: list[str]
) -> None:
    how, what, duckdb_says = AT_OPEN[case]
    damaged = damage(db, how)

    # A long lock wait: a damaged file is not mistaken for one that another process holds.
    result = CliRunner().invoke(cli, [*command, "--db", "d.duckdb"], env={"EMBEDSQL_LOCK_WAIT": "30"})

    assert (result.exit_code, result.stdout) == (1, ""), result.output
    assert damaged_message("d.duckdb", what, duckdb_says, db).fullmatch(last_error(result.stderr)), result.stderr
    assert "Traceback" not in result.stderr
    assert db.read_bytes() == damaged  # embedsql wrote nothing into it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.duckdb"]  # no log, no work folder


# (command, exit status, what the command says) on a file whose docs table is damaged: only the
# commands that read docs meet the damage; the others do their job.
LATER_COMMANDS = [
    (["run", QUERY], 1, None),
    (["run", QUERY, "--dry-run"], 1, None),
    (["sql", "select * from docs"], 1, None),
    (["sql", "select body from docs where id = 3"], 1, None),
    (["sql", "select 1 as one"], 0, "one\n---\n  1\n"),
    (["jobs"], 0, "job  status  target  model  rows  texts_to_embed  billed_tokens  created\n"
                  "---  ------  ------  -----  ----  --------------  -------------  -------\n"),
    (["status"], 1, "Error: this database has no jobs yet. Start one with `embedsql run SQL`.\n"),
    (["search", "alpha", "--table", "docs_embeddings"], 1,
     "Error: table docs_embeddings does not exist (--table docs_embeddings). embedsql has written no table in this "
     "database yet; make one with `embedsql run`.\n"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("command", "status", "says"),
    LATER_COMMANDS,
    ids=[" ".join(c[:2]) + f" {i}" for i, (c, *_) in enumerate(LATER_COMMANDS)],
)
@pytest.mark.parametrize("case", list(LATER))
def test_damage_found_when_a_statement_reads_it_is_named_damaged(
    db: Path, case: str, command: list[str], status: int, says: str | None
) -> None:
    how, what, duckdb_says = LATER[case]
    damaged = damage(db, how)

    result = CliRunner().invoke(cli, [*command, "--db", "d.duckdb"])

    assert result.exit_code == status, result.output
    assert "Traceback" not in result.output
    if says is None:
        assert result.stdout == ""
        assert damaged_message("d.duckdb", what, duckdb_says, db).fullmatch(last_error(result.stderr)), result.stderr
    else:
        assert (result.stdout if status == 0 else result.stderr) == says
    if command[0] != "run":  # run starts its ledger before it reads the query's table
        assert db.read_bytes() == damaged


def _api_calls(db: Path) -> dict[str, Callable[[], Any]]:
    return {
        "run": lambda: embedsql.run(QUERY, db=db),
        "run dry": lambda: embedsql.run(QUERY, db=db, dry_run=True),
        "resume": lambda: embedsql.resume(NO_JOB, db=db),
        "cancel": lambda: embedsql.cancel(NO_JOB, db=db),
        "list_jobs": lambda: embedsql.list_jobs(db),
        "job_status": lambda: embedsql.job_status(db),
        "sql": lambda: embedsql.sql("select * from docs", db=db),
        "connect": lambda: embedsql.connect(db).close(),
        "search": lambda: embedsql.search("alpha", table="docs_embeddings", db=db),
    }


@pytest.mark.parametrize("call", list(_api_calls(Path())))
@pytest.mark.parametrize("case", ["cut after the magic bytes", "overwritten after the magic bytes"])
def test_the_python_api_raises_the_same_database_error(db: Path, case: str, call: str) -> None:
    how, what, duckdb_says = AT_OPEN[case]
    damage(db, how)

    with pytest.raises(DatabaseError) as raised:
        _api_calls(db)[call]()

    assert damaged_message(str(db), what, duckdb_says, db).fullmatch(str(raised.value))


@pytest.mark.parametrize("call", ["run", "sql"])
@pytest.mark.parametrize("case", list(LATER))
def test_the_python_api_names_damage_found_later(db: Path, case: str, call: str) -> None:
    how, what, duckdb_says = LATER[case]
    damage(db, how)

    calls = {
        "run": lambda: embedsql.run(QUERY, db=db),
        "sql": lambda: embedsql.sql("select string_agg(body) from docs", db=db),
    }

    with pytest.raises(DatabaseError) as raised:
        calls[call]()

    assert damaged_message(str(db), what, duckdb_says, db).fullmatch(str(raised.value))


@pytest.fixture
def holder(db: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds ``d.duckdb`` open for writing until its stdin closes."""
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


@pytest.mark.parametrize("command", COMMANDS, ids=IDS)
def test_a_database_another_process_holds_is_still_a_lock_for_every_command(
    db: Path, holder: subprocess.Popen[str], command: list[str]
) -> None:
    before = db.read_bytes()

    result = CliRunner().invoke(cli, [*command, "--db", "d.duckdb"], env={"EMBEDSQL_LOCK_WAIT": "0"})

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.splitlines()[-1] == (
        f"Error: database 'd.duckdb' is in use by another process (PID {holder.pid}). DuckDB allows one writer at "
        "a time: wait for that process to finish, or close it, then run again (EMBEDSQL_LOCK_WAIT sets how long "
        "embedsql waits)."
    )
    assert db.read_bytes() == before
