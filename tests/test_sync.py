"""The sync runner: /v1/embeddings of OpenAI or any compatible server, through the real SDK."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from click.testing import CliRunner

import embedsql
from embedsql.cli import cli
from embedsql.runners.openai import RateLimits
from embedsql.runners.sync import _RateGate

from fake_openai import FakeOpenAI, expected_vector
from helpers import fetch, texts_table, vectors_by_key

MODEL = "text-embedding-3-small"
QUERY = "select id, body from docs"


def docs(path: Path, n: int = 40) -> dict[int, str]:
    texts = {i: f"sync text {i} {'abc' * (i % 4)}" for i in range(n)}
    texts_table(path, texts)
    return texts


def embedding_requests(server: FakeOpenAI) -> list[int]:
    return [status for method, path, status in server.requests if (method, path) == ("POST", "/v1/embeddings")]


def assert_exact(db: Path, texts: dict[int, str], model: str = MODEL, dimensions: int = 1536) -> None:
    vectors = vectors_by_key(db, "docs_embeddings")
    assert sorted(vectors) == sorted(texts)  # type: ignore[type-var]
    for key, vector in vectors.items():
        np.testing.assert_array_equal(vector, expected_vector(model, texts[key], dimensions))  # type: ignore[index]


def run(server: FakeOpenAI, db: Path, **settings: object) -> embedsql.RunResult:
    return embedsql.run(QUERY, db=db, runner="sync", sleep=server.advance, clock=server.now, **settings)


def test_sync_runner_end_to_end(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db)

    result = run(openai_server, db, max_inputs_per_request=7)

    assert (result.target_rows, result.embedded_texts, result.failed_texts) == (40, 40, 0)
    assert embedding_requests(openai_server) == [200] * 6  # 40 inputs, 7 a request
    assert openai_server.batches_created == 0
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert fetch(db, "SELECT runner FROM embedsql.jobs") == [("sync",)]
    assert_exact(db, texts)


def test_429_and_5xx_are_retried_as_the_server_asks(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db)
    openai_server.fail_requests("POST", r"^/v1/embeddings$", 429, times=3, retry_after=20)
    openai_server.fail_requests("POST", r"^/v1/embeddings$", 503, times=2)
    started = openai_server.now()

    result = run(openai_server, db, max_inputs_per_request=10, concurrency=1)

    statuses = embedding_requests(openai_server)
    assert statuses == [429, 429, 429, 503, 503, 200, 200, 200, 200]
    assert openai_server.now() - started >= 3 * 20  # waited as long as retry-after said, each time
    assert result.target_rows == 40
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert_exact(db, texts)


def test_a_refused_request_is_split_until_the_refused_texts_are_found(
    tmp_path: Path, openai_server: FakeOpenAI
) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db)
    openai_server.fail_requests("POST", r"^/v1/embeddings$", 400, times=1)

    result = CliRunner().invoke(
        cli, ["run", QUERY, "--db", str(db), "--runner", "sync", "--max-inputs-per-request", "10", "--concurrency", "1"]
    )

    assert result.exit_code == 0, result.output
    # The first request of 10 refused, its halves of 5 sent and taken; no text was to blame.
    assert embedding_requests(openai_server) == [400, 200, 200, 200, 200, 200]
    assert fetch(db, "SELECT count(*) FROM embedsql.errors") == [(0,)]
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert_exact(db, texts)


def test_a_model_openai_does_not_have_on_a_compatible_server(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db, n=12)
    openai_server.models["nomic-embed-text"] = 768

    result = CliRunner().invoke(
        cli,
        [
            "run",
            QUERY,
            "--db",
            str(db),
            "--runner",
            "sync",
            "--model",
            "nomic-embed-text",
            "--base-url",
            openai_server.base_url,
        ],
    )

    assert result.exit_code == 0, result.output
    assert "Model nomic-embed-text answers with 768-d vectors.\n" in result.stderr
    assert fetch(
        db,
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'docs_embeddings' "
        "AND column_name = 'embedding'",
    ) == [("FLOAT[768]",)]
    assert fetch(db, "SELECT model, dimensions FROM embedsql.targets") == [("nomic-embed-text", 768)]
    assert_exact(db, texts, model="nomic-embed-text", dimensions=768)


def test_runner_and_model_must_fit(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "d.duckdb"
    docs(db, n=3)

    local = CliRunner().invoke(cli, ["run", QUERY, "--db", str(db), "--runner", "local", "--model", MODEL])
    batch = CliRunner().invoke(cli, ["run", QUERY, "--db", str(db), "--runner", "batch", "--model", "all-MiniLM-L6-v2"])

    assert local.stderr.splitlines()[-1] + "\n" == (
        "Error: the local runner cannot run model text-embedding-3-small: it runs only all-MiniLM-L6-v2. "
        "Fix --runner / EMBEDSQL_RUNNER or --model.\n"
    )
    assert batch.stderr.endswith(
        "Error: model all-MiniLM-L6-v2 is not an OpenAI model, so the Batch API cannot run it; use --runner "
        "local, or --runner sync with --base-url pointing at its server.\n"
    )


def test_a_killed_sync_job_resumes_without_sending_texts_again(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db)
    env = {**os.environ, "EMBEDSQL_FAILPOINT": "load:2", "EMBEDSQL_MAX_SHARD_LINES": "10", "EMBEDSQL_RUNNER": "sync"}

    killed = subprocess.run(
        [sys.executable, "-m", "embedsql.cli", "run", QUERY, "--db", str(db)], env=env, capture_output=True, text=True
    )

    assert killed.returncode == -9, killed.stderr
    job_id = fetch(db, "SELECT job_id FROM embedsql.jobs")[0][0]
    resumed = CliRunner().invoke(cli, ["resume", str(job_id), "--db", str(db)])

    assert resumed.exit_code == 0, resumed.output
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert_exact(db, texts)


def test_ctrl_c_during_a_sync_job_keeps_the_vectors_received(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db)
    env = {
        **os.environ,
        "EMBEDSQL_FAILPOINT": "computed:2:int",
        "EMBEDSQL_MAX_SHARD_LINES": "10",
        "EMBEDSQL_RUNNER": "sync",
    }

    stopped = subprocess.run(
        [sys.executable, "-m", "embedsql.cli", "run", QUERY, "--db", str(db)], env=env, capture_output=True, text=True
    )

    job_id = fetch(db, "SELECT job_id FROM embedsql.jobs")[0][0]
    assert (stopped.returncode, stopped.stdout) == (130, "")
    assert stopped.stderr.endswith(
        f"Detached from job {job_id}. The shards the server finished are kept; resuming requests only the rest "
        "(the shard under way again).\n"
        f"Continue with: embedsql resume {job_id}\n"
    ), stopped.stderr
    assert sum(openai_server.inputs_by_text.values()) == 20  # two shards of 10 texts received when Ctrl-C came
    resumed = CliRunner().invoke(cli, ["resume", str(job_id), "--db", str(db)])

    assert resumed.exit_code == 0, resumed.output
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert_exact(db, texts)


def test_a_tokens_per_minute_limit_is_respected_not_run_into(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db, n=60)
    openai_server.tokens_per_minute = 400
    started = openai_server.now()

    result = run(openai_server, db, max_inputs_per_request=10, concurrency=1)

    served = openai_server.embedding_requests
    tokens = sum(t for _, _, t in served)
    elapsed = openai_server.now() - started
    assert result.target_rows == 60
    assert openai_server.rate_limited == 0  # paced by the headers: never refused
    # Past the first full bucket, tokens arrive no faster than the limit allows, and not much slower.
    allowed = 400 + 400 * elapsed / 60
    assert tokens <= allowed
    assert tokens >= 0.9 * (allowed - 400) + 1
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert_exact(db, texts)


def test_concurrent_requests_share_the_limit(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db, n=80)
    openai_server.tokens_per_minute = 300

    result = run(openai_server, db, max_inputs_per_request=5, concurrency=4)

    assert result.target_rows == 80
    # The threads share what the headers say is left. (How fast they go is measured with one thread,
    # above: here every thread's sleep advances the one fake clock, so sleeps add up.)
    assert openai_server.rate_limited == 0
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert_exact(db, texts)


def test_an_answer_overtaken_by_a_later_one_does_not_raise_the_estimate() -> None:
    # Requests A then B were admitted by the server in that order, but B's answer arrived first: A's
    # headers say more is left than B's, and must not undo what B reported.
    now = [0.0]
    gate = _RateGate(lambda: now[0])
    gate.wait_for(100)  # A
    gate.wait_for(50)  # B
    gate.update(RateLimits(limit_tokens=600, remaining_tokens=450), 50)  # B's answer: A and B spent
    gate.update(RateLimits(limit_tokens=600, remaining_tokens=500), 100)  # A's answer: only A spent

    assert gate.wait_for(450) == 0.0  # what B reported is left, all of it
    assert gate.wait_for(1) == 0.1  # nothing more: a token refills in 0.1 s at 600 a minute


def test_search_a_table_of_a_compatible_servers_model(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db, n=12)
    openai_server.models["nomic-embed-text"] = 768
    run(openai_server, db, model="nomic-embed-text")

    hits = embedsql.search(texts[5], table="docs_embeddings", k=1, db=db)

    assert hits["id"].to_pylist() == [5]
    assert openai_server.inputs_by_text[texts[5]] == 1  # the query text was in the cache already
