"""Fixtures shared by the tests: a clean environment, real DuckDB files, the local model."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pytest
from hypothesis import settings

from embedsql import failpoints
from embedsql.local_model import LocalModel, load_local_model

from fake_openai import FakeOpenAI
from helpers import REPO, FakeTime, copy_db, isolate

# No hypothesis example may fail for taking long: the suite holds on a busy machine.
settings.register_profile("embedsql", deadline=None)
settings.load_profile("embedsql")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer's key, .env, config file or dbt setting leaks in: clean variables, work in tmp_path.

    Failpoints count from zero in every test: a test that sets EMBEDSQL_FAILPOINT=name:2 in this
    process means the second time this test reaches the point, whatever ran before it here."""
    isolate(monkeypatch, tmp_path)
    monkeypatch.setattr(failpoints, "_hits", Counter())


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
    return copy_db(movies_template, tmp_path)


@pytest.fixture(scope="session")
def model() -> LocalModel:
    """The bundled offline model, loaded once."""
    return load_local_model()


class EachOnItsOwn(dict[str, np.ndarray]):
    """Texts' vectors, each embedded on its own, the first time a test looks it up."""

    def __init__(self, model: LocalModel) -> None:
        super().__init__()
        self.model = model

    def __missing__(self, text: str) -> np.ndarray:
        vector: np.ndarray = self.model.embed([text])[0]
        self[text] = vector
        return vector


@pytest.fixture(scope="session")
def alone(model: LocalModel) -> dict[str, np.ndarray]:
    """``alone[text]``: the vector of ``text`` embedded on its own, what a job's vector of it must equal.

    Computed once per text and session: many tests check the same texts, and embedding a text on its
    own costs ~10 ms of CPU."""
    return EachOnItsOwn(model)


@pytest.fixture(scope="session")
def genre_vectors(alone: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The vector of each genre string, embedded on its own (most tests look up a few of the 1,639)."""
    return alone


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
