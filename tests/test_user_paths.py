"""Paths the user gives, and the operating system's refusals of them: one line each that names the path,
where it was set, and the fix, for every command and the Python API; never a traceback.

- A path no file can have (``~nosuchuser/...``, a NUL byte) is refused where it is read: a flag, the
  environment, ``.env``, ``embedsql.toml``, ``[tool.embedsql]``, an argument of the Python API, a dbt profile.
- A work folder or database path that the system refuses is explained by its errno: a file where a
  folder must be, a missing folder, a read-only disk, no permission, a loop of links, a name too long,
  a full disk or quota. Real ones where this machine can make them; the rest at each kind of write,
  through the failpoint hook (``EMBEDSQL_FAILPOINT=point:errno``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hostile import QUERY, SMALL_SHARDS, assert_embedded_once_each, contents, docs_db, job_ids, leftovers

import embedsql
from embedsql.cli import cli
from embedsql.errors import ConfigError

NO_JOB = "20260101-000000-abcd"
COMMANDS = [
    ["config"],
    ["run", QUERY],
    ["run", QUERY, "--dry-run"],
    ["resume", NO_JOB],
    ["cancel", NO_JOB],
    ["jobs"],
    ["status"],
    ["sql", "select 1"],
    ["search", "alpha", "--table", "docs_embeddings"],
]
IDS = [" ".join(c[:1] + c[2:3]) for c in COMMANDS]
NO_USER = (
    "{where} starts with ~nosuchuser, but there is no user 'nosuchuser' on this machine: write the folder out, "
    "or start it with ~/ for your own home."
)
NUL = "{where} holds a NUL byte ('a\\x00b.duckdb'), which no path can contain: remove it."


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return docs_db(tmp_path / "d.duckdb")


# (setting, how the value is set, where the message says it was set)
SOURCES = [
    ("db", "environment", "EMBEDSQL_DB in environment"),
    ("db", ".env", "EMBEDSQL_DB in .env"),
    ("db", "embedsql.toml", "db in embedsql.toml"),
    ("db", "pyproject.toml", "db in [tool.embedsql] in pyproject.toml"),
    ("work_dir", "environment", "EMBEDSQL_WORK_DIR in environment"),
    ("work_dir", ".env", "EMBEDSQL_WORK_DIR in .env"),
    ("work_dir", "embedsql.toml", "work_dir in embedsql.toml"),
    ("dbt_project", "environment", "EMBEDSQL_DBT_PROJECT in environment"),
    ("dbt_project", "embedsql.toml", "dbt_project in embedsql.toml"),
]
VARIABLES = {"db": "EMBEDSQL_DB", "work_dir": "EMBEDSQL_WORK_DIR", "dbt_project": "EMBEDSQL_DBT_PROJECT"}


def set_value(tmp_path: Path, name: str, how: str, value: str) -> dict[str, str]:
    """Set setting ``name`` to ``value`` as ``how`` says; the environment to run with."""
    toml = value.replace("\0", "\\u0000")
    if how == "environment":
        return {VARIABLES[name]: value}
    if how == ".env":
        (tmp_path / ".env").write_text(f"{VARIABLES[name]}={value}\n", encoding="utf-8")
    elif how == "embedsql.toml":
        (tmp_path / "embedsql.toml").write_text(f'{name} = "{toml}"\n', encoding="utf-8")
    elif how == "pyproject.toml":
        (tmp_path / "pyproject.toml").write_text(f'[tool.embedsql]\n{name} = "{toml}"\n', encoding="utf-8")
    return {}


@pytest.mark.parametrize("command", COMMANDS, ids=IDS)
@pytest.mark.parametrize(("name", "how", "where"), SOURCES, ids=[f"{n}-{h}" for n, h, _ in SOURCES])
def test_a_home_folder_of_no_user_is_refused_wherever_it_is_set(
    db: Path, tmp_path: Path, name: str, how: str, where: str, command: list[str]
) -> None:
    before = contents(db)
    env = set_value(tmp_path, name, how, "~nosuchuser/x.duckdb")
    flags = ["--db", "d.duckdb"] if name != "db" and command != ["config"] else []

    result = CliRunner().invoke(cli, [*command, *flags], env=env)

    assert (result.exit_code, result.stdout) == (1, ""), result.output
    assert result.stderr == f"Error: {NO_USER.format(where=where)}\n"
    assert contents(db) == before
    assert not (tmp_path / ".embedsql").exists()


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != ["config"]], ids=IDS[1:])
@pytest.mark.parametrize(("flag", "value"), [("--db", "~nosuchuser/x.duckdb"), ("--dbt-project", "~nosuchuser/shop")])
def test_a_home_folder_of_no_user_in_a_flag_is_refused(db: Path, command: list[str], flag: str, value: str) -> None:
    extra = ["--db", "d.duckdb"] if flag != "--db" else []

    result = CliRunner().invoke(cli, [*command, flag, value, *extra])

    assert (result.exit_code, result.stderr) == (1, f"Error: {NO_USER.format(where=flag)}\n"), result.output


@pytest.mark.parametrize("command", COMMANDS, ids=IDS)
@pytest.mark.parametrize(
    ("name", "how", "where"),
    [s for s in SOURCES if s[1] in ("embedsql.toml", "pyproject.toml")],  # the environment cannot hold a NUL
    ids=[f"{n}-{h}" for n, h, _ in SOURCES if h in ("embedsql.toml", "pyproject.toml")],
)
def test_a_nul_byte_in_a_path_from_a_config_file_is_refused(
    db: Path, tmp_path: Path, name: str, how: str, where: str, command: list[str]
) -> None:
    set_value(tmp_path, name, how, "a\0b.duckdb")
    flags = ["--db", "d.duckdb"] if name != "db" and command != ["config"] else []

    result = CliRunner().invoke(cli, [*command, *flags])

    assert (result.exit_code, result.stdout) == (1, ""), result.output
    assert result.stderr == f"Error: {NUL.format(where=where)}\n"


def test_a_nul_byte_in_a_flag_is_refused(db: Path) -> None:
    result = CliRunner().invoke(cli, ["jobs", "--db", "a\0b.duckdb"])

    assert (result.exit_code, result.stderr) == (1, f"Error: {NUL.format(where='--db')}\n")


@pytest.mark.parametrize("value", ["~nosuchuser/x.duckdb", "a\0b.duckdb", Path("~nosuchuser/x.duckdb")])
@pytest.mark.parametrize("name", ["db", "work_dir", "dbt_project"])
def test_the_python_api_refuses_the_same_paths_naming_the_argument(db: Path, name: str, value: object) -> None:
    message = (NUL if "\0" in str(value) else NO_USER).format(where=f"argument {name}")
    args = {"db": db, name: value}
    calls = {
        "run": lambda: embedsql.run(QUERY, **args),
        "resume": lambda: embedsql.resume(NO_JOB, **args),
        "cancel": lambda: embedsql.cancel(NO_JOB, **args),
        "sql": lambda: embedsql.sql("select 1", **args),
        "search": lambda: embedsql.search("alpha", table="docs_embeddings", **args),
        "connect": lambda: embedsql.connect(**args),
        "load_settings": lambda: embedsql.load_settings({name: value}),
    }
    for call in calls.values():
        with pytest.raises(ConfigError) as raised:
            call()
        assert str(raised.value) == message


@pytest.mark.parametrize("value", ["~nosuchuser/x.duckdb", "a\0b.duckdb"])
def test_list_jobs_and_job_status_refuse_the_same_paths(value: str) -> None:
    message = (NUL if "\0" in value else NO_USER).format(where="argument db")
    for call in (lambda: embedsql.list_jobs(value), lambda: embedsql.job_status(value)):
        with pytest.raises(ConfigError) as raised:
            call()
        assert str(raised.value) == message


def test_a_dbt_profile_path_of_no_user_is_refused(db: Path, tmp_path: Path) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    (project / "dbt_project.yml").write_text("name: shop\nprofile: shop\n", encoding="utf-8")
    (project / "profiles.yml").write_text(
        "shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: ~nosuchuser/shop.duckdb\n",
        encoding="utf-8",
    )

    result = CliRunner().invoke(cli, ["jobs", "--dbt-project", "shop"])
    elsewhere = CliRunner().invoke(cli, ["jobs", "--dbt-project", "shop"], env={"DBT_PROFILES_DIR": "~nosuchuser"})

    where = f"the path of dbt profile shop, target dev in {Path('shop') / 'profiles.yml'}"
    assert (result.exit_code, result.stderr) == (1, f"Error: {NO_USER.format(where=where)}\n")
    assert (elsewhere.exit_code, elsewhere.stderr) == (1, f"Error: {NO_USER.format(where='DBT_PROFILES_DIR')}\n")


# The work folder, refused by the system


def _cannot_write(what: str, folder: str, strerror: str, code: int, fix: str) -> str:
    return f"Error: cannot write {what} in {folder}: {strerror} (errno {code}). {fix}\n"


def _loop(tmp_path: Path, path: str) -> str:
    """Two links that point at each other, and ``path`` through them."""
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    return path


def _file(tmp_path: Path, path: str) -> str:
    """A file of the user's, notes.txt, and ``path`` at or under it."""
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    return path


def _link(tmp_path: Path, path: str) -> str:
    """A link, mnt, to a folder that is not there (a disk that is not mounted), and ``path`` under it."""
    (tmp_path / "mnt").symlink_to(tmp_path / "unmounted")
    return path


WORK_DIRS = {
    # a file where the work folder should be, or above it
    "a file": (
        lambda t: _file(t, "notes.txt"),
        "notes.txt", "File exists", 17,
        "notes.txt is a file, where a folder must be: move it, or set EMBEDSQL_WORK_DIR to another path.",
    ),
    "under a file": (
        lambda t: _file(t, "notes.txt/work"),
        "notes.txt/work", "Not a directory", 20,
        "notes.txt is a file, where a folder must be: move it, or set EMBEDSQL_WORK_DIR to another path.",
    ),
    # embedsql makes the work folder, not the folders above it (a typo, a disk that is not mounted)
    "in a missing folder": (
        lambda t: "scratch/work",
        "scratch/work", "No such file or directory", 2,
        "scratch does not exist: create that folder, or set EMBEDSQL_WORK_DIR to a path whose folders exist.",
    ),
    "in a dangling link": (
        lambda t: _link(t, "mnt/work"),
        "mnt/work", "No such file or directory", 2,
        "mnt does not exist: create that folder, or set EMBEDSQL_WORK_DIR to a path whose folders exist.",
    ),
    "in a loop of links": (
        lambda t: _loop(t, "loop1/work"),
        "loop1/work", "Too many levels of symbolic links", 40,
        "Its path runs through a loop of symbolic links: fix the links, or set EMBEDSQL_WORK_DIR to another path.",
    ),
    "a name too long": (
        lambda t: "w" * 300,
        "w" * 300, "File name too long", 36,
        "The path is too long for the file system: set EMBEDSQL_WORK_DIR to a shorter path.",
    ),
}  # fmt: skip


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("case", list(WORK_DIRS))
def test_a_work_folder_the_system_refuses_is_explained_by_errno(
    db: Path, tmp_path: Path, alone: dict[str, np.ndarray], case: str, dry_run: bool
) -> None:
    make, folder, strerror, code, fix = WORK_DIRS[case]
    work_dir = make(tmp_path)
    before = contents(db)
    flags = ["--dry-run"] if dry_run else []

    result = CliRunner().invoke(cli, ["run", QUERY, "--db", "d.duckdb", *flags], env={"EMBEDSQL_WORK_DIR": work_dir})

    assert (result.exit_code, result.stdout) == (1, ""), result.output
    assert result.stderr.splitlines()[-1] + "\n" == _cannot_write("job folders", folder, strerror, code, fix)
    assert contents(db) == before
    assert job_ids(db) == []
    assert "Traceback" not in result.stderr

    again = CliRunner().invoke(cli, ["run", QUERY, "--db", "d.duckdb"], env={"EMBEDSQL_WORK_DIR": "work"})

    assert again.exit_code == 0, again.output  # a work folder whose parent exists is made
    assert_embedded_once_each(db, alone)


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    """A read-only file system (a tmpfs mounted ro, which needs root; elsewhere the test says why it is skipped)."""
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_work_folder_on_a_read_only_disk(db: Path, read_only_disk: Path) -> None:
    result = CliRunner().invoke(
        cli, ["run", QUERY, "--db", "d.duckdb"], env={"EMBEDSQL_WORK_DIR": str(read_only_disk / "work")}
    )

    assert result.stderr.splitlines()[-1] + "\n" == _cannot_write(
        "job folders", str(read_only_disk / "work"), "Read-only file system", 30,
        "That file system is read-only: set EMBEDSQL_WORK_DIR to a path on a disk that can be written.",
    )  # fmt: skip
    assert job_ids(db) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any folder")
def test_a_work_folder_without_write_permission(db: Path, tmp_path: Path) -> None:
    (tmp_path / "locked").mkdir(mode=0o500)

    result = CliRunner().invoke(cli, ["run", QUERY, "--db", "d.duckdb"], env={"EMBEDSQL_WORK_DIR": "locked/work"})

    assert result.stderr.splitlines()[-1] + "\n" == _cannot_write(
        "job folders", "locked/work", "Permission denied", 13,
        "You may not write there: change its permissions, or set EMBEDSQL_WORK_DIR to a path you can write.",
    )  # fmt: skip


# Every errno at each kind of write into the work folder (the failpoint raises the error there)

FIXES = {
    "enospc": ("No space left on device", 28, "Free some space there, or set EMBEDSQL_WORK_DIR to a folder with room."),
    "edquot": ("Disk quota exceeded", 122, "Free some space there, or set EMBEDSQL_WORK_DIR to a folder with room."),
    "eacces": ("Permission denied", 13,
               "You may not write there: change its permissions, or set EMBEDSQL_WORK_DIR to a path you can write."),
    "eperm": ("Operation not permitted", 1,
              "You may not write there: change its permissions, or set EMBEDSQL_WORK_DIR to a path you can write."),
    "erofs": ("Read-only file system", 30,
              "That file system is read-only: set EMBEDSQL_WORK_DIR to a path on a disk that can be written."),
    "eio": ("Input/output error", 5, "Check that path, or set EMBEDSQL_WORK_DIR to another one."),
}  # fmt: skip


@pytest.mark.parametrize(("point", "what"), [("shard-write", "shard files"), ("local-embed", "result files")])
@pytest.mark.parametrize("code", list(FIXES))
def test_each_errno_at_each_write_says_what_to_do(
    db: Path, tmp_path: Path, alone: dict[str, np.ndarray], code: str, point: str, what: str
) -> None:
    strerror, number, fix = FIXES[code]
    if os.strerror(number) != strerror:
        pytest.skip(f"this system words errno {number} as {os.strerror(number)!r}")
    before = contents(db)

    failed = CliRunner().invoke(
        cli, ["run", QUERY, "--db", "d.duckdb"], env={**SMALL_SHARDS, "EMBEDSQL_FAILPOINT": f"{point}:{code}"}
    )

    assert failed.exit_code == 1, failed.output
    recorded = job_ids(db)
    folder = tmp_path / ".embedsql" / "d.duckdb"
    job = f"{recorded[0]}" if recorded else failed.stderr.split(f"in {folder.relative_to(tmp_path)}/")[1][:20]
    kept = f" Job {job} keeps its place: continue it with `embedsql resume {job}`." if recorded else ""
    assert failed.stderr.splitlines()[-1] == (
        f"Error: cannot write {what} in .embedsql/d.duckdb/{job}: {strerror} (errno {number}). {fix}{kept}"
    )
    assert contents(db) == before

    again = CliRunner().invoke(cli, ["run", QUERY, "--db", "d.duckdb"], env=SMALL_SHARDS)

    assert again.exit_code == 0, again.output
    assert_embedded_once_each(db, alone)
    assert leftovers(tmp_path) == []


# The database's own path, refused by the system

DB_PATHS = {
    "in a loop of links": (
        lambda t: _loop(t, "loop1"),
        "Too many levels of symbolic links", 40,
        "Its path runs through a loop of symbolic links: fix the links, or set --db / EMBEDSQL_DB to another path.",
    ),
    "a name too long": (
        lambda t: "d" * 300 + ".duckdb",
        "File name too long", 36,
        "The path is too long for the file system: set --db / EMBEDSQL_DB to a shorter path.",
    ),
    "under a file": (
        lambda t: _file(t, "notes.txt/d.duckdb"),
        "Not a directory", 20,
        "notes.txt is a file, where a folder must be: move it, or set --db / EMBEDSQL_DB to another path.",
    ),
}  # fmt: skip


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != ["config"]], ids=IDS[1:])
@pytest.mark.parametrize("case", list(DB_PATHS))
def test_a_database_path_the_system_refuses_is_explained_by_errno(
    tmp_path: Path, case: str, command: list[str]
) -> None:
    make, strerror, code, fix = DB_PATHS[case]
    path = make(tmp_path)

    result = CliRunner().invoke(cli, [*command, "--db", path])

    assert (result.exit_code, result.stdout) == (1, ""), result.output
    assert result.stderr.splitlines()[-1] == f"Error: cannot read database {path!r}: {strerror} (errno {code}). {fix}"
    assert not (tmp_path / ".embedsql").exists()
