"""Small helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from embedsql.config import ENV_VARS, Settings, load_settings
from embedsql.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
# The `fake_time` fixture: the `sleep` and `clock` keyword arguments of embedsql.run and resume.
FakeTime = dict[str, Callable[..., Any]]


def isolate(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """No developer's key, .env, config file or dbt setting leaks in: clean variables, work in ``directory``."""
    for var in list(os.environ):
        if var.startswith(("OPENAI_", "EMBEDSQL_", "DBT_")):
            monkeypatch.delenv(var)
    monkeypatch.chdir(directory)


@contextlib.contextmanager
def isolated(directory: Path) -> Iterator[None]:
    """``isolate`` for the block: what a module- or session-scoped template fixture runs embedsql in."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, directory)
        yield


def copy_db(template: Path, directory: Path) -> Path:
    """A copy of the database file ``template`` in ``directory``, under its name (which is its catalog's).

    Templates are built once per module or session and copied for each test, which then owns its copy.
    """
    return Path(shutil.copyfile(template, directory / template.name))


def make_db(path: Path, sql: str) -> Path:
    """A DuckDB file at ``path`` made by running ``sql``."""
    con = duckdb.connect(str(path))
    try:
        con.execute(sql)
    finally:
        con.close()
    return path


def fetch(db: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows of ``sql`` from the database file ``db`` (opened read-only, then closed)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def texts_table(path: Path, texts: dict[int, str], *, table: str = "docs") -> Path:
    """A DuckDB file at ``path`` holding ``table(id INTEGER, body VARCHAR)`` with ``texts``.

    Goes through Arrow, so any Unicode string arrives exactly as it is.
    """
    import pyarrow as pa

    con = duckdb.connect(str(path))
    try:
        con.register("incoming", pa.table({"id": pa.array(list(texts), pa.int32()), "body": list(texts.values())}))
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM incoming")
    finally:
        con.close()
    return path


def vectors_by_key(db: Path, table: str, key: str = "id") -> dict[object, Any]:
    """``{key: vector as a float32 numpy array}`` of a target table."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        arrow = con.sql(f"SELECT {key} AS k, embedding FROM {table}").to_arrow_table()
    finally:
        con.close()
    keys = arrow["k"].to_pylist()
    flat = arrow["embedding"].combine_chunks().flatten().to_numpy()
    return dict(zip(keys, flat.reshape(len(keys), -1), strict=True))


# Settings (tests/test_config_*.py)

DEFAULT_SOURCES = {**dict.fromkeys(ENV_VARS, "default"), "prices": "default"}
SECRET_REFUSED = (
    "{label} sets {key!r}: secrets do not belong in a file that is usually committed. "
    "Set OPENAI_API_KEY in the environment or in .env instead."
)


def load(cwd: Path, environ: dict[str, str] | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """``load_settings`` with only the environment given (none by default) and ``cwd`` as the directory."""
    return load_settings(overrides, environ={} if environ is None else environ, cwd=cwd)


def write(path: Path, text: str) -> None:
    """Write ``text``, dedented, as a file."""
    path.write_text(textwrap.dedent(text).strip() + "\n", encoding="utf-8")


def raises_exactly(message: str) -> pytest.RaisesExc[ConfigError]:
    """Expect a ConfigError whose message is exactly ``message``."""
    return pytest.raises(ConfigError, match=f"^{re.escape(message)}$")


def sources_with(**changed: str) -> dict[str, str]:
    """The ``sources`` of settings where only ``changed`` did not come from the default."""
    return {**DEFAULT_SOURCES, **changed}
