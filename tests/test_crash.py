"""kill -9 at every step of the protocol, then resume: the exact table, each text paid for once.

Each case runs `embedsql run` as a real subprocess with EMBEDSQL_FAILPOINT naming the step at which
it kills itself with SIGKILL, then finishes the job with `embedsql resume JOB` or by running the
same command again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

from embedsql.cli import cli
from embedsql.failpoints import POINTS

from fake_openai import FakeOpenAI, expected_vector
from helpers import fetch, texts_table

QUERY = "select id, body from docs"
# (failpoint, which occurrence): the second occurrence leaves earlier shards done, later ones not.
BATCH_POINTS = [
    ("shard-write", 2),
    ("after-upload", 2),
    ("after-create", 2),
    ("poll", 2),
    ("download", 2),
    ("load", 2),
    ("materialise", 1),
]
LOCAL_POINTS = [("shard-write", 1), ("local-embed", 2), ("computed", 2), ("load", 2), ("materialise", 1)]


# Interrupted there in tests/test_map.py.
MAP_POINTS = ["map-layout", "map-place"]


def test_every_failpoint_is_exercised() -> None:
    assert {p for p, _ in BATCH_POINTS} | {p for p, _ in LOCAL_POINTS} | set(MAP_POINTS) == set(POINTS)


def docs(path: Path, n: int = 30) -> dict[int, str]:
    texts = {i: f"text {i}: {'alpha beta' if i % 3 else 'gamma'} {i * 7}" for i in range(n)}
    texts_table(path, texts)
    return texts


def killed_run(db: Path, failpoint: str, extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **extra_env,
        "EMBEDSQL_FAILPOINT": failpoint,
        "EMBEDSQL_MAX_SHARD_LINES": "10",
        "EMBEDSQL_POLL_INTERVAL": "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "embedsql.cli", "run", QUERY, "--db", str(db)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def finish(db: Path, how: str) -> None:
    env = {"EMBEDSQL_MAX_SHARD_LINES": "10", "EMBEDSQL_POLL_INTERVAL": "0"}
    jobs = fetch(db, "SELECT job_id FROM embedsql.jobs WHERE status = 'prepared'") if db.exists() else []
    if how == "resume" and jobs:
        result = CliRunner().invoke(cli, ["resume", str(jobs[0][0]), "--db", str(db)], env=env)
    else:
        result = CliRunner().invoke(cli, ["run", QUERY, "--db", str(db)], env=env)
    assert result.exit_code == 0, result.output


def assert_nothing_left(tmp_path: Path, db: Path) -> None:
    assert fetch(db, "SELECT status, count(*) FROM embedsql.jobs GROUP BY 1") == [("complete", 1)]
    leftovers = [p for p in (tmp_path / ".embedsql").rglob("*")] if (tmp_path / ".embedsql").exists() else []
    assert leftovers == []


@pytest.mark.parametrize("how", ["resume", "rerun"])
@pytest.mark.parametrize(("point", "nth"), BATCH_POINTS, ids=[p for p, _ in BATCH_POINTS])
def test_batch_job_killed_then_finished(
    tmp_path: Path, openai_server: FakeOpenAI, point: str, nth: int, how: str
) -> None:
    db = tmp_path / "w.duckdb"
    texts = docs(db)

    killed = killed_run(db, f"{point}:{nth}", {})

    assert killed.returncode == -9, killed.stderr
    finish(db, how)

    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT id, embedding FROM docs_embeddings ORDER BY id").fetchall()
    con.close()
    assert [k for k, _ in rows] == list(range(30))
    for key, vector in rows:
        np.testing.assert_array_equal(
            np.array(vector, np.float32), expected_vector("text-embedding-3-small", texts[key], 1536)
        )
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    per_shard = Counter(
        (b["metadata"]["embedsql_job"], b["metadata"]["embedsql_shard"]) for b in openai_server.batches.values()
    )
    assert set(per_shard.values()) == {1}, per_shard  # no shard was ever submitted twice
    assert all(b["status"] == "completed" for b in openai_server.batches.values())
    uploads = Counter(f["filename"] for f in openai_server.files.values() if f["purpose"] == "batch")
    assert set(uploads.values()) == {1}, uploads  # no file uploaded twice, none left behind unused
    assert_nothing_left(tmp_path, db)


@pytest.mark.parametrize("how", ["resume", "rerun"])
@pytest.mark.parametrize(("point", "nth"), LOCAL_POINTS, ids=[p for p, _ in LOCAL_POINTS])
def test_local_job_killed_then_finished(
    tmp_path: Path, alone: dict[str, np.ndarray], point: str, nth: int, how: str
) -> None:
    db = tmp_path / "w.duckdb"
    texts = docs(db)

    killed = killed_run(db, f"{point}:{nth}", {})

    assert killed.returncode == -9, killed.stderr
    finish(db, how)

    rows = fetch(db, "SELECT id, embedding FROM docs_embeddings ORDER BY id")
    assert [k for k, _ in rows] == list(range(30))
    for key, vector in rows:
        np.testing.assert_array_equal(np.array(vector, np.float32), alone[texts[key]])  # type: ignore[index]
    assert_nothing_left(tmp_path, db)
