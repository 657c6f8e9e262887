"""Fixtures shared by the tests: a clean environment, real DuckDB files, the local model."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pytest

from embedsql.local_model import LocalModel, load_local_model

from fake_openai import FakeOpenAI
from helpers import REPO, FakeTime


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer's key, .env, config file or dbt setting leaks in: clean variables, work in tmp_path."""
    for var in list(os.environ):
        if var.startswith(("OPENAI_", "EMBEDSQL_", "DBT_")):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def movies_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example warehouse, built once per session from the repository's own script."""
    db = tmp_path_factory.mktemp("template") / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    try:
        con.execute("SET file_search_path = ?", [str(REPO)])
        con.execute((REPO / "sql" / "warehouse.sql").read_text(encoding="utf-8"))
    finally:
        con.close()
    return db


@pytest.fixture
def movies_db(movies_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the example warehouse in this test's directory."""
    db = tmp_path / "warehouse.duckdb"
    shutil.copyfile(movies_template, db)
    return db


@pytest.fixture(scope="session")
def model() -> LocalModel:
    """The bundled offline model, loaded once."""
    return load_local_model()


@pytest.fixture(scope="session")
def genre_vectors(movies_template: Path, model: LocalModel) -> dict[str, np.ndarray]:
    """The vector of every distinct genre string, each embedded on its own."""
    con = duckdb.connect(str(movies_template), read_only=True)
    try:
        genres = [row[0] for row in con.execute("SELECT DISTINCT genres FROM movies ORDER BY 1").fetchall()]
    finally:
        con.close()
    return {genre: model.embed([genre])[0] for genre in genres}


@pytest.fixture
def openai_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """The local OpenAI API, with OPENAI_API_KEY and OPENAI_BASE_URL pointing at it."""
    with FakeOpenAI() as server:
        monkeypatch.setenv("OPENAI_API_KEY", server.api_key)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        yield server


@pytest.fixture
def fake_time(openai_server: FakeOpenAI) -> FakeTime:
    """``sleep`` and ``clock`` that run embedsql on the local server's clock: ``embedsql.run(..., **fake_time)``.

    Each sleep moves the server's clock on, so a job waits out a 24-hour batch at once.
    """
    return {"sleep": openai_server.advance, "clock": openai_server.now}
