"""Helpers of the hostile-environment tests: a small database, its full contents, a CLI process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pytest

from embedsql.local_model import load_local_model

from helpers import fetch, texts_table, vectors_by_key

QUERY = "select id, body from docs"
TEXTS = {i: f"text {i}: {'alpha beta' if i % 3 else 'gamma'} {i * 7}" for i in range(30)}
# Ten request lines a shard: the 30 texts make three shards, so a job can stop between two of them.
SMALL_SHARDS = {"EMBEDSQL_MAX_SHARD_LINES": "10"}


def docs_db(path: Path) -> Path:
    """A database holding ``docs(id, body)`` with ``TEXTS``."""
    return texts_table(path, TEXTS)


def contents(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of the user's (outside schema ``embedsql``), sorted: to compare whole."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name <> 'embedsql' ORDER BY ALL"
        ).fetchall()
        return {
            f"{schema}.{table}": sorted(con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall(), key=repr)
            for schema, table in names
        }
    finally:
        con.close()


def embedsql_process(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``embedsql ARGS`` as a real process in ``cwd`` (for failpoints that kill or interrupt it)."""
    return subprocess.run(
        [sys.executable, "-m", "embedsql.cli", *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def model_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The texts of each call of this process's local model from now on (the local runner calls it once
    per shard it computes): a job finished in this process shows which shards it computed again."""
    model = load_local_model()
    embed = model.embed
    calls: list[int] = []

    def counted(texts: Sequence[str]) -> np.ndarray:
        calls.append(len(texts))
        return embed(texts)

    monkeypatch.setattr(model, "embed", counted)
    return calls


def job_ids(db: Path, status: str = "prepared") -> list[str]:
    """The jobs of ``db`` in ``status``."""
    return [str(r[0]) for r in fetch(db, f"SELECT job_id FROM embedsql.jobs WHERE status = '{status}' ORDER BY 1")]


def assert_embedded_once_each(db: Path, alone: Mapping[str, np.ndarray], table: str = "docs_embeddings") -> None:
    """``table`` holds exactly the vector of each text of ``TEXTS``, as embedded on its own (``alone``)."""
    vectors = vectors_by_key(db, table)
    assert sorted(vectors) == sorted(TEXTS)
    for key, vector in vectors.items():
        np.testing.assert_array_equal(vector, alone[TEXTS[key]])  # type: ignore[index]


def leftovers(root: Path) -> list[Path]:
    """Files left in the work folders under ``root``."""
    work = root / ".embedsql"
    return sorted(p for p in work.rglob("*") if p.is_file()) if work.exists() else []
