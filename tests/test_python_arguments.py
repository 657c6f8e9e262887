"""The Python API refuses arguments of the wrong type or meaning as the CLI and the environment do: one
``EmbedsqlError`` naming the argument, never a traceback and never a wrong reading (``keep_files='no'``
taken as true). A setting passed by name is read by the rules of its environment variable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hostile import QUERY, contents, docs_db

import embedsql
from embedsql.config import ENV_VARS, SETTINGS, load_settings
from embedsql.errors import ConfigError

NO_JOB = "20260101-000000-abcd"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return docs_db(tmp_path / "d.duckdb")


# (id, the call, the message of its ConfigError)
Call = Callable[[Path], Any]
REFUSED: list[tuple[str, Call, str]] = [
    # settings, by name
    ("lock_wait text", lambda db: embedsql.run(QUERY, db=db, lock_wait="abc"),
     "argument lock_wait must be a number of seconds, got 'abc'"),
    ("lock_wait nan", lambda db: embedsql.run(QUERY, db=db, lock_wait="nan"),
     "argument lock_wait must be a number of seconds, got 'nan'"),
    ("lock_wait list", lambda db: embedsql.sql("select 1", db=db, lock_wait=[1]),
     "argument lock_wait must be a number of seconds, got [1]"),
    ("max_shard_lines text", lambda db: embedsql.run(QUERY, db=db, max_shard_lines="five"),
     "argument max_shard_lines must be a whole number, got 'five'"),
    ("max_shard_lines float", lambda db: embedsql.run(QUERY, db=db, max_shard_lines=5.0),
     "argument max_shard_lines must be a whole number, got 5.0"),
    ("max_shard_lines bool", lambda db: embedsql.run(QUERY, db=db, max_shard_lines=True),
     "argument max_shard_lines must be a whole number, got True"),
    ("max_shard_lines zero", lambda db: embedsql.run(QUERY, db=db, max_shard_lines="0"),
     "max_shard_lines must be at least 1, got 0 (from flag). Fix EMBEDSQL_MAX_SHARD_LINES or max_shard_lines in the "
     "config file."),
    ("dimensions text", lambda db: embedsql.search("alpha", table="t", db=db, dimensions="small"),
     "argument dimensions must be a whole number, got 'small'"),
    ("memory_limit int", lambda db: embedsql.run(QUERY, db=db, memory_limit=5),
     "argument memory_limit must be a string, got 5"),
    ("memory_limit bad", lambda db: embedsql.run(QUERY, db=db, memory_limit="5"),
     "memory_limit must be a size like 512MB or 2GB, got '5' (from flag). Fix EMBEDSQL_MEMORY_LIMIT or "
     "memory_limit in the config file."),
    ("keep_files word", lambda db: embedsql.run(QUERY, db=db, keep_files="maybe"),
     "argument keep_files must be true or false, got 'maybe'"),
    ("keep_files number", lambda db: embedsql.run(QUERY, db=db, keep_files=2),
     "argument keep_files must be true or false, got 2"),
    ("model int", lambda db: embedsql.run(QUERY, db=db, model=3),
     "argument model must be a string, got 3"),
    ("model in connect", lambda db: embedsql.connect(db, model=3),
     "argument model must be a string, got 3"),
    ("runner bad", lambda db: embedsql.run(QUERY, db=db, runner="fast"),
     "runner must be one of local, batch, sync, got 'fast' (from flag). Fix --runner / EMBEDSQL_RUNNER."),
    ("db int", lambda db: embedsql.run(QUERY, db=3),
     "argument db must be a path, got 3"),
    ("db bytes", lambda db: embedsql.sql("select 1", db=b"d.duckdb"),
     "argument db must be a path, got b'd.duckdb'"),
    ("db empty", lambda db: embedsql.connect(""),
     "argument db must be a path, got ''"),
    ("prices", lambda db: embedsql.run(QUERY, db=db, prices={"m": {"batch": "cheap"}}),
     "prices for 'm' in the arguments must give `batch` and/or `standard` in dollars per million tokens, got "
     "{'batch': 'cheap'}. For example:\nprices={\"text-embedding-3-small\": {\"batch\": 0.01, \"standard\": 0.02}}"),
    # unknown names, and settings twice
    ("unknown in run", lambda db: embedsql.run(QUERY, db=db, kee="id"),
     "run() got an unknown argument 'kee'; did you mean 'key'?"),
    ("unknown setting in run", lambda db: embedsql.run(QUERY, db=db, lock_wiat=1),
     "run() got an unknown argument 'lock_wiat'; did you mean 'lock_wait'?"),
    ("unknown in search", lambda db: embedsql.search("alpha", table="t", db=db, top_k=3),
     "search() got an unknown argument 'top_k'; it takes text, table, k, show, columns, where, con, settings, and "
     "settings by name (db=, model=, lock_wait=, ...)"),
    ("unknown in sql", lambda db: embedsql.sql("select 1", db=db, params=[1]),
     "sql() got an unknown argument 'params'; it takes query, settings, and settings by name (db=, model=, "
     "lock_wait=, ...)"),
    ("unknown in resume", lambda db: embedsql.resume(NO_JOB, db=db, no_wait=True),
     "resume() got an unknown argument 'no_wait'; did you mean 'wait'?"),
    ("settings twice", lambda db: embedsql.sql("select 1", db=db, settings=load_settings()),
     "sql() got settings= and db= too; pass one or the other (embedsql.load_settings({...}) makes Settings with "
     "those values)."),
    ("settings not Settings", lambda db: embedsql.run(QUERY, settings={"db": "d.duckdb"}),
     "argument settings must be an embedsql.Settings (from embedsql.load_settings()), got {'db': 'd.duckdb'}"),
    # the functions' own arguments
    ("sql not text", lambda db: embedsql.run(5, db=db), "argument sql must be a string, got 5"),
    ("key int", lambda db: embedsql.run(QUERY, db=db, key=5),
     "argument key must be a column name or a list of them, got 5"),
    ("key list of int", lambda db: embedsql.run(QUERY, db=db, key=[1, 2]),
     "argument key must be a column name or a list of them, got [1, 2]"),
    ("text dict", lambda db: embedsql.run(QUERY, db=db, text={"body": 1}),
     "argument text must be a column name or a list of them, got {'body': 1}"),
    ("into int", lambda db: embedsql.run(QUERY, db=db, into=5), "argument into must be a string, got 5"),
    ("mode int", lambda db: embedsql.run(QUERY, db=db, mode=5), "argument mode must be a string, got 5"),
    ("mode word", lambda db: embedsql.run(QUERY, db=db, mode="merge"),
     "--mode 'merge' is not a mode; use one of: replace, upsert."),
    ("dry_run word", lambda db: embedsql.run(QUERY, db=db, dry_run="perhaps"),
     "argument dry_run must be true or false, got 'perhaps'"),
    ("wait none", lambda db: embedsql.resume(NO_JOB, db=db, wait=None),
     "argument wait must be true or false, got None"),
    ("on_event", lambda db: embedsql.run(QUERY, db=db, on_event="print"),
     "argument on_event must be a function, got 'print'"),
    ("sleep", lambda db: embedsql.cancel(NO_JOB, db=db, sleep=0), "argument sleep must be a function, got 0"),
    ("job_id int", lambda db: embedsql.resume(20260101, db=db), "argument job_id must be a string, got 20260101"),
    ("cancel job_id", lambda db: embedsql.cancel(None, db=db), "argument job_id must be a string, got None"),
    ("search text", lambda db: embedsql.search(None, table="t", db=db), "argument text must be a string, got None"),
    ("search table", lambda db: embedsql.search("alpha", table=["t"], db=db),
     "argument table must be a string, got ['t']"),
    ("search k text", lambda db: embedsql.search("alpha", table="t", db=db, k="ten"),
     "argument k must be a whole number, got 'ten'"),
    ("search k zero", lambda db: embedsql.search("alpha", table="t", db=db, k=0),
     "argument k must be at least 1, got 0"),
    ("search k float", lambda db: embedsql.search("alpha", table="t", db=db, k=2.5),
     "argument k must be a whole number, got 2.5"),
    ("search where", lambda db: embedsql.search("alpha", table="t", db=db, where=1),
     "argument where must be a string, got 1"),
    ("search show", lambda db: embedsql.search("alpha", table="t", db=db, show=b"select 1"),
     "argument show must be a string, got b'select 1'"),
    ("search columns", lambda db: embedsql.search("alpha", table="t", db=db, columns=7),
     "argument columns must be a column name or a list of them, got 7"),
    ("search con", lambda db: embedsql.search("alpha", table="t", db=db, con="d.duckdb"),
     "argument con must be a connection from embedsql.connect(), got 'd.duckdb'"),
    ("sql query", lambda db: embedsql.sql(["select 1"], db=db), "argument query must be a string, got ['select 1']"),
    ("list_jobs db", lambda db: embedsql.list_jobs(None), "argument db must be a path, got None"),
    ("list_jobs limit", lambda db: embedsql.list_jobs(db, limit="all"),
     "argument limit must be a whole number, got 'all'"),
    ("list_jobs limit zero", lambda db: embedsql.list_jobs(db, limit=0), "argument limit must be at least 1, got 0"),
    ("job_status job_id", lambda db: embedsql.job_status(db, 7), "argument job_id must be a string, got 7"),
    ("load_settings", lambda db: embedsql.load_settings({"concurrency": "many"}),
     "argument concurrency must be a whole number, got 'many'"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_a_wrong_argument_is_one_config_error_naming_it(db: Path, call: Call, message: str) -> None:
    before = contents(db)

    with pytest.raises(ConfigError) as raised:
        call(db)

    assert str(raised.value) == message
    assert contents(db) == before
    assert sorted(p.name for p in db.parent.iterdir()) == ["d.duckdb"]  # no ledger log, no work folder


# Text for a number or a boolean reads as the environment variable would read it


def _raw_values(kind: type) -> list[Any]:
    common = ["", " ", "abc", "nan", "inf", "-1", "0", "1", "5", "5.0", "1e3", "0x10", "true", "no", "Off", " yes "]
    return (
        common
        + {int: [5, 0, -2, 5.0, True], float: [5, 0.5, 2.0, True, float("nan")], bool: [True, False, 0, 1, 2]}[kind]
    )


NUMBERS_AND_FLAGS = [
    (name, raw)
    for name, declared in SETTINGS.items()
    if declared.kind in (int, float, bool) and declared.env
    for raw in _raw_values(declared.kind)
]


@pytest.mark.parametrize(("name", "raw"), NUMBERS_AND_FLAGS, ids=[f"{n}={r!r}" for n, r in NUMBERS_AND_FLAGS])
def test_an_argument_reads_as_its_environment_variable(tmp_path: Path, name: str, raw: Any) -> None:
    """Text is read as the variable reads it (the same value, or the same refusal under another name);
    a Python value of the field's own type is taken as it is."""
    as_argument = _outcome(lambda: load_settings({name: raw}, environ={}, cwd=tmp_path), name)
    if not isinstance(raw, str):
        if isinstance(as_argument, str):
            assert as_argument.startswith((f"argument {name} must be ", f"{name} must be "))
        return
    as_variable = _outcome(lambda: load_settings(environ={ENV_VARS[name]: raw}, cwd=tmp_path), name)
    if isinstance(as_variable, str) and isinstance(as_argument, str):
        assert as_argument == as_variable.replace(f"{ENV_VARS[name]} in environment", f"argument {name}").replace(
            "(from environment)", "(from flag)"
        )
    else:
        assert as_argument == as_variable


def _outcome(load: Callable[[], Any], name: str) -> Any:
    try:
        return ("value", getattr(load(), name))
    except ConfigError as e:
        return str(e)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("no", False), ("NO", False), ("off", False), ("0", False), ("false", False), ("", False), (False, False),
     ("yes", True), ("On", True), ("1", True), (" true ", True), (True, True), (1, True), (0, False)],
)  # fmt: skip
def test_keep_files_reads_words_as_the_environment_does_and_no_is_false(db: Path, raw: Any, expected: bool) -> None:
    assert load_settings({"keep_files": raw}).keep_files is expected
    result = embedsql.run(QUERY, db=db, keep_files=raw)
    assert any(result.work_dir.iterdir()) if expected else not result.work_dir.exists()


@pytest.mark.parametrize(("raw", "expected"), [("no", False), ("false", False), ("0", False), ("yes", True)])
def test_dry_run_reads_words_as_the_environment_does(db: Path, raw: str, expected: bool) -> None:
    result = embedsql.run(QUERY, db=db, dry_run=raw)

    assert result.status == ("dry-run" if expected else "complete")


def test_numbers_as_text_are_read_as_numbers(db: Path) -> None:
    result = embedsql.run(QUERY, db=db, max_shard_lines="10", lock_wait="5", dry_run=True)

    assert result.shards == 3  # 30 texts, 10 lines a shard


def test_a_key_given_as_one_string_is_one_column(db: Path) -> None:
    con = embedsql.connect(db)
    con.execute("CREATE TABLE pairs AS SELECT id AS a, id AS ab, body FROM docs")
    con.close()

    result = embedsql.run("select a, ab, body from pairs", db=db, key="ab", text="body", into="t")
    keys = embedsql.sql("select column_name from duckdb_columns() where table_name = 't' order by 1", db=db)

    assert result.status == "complete"
    assert re.fullmatch(r"\['ab', 'embedding'\]", str(keys["column_name"].to_pylist()))


def test_search_takes_k_as_text_like_the_command_line(db: Path) -> None:
    embedsql.run(QUERY, db=db)

    hits = embedsql.search("alpha", table="docs_embeddings", db=db, k="4")

    assert hits.num_rows == 4
