"""One table of hostile local state, run through every command of the CLI and every function of the
Python API: each fault gives the same one-line message everywhere it applies (one rule, decided in
one place), exit status 1, no traceback, and leaves the user's files exactly as they were.

The classes are tested in depth, with their variants, in test_hostile_environment.py (files, encodings,
full disks, Ctrl-C), test_hostile_names.py and test_hostile_sql.py; this table proves that no command
or function was left out of a rule.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from hostile import QUERY, contents, docs_db

import embedsql
from embedsql.cli import cli

JOB = "20260101-000000-abcd"


@dataclass(frozen=True)
class Command:
    """A command of the CLI, and the function of the Python API that does the same."""

    args: list[str]
    call: Callable[[str], object]
    settings: bool = True  # reads the settings (.env, embedsql.toml, EMBEDSQL_*), not only the database


COMMANDS = {
    "run": Command(["run", QUERY], lambda db: embedsql.run(QUERY, db=db)),
    "run --dry-run": Command(["run", QUERY, "--dry-run"], lambda db: embedsql.run(QUERY, db=db, dry_run=True)),
    "resume": Command(["resume", JOB], lambda db: embedsql.resume(JOB, db=db)),
    "cancel": Command(["cancel", JOB], lambda db: embedsql.cancel(JOB, db=db)),
    "jobs": Command(["jobs"], lambda db: embedsql.list_jobs(db), settings=False),
    "status": Command(["status", JOB], lambda db: embedsql.job_status(db, JOB), settings=False),
    "search": Command(
        ["search", "alpha", "--table", "docs_embeddings"],
        lambda db: embedsql.search("alpha", table="docs_embeddings", db=db),
    ),
    "sql": Command(["sql", "select 1"], lambda db: embedsql.sql("select 1", db=db)),
}


@dataclass(frozen=True)
class Fault:
    """Local state that no command can work with: ``make`` builds it in a folder and returns the
    ``--db`` to pass; ``message`` is the one line every command says (``{db}`` is that --db)."""

    make: Callable[[Path], str]
    message: str
    env: dict[str, str] | None = None
    settings_only: bool = False  # a fault of the settings: the functions that take no settings never see it
    only: tuple[str, ...] = ()  # the commands it concerns, when not all (a work folder: those that write one)

    def expected(self, root: Path, *, source: str) -> re.Pattern[str]:
        """The message, for a fault under ``root`` reported about ``source`` (``--db``, ``argument db``)."""
        text = self.message.format(root=root, source=source, any="\0")
        return re.compile(".+".join(re.escape(part) for part in text.split("\0")))


def _folder(root: Path) -> str:
    (root / "data.duckdb").mkdir()
    return "data.duckdb"


def _csv(root: Path) -> str:
    (root / "docs.csv").write_text("id,body\n1,alpha\n")
    return "docs.csv"


def _sqlite(root: Path) -> str:
    con = sqlite3.connect(root / "app.db")
    con.execute("CREATE TABLE docs (id INTEGER, body TEXT)")
    con.commit()
    con.close()
    return "app.db"


def _docs(root: Path) -> str:
    docs_db(root / "d.duckdb")
    return "d.duckdb"


def _cut_short(root: Path) -> str:
    data = (root / _docs(root)).read_bytes()
    (root / "d.duckdb").write_bytes(data[: len(data) // 3])
    return "d.duckdb"


def _unreadable_dotenv_line(root: Path) -> str:
    (root / ".env").write_text('EMBEDSQL_LOCK_WAIT=1\nEMBEDSQL_MODEL="all-MiniLM-L6-v2\n')
    return _docs(root)


def _file_as_work_folder(root: Path) -> str:
    (root / "work").write_text("notes\n")
    return _docs(root)


def _latin1_dotenv(root: Path) -> str:
    (root / ".env").write_bytes("EMBEDSQL_MODEL=all-MiniLM-L6-v2 # café\n".encode("latin-1"))
    return _docs(root)


def _broken_toml(root: Path) -> str:
    (root / "embedsql.toml").write_text("lock_wait = \n")
    return _docs(root)


def _toml_of_the_wrong_type(root: Path) -> str:
    (root / "embedsql.toml").write_text('max_attempts = "many"\n')
    return _docs(root)


NOT_A_DUCKDB_DATABASE = (
    "--db {db!r} is not a DuckDB database{what}. Pass --db / EMBEDSQL_DB a DuckDB database file; to embed the rows "
    "of another file, query it from one (select ... from '{db}')."
)
FAULTS = {
    "no such database": Fault(
        lambda root: "nosuch.duckdb",
        "database 'nosuch.duckdb' does not exist. Check --db / EMBEDSQL_DB: embedsql opens an existing DuckDB "
        "database (only the example, warehouse.duckdb, is built, from sql/warehouse.sql beside it).",
    ),
    "a folder": Fault(
        _folder,
        "--db 'data.duckdb' is a folder, not a DuckDB database. Pass --db / EMBEDSQL_DB the database file (a .duckdb "
        "file) instead.",
    ),
    "a CSV file": Fault(_csv, NOT_A_DUCKDB_DATABASE.format(db="docs.csv", what="")),
    "a SQLite database": Fault(_sqlite, NOT_A_DUCKDB_DATABASE.format(db="app.db", what=" (a SQLite database)")),
    "a DuckDB file cut short": Fault(
        _cut_short,
        "database 'd.duckdb' is damaged: it is shorter than DuckDB wrote it (a copy or download cut short?). "
        'DuckDB says: IO Error: Could not read enough bytes from file "{root}/d.duckdb": {any}. embedsql never '
        "repairs a database: restore the file from a backup or another copy, then run the command again.",
    ),
    "the home folder of no user": Fault(
        lambda root: "~nosuchuser/d.duckdb",
        "{source} starts with ~nosuchuser, but there is no user 'nosuchuser' on this machine: write the folder "
        "out, or start it with ~/ for your own home.",
    ),
    "a work folder that is a file": Fault(
        _file_as_work_folder,
        "cannot write job folders in work: File exists (errno 17). work is a file, where a folder must be: move "
        "it, or set EMBEDSQL_WORK_DIR to another path.",
        env={"EMBEDSQL_WORK_DIR": "work"},
        only=("run", "run --dry-run"),
    ),
    ".env line that cannot be read": Fault(
        _unreadable_dotenv_line,
        "{root}/.env line 2 cannot be read (the line of 'EMBEDSQL_MODEL'). Write it as NAME=value, quoting a value "
        'that holds spaces, quotes or # (NAME="a value"), or start it with # to make it a comment.',
        settings_only=True,
    ),
    ".env in Latin-1": Fault(
        _latin1_dotenv,
        "{root}/.env is not UTF-8 text: byte 0xe9 on line 1 cannot be decoded (Latin-1 or another legacy "
        "encoding?). Save .env as UTF-8 (iconv -f latin1 -t utf-8), or set the variable in the environment instead.",
        settings_only=True,
    ),
    "embedsql.toml that is not TOML": Fault(
        _broken_toml,
        "embedsql.toml is not valid TOML: Invalid value (at line 1, column 13). Fix the file or remove it.",
        settings_only=True,
    ),
    "embedsql.toml value of the wrong type": Fault(
        _toml_of_the_wrong_type,
        "max_attempts in embedsql.toml must be a whole number, got 'many'",
        settings_only=True,
    ),
    "EMBEDSQL_LOCK_WAIT not a number": Fault(
        _docs,
        "EMBEDSQL_LOCK_WAIT in environment must be a number of seconds, got 'soon'",
        env={"EMBEDSQL_LOCK_WAIT": "soon"},
        settings_only=True,
    ),
    "EMBEDSQL_LOCK_WAIT nan": Fault(
        _docs,
        "EMBEDSQL_LOCK_WAIT in environment must be a number of seconds, got 'nan'",
        env={"EMBEDSQL_LOCK_WAIT": "nan"},
        settings_only=True,
    ),
}
CASES = [
    pytest.param(fault, command, id=f"{fault} / {command}")
    for fault in FAULTS
    for command in COMMANDS
    if (COMMANDS[command].settings or not FAULTS[fault].settings_only)
    and (not FAULTS[fault].only or command in FAULTS[fault].only)
]


def _files(root: Path) -> dict[str, object]:
    """Every file under ``root`` (None for a folder): a DuckDB database by the user's tables in it (embedsql
    may add its ledger), any other file by its bytes. To compare whole."""

    def state(path: Path) -> object:
        if not path.is_file():
            return None
        data = path.read_bytes()
        if data[8:12] != b"DUCK":  # not a DuckDB database (DuckDB would open a CSV as an empty one)
            return data
        try:
            return contents(path)
        except duckdb.Error:  # a damaged one
            return data

    return {str(p.relative_to(root)): state(p) for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize(("fault", "command"), CASES)
def test_every_command_says_the_same_line_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str, command: str
) -> None:
    monkeypatch.chdir(tmp_path)
    the_fault, the_command = FAULTS[fault], COMMANDS[command]
    db = the_fault.make(tmp_path)
    before = _files(tmp_path)

    result = CliRunner().invoke(cli, [*the_command.args, "--db", db], env=the_fault.env)

    assert (result.exit_code, result.stdout) == (1, ""), result.output
    assert the_fault.expected(tmp_path, source="--db").fullmatch(result.stderr.splitlines()[-1].removeprefix("Error: "))
    assert result.stderr.splitlines()[-1].startswith("Error: ")
    assert "Traceback" not in result.stderr
    assert _files(tmp_path) == before

    for name, value in (the_fault.env or {}).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(embedsql.EmbedsqlError) as raised:
        the_command.call(db)  # as a user passes it: a str

    assert the_fault.expected(tmp_path, source="argument db").fullmatch(str(raised.value)), str(raised.value)
    assert _files(tmp_path) == before


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Path]:
    """``d.duckdb``, held open for writing by another process until the test ends."""
    db = docs_db(tmp_path / "d.duckdb")
    process = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print(flush=True); "
         "sys.stdin.read()", str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdin is not None
    process.stdout.readline()
    yield db
    process.stdin.close()
    process.wait(timeout=60)
    process.stdout.close()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_names_the_process_holding_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, holder: Path, command: str
) -> None:
    monkeypatch.chdir(tmp_path)
    before = _files(tmp_path)

    result = CliRunner().invoke(cli, [*COMMANDS[command].args, "--db", "d.duckdb"], env={"EMBEDSQL_LOCK_WAIT": "0"})

    assert (result.exit_code, result.stdout) == (1, ""), result.output
    line = result.stderr.splitlines()[-1]
    assert line.startswith("Error: database 'd.duckdb' is in use by another process (PID "), line
    assert line.endswith(
        "). DuckDB allows one writer at a time: wait for that process to finish, or close it, then run again "
        "(EMBEDSQL_LOCK_WAIT sets how long embedsql waits)."
    )
    assert _files(tmp_path) == before
