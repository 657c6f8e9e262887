"""Hostile local state: text files in other encodings, files that are not DuckDB databases, a full disk
at each kind of write, and Ctrl-C at each stage of a job.

Each case asserts the exact message and exit status, and that the user's tables are exactly as before
(or exactly as expected once the job is finished after the fault).
"""

from __future__ import annotations

import codecs
import re
import sqlite3
import threading
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner
from hostile import (
    QUERY,
    SMALL_SHARDS,
    assert_embedded_once_each,
    contents,
    docs_db,
    embedsql_process,
    job_ids,
    leftovers,
    model_calls,
)

import embedsql.pipeline
from embedsql import ledger
from embedsql.cli import cli

from helpers import fetch

# Every command that reads the settings, with arguments that would otherwise work or fail later.
COMMANDS = [
    ["config"],
    ["run", QUERY],
    ["run", QUERY, "--dry-run"],
    ["resume", "20260101-000000-abcd"],
    ["cancel", "20260101-000000-abcd"],
    ["jobs"],
    ["status"],
    ["sql", "select 1"],
    ["search", "alpha", "--table", "docs_embeddings"],
]
NOT_UTF8_DOTENV = (
    "Error: {path} is not UTF-8 text: byte 0x{byte} on line {line} cannot be decoded (Latin-1 or another legacy "
    "encoding?). Save .env as UTF-8 (iconv -f latin1 -t utf-8), or set the variable in the environment instead.\n"
)


# .env in other encodings


@pytest.mark.parametrize(
    ("raw", "byte", "line"),
    [
        (b"EMBEDSQL_MODEL=caf\xe9\n", "e9", 1),  # Latin-1 in a value
        (b"EMBEDSQL_LOCK_WAIT=1\nEMBEDSQL_MOD\xc9L=x\n", "c9", 2),  # Latin-1 in a key
        (b"# r\xe9glages\nEMBEDSQL_LOCK_WAIT=1\n", "e9", 1),  # in a comment
        (b"OPENAI_API_KEY=\x93sk-test\x94\n", "93", 1),  # Windows-1252 quotes
        (b"A=1\nB=2\nEMBEDSQL_DB=\xe2\x82\n", "e2", 3),  # UTF-8 cut in the middle of a character
        (codecs.BOM_UTF16_LE + "EMBEDSQL_MODEL=x\n".encode("utf-16-le") + b"\x00", "00", 2),  # odd bytes
    ],
    ids=["latin1-value", "latin1-key", "latin1-comment", "cp1252", "cut-utf8", "broken-utf16"],
)
@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c[:1] + c[2:3]) for c in COMMANDS])
def test_a_dotenv_that_is_not_utf8_is_one_error_for_every_command(
    tmp_path: Path, raw: bytes, byte: str, line: int, command: list[str]
) -> None:
    db = docs_db(tmp_path / "warehouse.duckdb")
    before = contents(db)
    (tmp_path / ".env").write_bytes(raw)

    result = CliRunner().invoke(cli, command)

    expected = NOT_UTF8_DOTENV.format(path=tmp_path / ".env", byte=byte, line=line)
    if raw.startswith(codecs.BOM_UTF16_LE):
        expected = expected.replace("is not UTF-8 text", "is not UTF-16 text (it starts with a UTF-16 byte order mark)")
    assert (result.exit_code, result.stderr, result.stdout) == (1, expected, "")
    assert contents(db) == before
    assert fetch(db, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'embedsql'") == [(0,)]


@pytest.mark.parametrize("line", [1, 3])
def test_a_nul_byte_in_dotenv_is_refused_with_its_line(tmp_path: Path, line: int) -> None:
    lines = [b"A=1", b"B=2", b"C=3"]
    lines[line - 1] = b"EMBEDSQL_MODEL=a\x00b"
    (tmp_path / ".env").write_bytes(b"\n".join(lines))

    result = CliRunner().invoke(cli, ["config"])

    assert (result.exit_code, result.stderr) == (
        1,
        f"Error: {tmp_path / '.env'} holds a NUL byte on line {line}, which no text can contain: remove it.\n",
    )


@pytest.mark.parametrize(
    "encoded",
    [
        codecs.BOM_UTF8 + "EMBEDSQL_MODEL=modèle-é\n".encode(),
        "EMBEDSQL_MODEL=modèle-é\n".encode("utf-16"),  # with its BOM, in the machine's order
        codecs.BOM_UTF16_BE + "EMBEDSQL_MODEL=modèle-é\n".encode("utf-16-be"),
    ],
    ids=["utf8-bom", "utf16", "utf16-be"],
)
def test_a_dotenv_with_a_byte_order_mark_is_read(tmp_path: Path, encoded: bytes) -> None:
    (tmp_path / ".env").write_bytes(encoded)

    result = CliRunner().invoke(cli, ["config"])

    assert result.exit_code == 0, result.output
    assert "model                   modèle-é  [.env; env EMBEDSQL_MODEL]\n" in result.stdout


# run -f FILE in other encodings


NOT_UTF8_QUERY = (
    "Error: {name} is not {what}: byte 0x{byte} on line {line} cannot be decoded (Latin-1 or another legacy "
    "encoding?). Save it as UTF-8 (iconv -f latin1 -t utf-8), or pass the query as an argument.\n"
)


@pytest.mark.parametrize(
    ("raw", "byte", "line", "what"),
    [
        ("select id, body from docs where body <> 'é'".encode("latin-1"), "e9", 1, "UTF-8 text"),
        ("-- requête\nselect id, body from docs".encode("cp1252"), "ea", 1, "UTF-8 text"),
        ("select id,\n body from docs -- “x”".encode("cp1252"), "93", 2, "UTF-8 text"),
        (
            codecs.BOM_UTF16_LE + "select id, body from docs".encode("utf-16-le")[:-1],  # its last byte cut
            "73",
            1,
            "UTF-16 text (it starts with a UTF-16 byte order mark)",
        ),
    ],
    ids=["latin1", "cp1252-comment", "cp1252-quotes", "cut-utf16"],
)
def test_a_query_file_that_is_not_utf8_is_one_error(
    tmp_path: Path, raw: bytes, byte: str, line: int, what: str
) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    before = contents(db)
    (tmp_path / "q.sql").write_bytes(raw)

    result = CliRunner().invoke(cli, ["run", "-f", "q.sql", "--db", str(db)])

    expected = NOT_UTF8_QUERY.format(name="query file q.sql", what=what, byte=byte, line=line)
    assert (result.exit_code, result.stderr, result.stdout) == (1, expected, "")
    assert contents(db) == before
    assert fetch(db, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'embedsql'") == [(0,)]


def test_a_query_on_standard_input_that_is_not_utf8_is_one_error(tmp_path: Path) -> None:
    db = docs_db(tmp_path / "d.duckdb")

    result = CliRunner().invoke(cli, ["run", "-f", "-", "--db", str(db)], input=b"select '\xe9'")

    expected = NOT_UTF8_QUERY.format(name="standard input", what="UTF-8 text", byte="e9", line=1)
    assert (result.exit_code, result.stderr) == (1, expected)


@pytest.mark.parametrize(
    "encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le-bom", "utf-16-be-bom"], ids=lambda e: e
)
def test_a_query_file_in_utf8_or_utf16_with_a_bom_is_read(tmp_path: Path, encoding: str) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    query = "-- texte où « gamma » manque\nselect id, body from docs where body not like '%gamma%'"
    bom = {"utf-16-le-bom": codecs.BOM_UTF16_LE, "utf-16-be-bom": codecs.BOM_UTF16_BE}.get(encoding, b"")
    raw = bom + query.encode(encoding.removesuffix("-bom"))
    (tmp_path / "q.sql").write_bytes(raw)

    result = CliRunner().invoke(cli, ["run", "-f", "q.sql", "--db", str(db), "--dry-run"])

    assert result.exit_code == 0, result.output
    assert "  rows                    20\n" in result.stdout  # the 10 gamma texts left out, é and « » read right


@pytest.mark.parametrize(
    ("path", "why"),
    [("missing.sql", "No such file or directory"), (".", "Is a directory"), ("sub", "Is a directory")],
)
def test_a_query_file_that_cannot_be_opened_is_a_usage_error(tmp_path: Path, path: str, why: str) -> None:
    (tmp_path / "sub").mkdir()

    result = CliRunner().invoke(cli, ["run", "-f", path])

    assert result.exit_code == 2
    assert result.stderr.endswith(f"Error: Invalid value for '-f' / '--file': '{path}': {why}\n")


# --db naming a file that is not a DuckDB database


def _sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE movies (id INTEGER, title TEXT)")
    con.commit()
    con.close()


def _parquet(path: Path) -> None:
    duckdb.sql(f"COPY (SELECT 1 AS id, 'a' AS body) TO '{path}' (FORMAT parquet)")


KINDS = {
    "csv": (lambda p: p.write_text("id,body\n1,alpha\n"), ""),
    "text": (lambda p: p.write_text("hello\n"), ""),
    "short": (lambda p: p.write_bytes(b"DUCK"), ""),
    "empty": (lambda p: p.write_bytes(b""), " (an empty file)"),
    "sqlite": (_sqlite, " (a SQLite database)"),
    "parquet": (_parquet, ""),
    "json": (lambda p: p.write_text('[{"id": 1}]'), ""),
}
DB_COMMANDS = [
    ["run", "select 1 as id, 'a' as body"],
    ["run", "select 1 as id, 'a' as body", "--dry-run"],
    ["resume", "20260101-000000-abcd"],
    ["cancel", "20260101-000000-abcd"],
    ["jobs"],
    ["status"],
    ["sql", "select 1"],
    ["search", "alpha", "--table", "t"],
]


@pytest.mark.parametrize("command", DB_COMMANDS, ids=[" ".join(c[:1] + c[2:3]) for c in DB_COMMANDS])
@pytest.mark.parametrize(("name", "kind"), [("x.csv", "csv"), ("notes.txt", "text"), ("w.duckdb", "short"),
                                            ("new.duckdb", "empty"), ("app.db", "sqlite"), ("d.parquet", "parquet"),
                                            ("data.json", "json")])  # fmt: skip
def test_a_file_that_is_not_a_duckdb_database_is_refused_and_left_as_it_is(
    tmp_path: Path, name: str, kind: str, command: list[str]
) -> None:
    path = tmp_path / name
    make, what = KINDS[kind]
    make(path)
    before = path.read_bytes()

    result = CliRunner().invoke(cli, [*command, "--db", name])

    assert result.exit_code == 1, result.output
    assert result.stderr.endswith(
        f"Error: --db {name!r} is not a DuckDB database{what}. Pass --db / EMBEDSQL_DB a DuckDB database file; "
        f"to embed the rows of another file, query it from one (select ... from '{name}').\n"
    )
    assert result.stdout == ""
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no WAL, no work folder


@pytest.mark.parametrize("command", DB_COMMANDS, ids=[" ".join(c[:1] + c[2:3]) for c in DB_COMMANDS])
def test_a_folder_as_db_is_refused(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "data.duckdb").mkdir()

    result = CliRunner().invoke(cli, [*command, "--db", "data.duckdb"])

    assert result.exit_code == 1, result.output
    assert result.stderr.endswith(
        "Error: --db 'data.duckdb' is a folder, not a DuckDB database. Pass --db / EMBEDSQL_DB the database file "
        "(a .duckdb file) instead.\n"
    )
    assert list((tmp_path / "data.duckdb").iterdir()) == []


# A full disk at each kind of write


def _checkpoint(db: Path) -> None:
    """Fold the database's write-ahead log into it (after a kill), so the log can be replaced."""
    con = duckdb.connect(str(db))
    con.execute("CHECKPOINT")
    con.close()
    assert not Path(f"{db}.wal").exists()


def _full_wal(db: Path) -> Path:
    """Make DuckDB's write-ahead log of ``db`` a device that is always full: a real ENOSPC at commit."""
    wal = Path(f"{db}.wal")
    wal.symlink_to("/dev/full")
    return wal


needs_dev_full = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
FULL_DATABASE = (
    'Error: the database\'s disk is full: Failed to commit: Could not write file "{wal}": No space left on device. '
    "Nothing of the step was kept. Free some space there (DuckDB writes its log beside the database) and run the "
    "command again.{kept}\n"
)


def _kept(job_id: str) -> str:
    return f" Job {job_id} keeps its place: continue it with `embedsql resume {job_id}`."


@needs_dev_full
@pytest.mark.parametrize("ledger_exists", [False, True], ids=["new-ledger", "ledger"])
@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_a_full_disk_under_the_database_while_planning(tmp_path: Path, ledger_exists: bool, dry_run: bool) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    if ledger_exists:
        ledger.connect(db).close()
    before = contents(db)
    wal = _full_wal(db)

    result = CliRunner().invoke(cli, ["run", QUERY, "--db", str(db), *(["--dry-run"] if dry_run else [])])

    # A dry run writes nothing into the database once its ledger is there.
    if dry_run and ledger_exists:
        assert result.exit_code == 0, result.output
        return
    assert (result.exit_code, result.stderr.splitlines()[-1] + "\n") == (1, FULL_DATABASE.format(wal=wal, kept=""))
    wal.unlink()
    assert contents(db) == before
    if ledger_exists:
        assert fetch(db, "SELECT count(*) FROM embedsql.jobs") == [(0,)]


@needs_dev_full
@pytest.mark.parametrize("point", ["load", "materialise"])
def test_a_full_disk_under_the_database_while_loading_or_writing_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alone: dict[str, np.ndarray], point: str
) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    before = contents(db)
    killed = embedsql_process(tmp_path, "run", QUERY, "--db", str(db), env={"EMBEDSQL_FAILPOINT": point})
    assert killed.returncode == -9, killed.stderr
    (job_id,) = job_ids(db)
    _checkpoint(db)
    wal = _full_wal(db)

    full = CliRunner().invoke(cli, ["resume", job_id, "--db", str(db)])

    assert full.exit_code == 1, full.output
    assert full.stderr.splitlines()[-1] + "\n" == FULL_DATABASE.format(wal=wal, kept=_kept(job_id))
    wal.unlink()
    assert contents(db) == before
    assert job_ids(db) == [job_id]

    # The resumed job does not embed again what it computed before: the model is not reached.
    calls = model_calls(monkeypatch)
    resumed = CliRunner().invoke(cli, ["resume", job_id, "--db", str(db)])

    assert (resumed.exit_code, calls) == (0, []), resumed.output
    assert contents(db)["main.docs"] == before["main.docs"]
    assert_embedded_once_each(db, alone)
    assert leftovers(tmp_path) == []


@needs_dev_full
def test_a_full_disk_under_the_lock_file(tmp_path: Path, alone: dict[str, np.ndarray]) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    before = contents(db)
    killed = embedsql_process(tmp_path, "run", QUERY, "--db", str(db), env={"EMBEDSQL_FAILPOINT": "local-embed"})
    assert killed.returncode == -9, killed.stderr
    (job_id,) = job_ids(db)
    folder = tmp_path / ".embedsql" / "d.duckdb" / job_id
    (folder / ".lock").unlink()
    (folder / ".lock").symlink_to("/dev/full")

    full = CliRunner().invoke(cli, ["resume", job_id, "--db", str(db)])

    assert full.exit_code == 1, full.output
    assert full.stderr.splitlines()[-1] == (
        f"Error: cannot write the job's lock file in {folder}: No space left on device (errno 28). Free some space "
        f"there, or set EMBEDSQL_WORK_DIR to a folder with room.{_kept(job_id)}"
    )
    assert contents(db) == before
    (folder / ".lock").unlink()

    resumed = CliRunner().invoke(cli, ["resume", job_id, "--db", str(db)])

    assert resumed.exit_code == 0, resumed.output
    assert_embedded_once_each(db, alone)


@pytest.mark.parametrize(
    ("point", "what", "recorded"),
    [("shard-write", "shard files", False), ("shard-write:2", "shard files", False),
     ("local-embed", "result files", True), ("local-embed:2", "result files", True)],
)  # fmt: skip
def test_a_full_disk_under_the_work_folder(
    tmp_path: Path, alone: dict[str, np.ndarray], point: str, what: str, recorded: bool
) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    before = contents(db)

    full = CliRunner().invoke(
        cli, ["run", QUERY, "--db", str(db)], env={**SMALL_SHARDS, "EMBEDSQL_FAILPOINT": f"{point}:enospc"}
    )

    assert full.exit_code == 1, full.output
    jobs = job_ids(db)
    assert len(jobs) == recorded
    folder = re.escape(str(tmp_path / ".embedsql" / "d.duckdb")) + r"/(\d{8}-\d{6}-[0-9a-f]{4})"
    kept = (
        r" Job (\d{8}-\d{6}-[0-9a-f]{4}) keeps its place: continue it with `embedsql resume \2`\." if recorded else ""
    )
    message = re.fullmatch(
        f"Error: cannot write {what} in {folder}: No space left on device \\(errno 28\\). Free some space there, or "
        f"set EMBEDSQL_WORK_DIR to a folder with room.{kept}",
        full.stderr.splitlines()[-1],
    )
    assert message, full.stderr
    assert contents(db) == before

    again = CliRunner().invoke(cli, ["run", QUERY, "--db", str(db)], env=SMALL_SHARDS)

    assert again.exit_code == 0, again.output
    assert_embedded_once_each(db, alone)
    assert leftovers(tmp_path) == []


# Ctrl-C at each stage


PLANNING_INTERRUPTED = (
    "Interrupted before the job was recorded: nothing was written to the database and nothing was sent. "
    "Run the command again to start it."
)


@pytest.mark.parametrize("nth", [1, 2, 3])
@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_ctrl_c_while_planning_records_nothing(
    tmp_path: Path, alone: dict[str, np.ndarray], nth: int, dry_run: bool
) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    before = contents(db)
    flags = ["--dry-run"] if dry_run else []

    stopped = embedsql_process(
        tmp_path,
        "run",
        QUERY,
        "--db",
        str(db),
        *flags,
        env={**SMALL_SHARDS, "EMBEDSQL_FAILPOINT": f"shard-write:{nth}:int"},
    )

    assert (stopped.returncode, stopped.stdout) == (130, "")
    assert stopped.stderr.endswith(f"\n{PLANNING_INTERRUPTED}\n"), stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert contents(db) == before
    assert fetch(db, "SELECT count(*) FROM embedsql.jobs") == [(0,)]
    if dry_run:
        assert leftovers(tmp_path) == []

    again = CliRunner().invoke(cli, ["run", QUERY, "--db", str(db)], env=SMALL_SHARDS)

    assert again.exit_code == 0, again.output
    assert_embedded_once_each(db, alone)
    assert leftovers(tmp_path) == []


def test_duckdb_interrupted_while_planning_is_the_same_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C that lands while DuckDB runs a statement surfaces as its RuntimeError("Query interrupted")."""
    db = docs_db(tmp_path / "d.duckdb")
    before = contents(db)

    def interrupted_plan(con: duckdb.DuckDBPyConnection, *args: object, **kwargs: object) -> None:
        done = threading.Event()

        def press_ctrl_c() -> None:
            while not done.wait(0.01):
                con.interrupt()

        presser = threading.Thread(target=press_ctrl_c)
        presser.start()
        try:
            con.execute("SELECT count(*) FROM range(1000000000000) t(x) WHERE x % 7 = 3").fetchall()
        finally:
            done.set()
            presser.join()

    monkeypatch.setattr(embedsql.pipeline, "make_plan", interrupted_plan)

    result = CliRunner().invoke(cli, ["run", QUERY, "--db", str(db)])

    assert (result.exit_code, result.stdout) == (130, "")
    assert result.stderr.endswith(f"\n{PLANNING_INTERRUPTED}\n"), result.stderr
    assert contents(db) == before
    assert fetch(db, "SELECT count(*) FROM embedsql.jobs") == [(0,)]


LOCAL_DETACHED = (
    "Detached from job {job_id}. The texts the local model embedded so far are kept; resuming embeds only the "
    "rest.\nContinue with: embedsql resume {job_id}\n"
)


@pytest.mark.parametrize(
    ("point", "computed"),
    [("local-embed:1", 0), ("local-embed:2", 1), ("local-embed:3", 2), ("load", 3), ("materialise", 3)],
)
@pytest.mark.parametrize("how", ["resume", "rerun"])
def test_ctrl_c_during_a_local_job_keeps_what_it_embedded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alone: dict[str, np.ndarray], point: str, computed: int, how: str
) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    before = contents(db)

    stopped = embedsql_process(
        tmp_path, "run", QUERY, "--db", str(db), env={**SMALL_SHARDS, "EMBEDSQL_FAILPOINT": f"{point}:int"}
    )

    (job_id,) = job_ids(db)
    assert (stopped.returncode, stopped.stdout) == (130, "")
    assert stopped.stderr.endswith("\n\n" + LOCAL_DETACHED.format(job_id=job_id)), stopped.stderr
    assert contents(db) == before
    status = CliRunner().invoke(cli, ["status", job_id, "--db", str(db)])
    assert status.stdout.splitlines()[0] == f"job {job_id}: {'in progress' if point == 'materialise' else 'prepared'}"

    # Resumed, the model embeds only the shards not computed before: it is called once per shard left.
    left = 3 - computed
    args = ["resume", job_id] if how == "resume" else ["run", QUERY]
    calls = model_calls(monkeypatch)
    finished = CliRunner().invoke(cli, [*args, "--db", str(db)], env=SMALL_SHARDS)

    assert (finished.exit_code, calls) == (0, [10] * left), finished.output
    assert contents(db)["main.docs"] == before["main.docs"]
    assert_embedded_once_each(db, alone)
    assert job_ids(db, "complete") == [job_id]
    assert leftovers(tmp_path) == []


def test_an_interrupted_job_of_the_local_runner_keeps_its_shards_small(tmp_path: Path) -> None:
    """A shard is what an in-process runner keeps across Ctrl-C: it is a few thousand texts at most."""
    db = tmp_path / "d.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE docs AS SELECT i AS id, 'text ' || i AS body FROM range(10000) t(i)")
    con.close()

    result = CliRunner().invoke(cli, ["run", QUERY, "--db", str(db), "--dry-run"])

    assert result.exit_code == 0, result.output
    assert "  to embed            10,000 texts in 3 shard(s)\n" in result.stdout


def test_files_left_by_an_interrupted_plan_go_with_the_next_run(tmp_path: Path) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    stopped = embedsql_process(
        tmp_path, "run", QUERY, "--db", str(db), env={**SMALL_SHARDS, "EMBEDSQL_FAILPOINT": "shard-write:2:int"}
    )
    assert stopped.returncode == 130
    orphans = [p.parent.name for p in leftovers(tmp_path)]
    assert orphans  # the first shard was written before Ctrl-C

    again = CliRunner().invoke(cli, ["run", QUERY, "--db", str(db), "--keep-files"], env=SMALL_SHARDS)

    assert again.exit_code == 0, again.output
    assert {p.parent.name for p in leftovers(tmp_path)} == set(job_ids(db, "complete"))
