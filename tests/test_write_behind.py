"""A transaction that writes much to the database file has the system write its pages as they come
(``ledger.transaction(write_behind=...)``): the commit waits on less. What it must never do is change
what is committed or rolled back, or outlive its transaction."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import duckdb
import pytest

from embedsql import ledger

from helpers import fetch

pytestmark = pytest.mark.skipif(not hasattr(os, "fdatasync"), reason="the system has no fdatasync")


def _flushers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "embedsql-write-behind"]


@pytest.fixture
def flushed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files ``os.fdatasync`` was called on (then called), flushing every 10 ms."""
    monkeypatch.setattr(ledger, "FLUSH_EVERY", 0.01)
    files: list[str] = []
    sync = os.fdatasync

    def noted(fd: int) -> None:
        files.append(os.readlink(f"/proc/self/fd/{fd}"))
        sync(fd)

    monkeypatch.setattr(os, "fdatasync", noted)
    return files


def _until(condition: object, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def test_the_file_is_flushed_while_the_transaction_runs_and_the_flushing_ends_with_it(
    tmp_path: Path, flushed: list[str]
) -> None:
    db = tmp_path / "d.duckdb"
    duckdb.connect(str(db)).close()
    con = ledger.connect(db)
    try:
        with ledger.transaction(con, write_behind=db):
            con.execute("CREATE TABLE t AS SELECT range AS i, repeat('x', 100) AS s FROM range(200000)")
            _until(lambda: flushed)
            assert len(_flushers()) == 1
            assert flushed  # before the commit
        assert _flushers() == []
    finally:
        con.close()

    assert set(flushed) == {str(db.resolve())}
    assert fetch(db, "SELECT count(*), sum(i) FROM t") == [(200000, 199999 * 200000 // 2)]


def test_a_transaction_that_fails_is_rolled_back_and_stops_flushing(tmp_path: Path, flushed: list[str]) -> None:
    db = tmp_path / "d.duckdb"
    duckdb.connect(str(db)).close()
    con = ledger.connect(db)
    try:

        def fail() -> None:
            with ledger.transaction(con, write_behind=db):
                con.execute("CREATE TABLE t AS SELECT range AS i FROM range(100000)")
                _until(lambda: flushed)
                raise RuntimeError("the block failed")

        with pytest.raises(RuntimeError, match=r"^the block failed$"):
            fail()
        assert flushed
        assert _flushers() == []
    finally:
        con.close()

    assert fetch(db, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 't'") == [(0,)]


def test_a_short_transaction_never_opens_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "d.duckdb"
    duckdb.connect(str(db)).close()
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, *a, **k: (opened.append(str(path)), real_open(path, *a, **k))[1])
    con = ledger.connect(db)
    try:
        with ledger.transaction(con, write_behind=db):
            con.execute("CREATE TABLE t (i INTEGER)")
        assert _flushers() == []
    finally:
        con.close()

    assert str(db) not in opened
