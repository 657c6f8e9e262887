"""Hostile servers and hostile keys: each fault named, each outcome asserted exactly."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

import embedsql
from embedsql.cli import cli

from fake_openai import FakeOpenAI, expected_vector, mask_key
from helpers import FakeTime, fetch, texts_table

MODEL = "text-embedding-3-small"
QUERY = "select id, body from docs"


def docs(path: Path, n: int = 30) -> dict[int, str]:
    texts = {i: f"fault test text {i} {'x' * (i % 5)}" for i in range(n)}
    texts_table(path, texts)
    return texts


def run(server: FakeOpenAI, db: Path, **settings: object) -> embedsql.RunResult:
    return embedsql.run(QUERY, db=db, sleep=server.advance, clock=server.now, max_shard_lines=10, **settings)


def assert_exact(db: Path, texts: dict[int, str]) -> None:
    rows = fetch(db, "SELECT id, embedding FROM docs_embeddings ORDER BY id")
    assert [k for k, _ in rows] == sorted(texts)
    for key, vector in rows:
        np.testing.assert_array_equal(np.array(vector, np.float32), expected_vector(MODEL, texts[key], 1536))


ENDPOINTS = [
    ("POST", r"^/v1/files$"),
    ("GET", r"^/v1/files/[^/]+$"),  # waiting for an upload to be processed
    ("POST", r"^/v1/batches$"),
    ("GET", r"^/v1/batches/[^/]+$"),
    ("GET", r"^/v1/files/[^/]+/content$"),
]


@pytest.mark.parametrize("status", [429, 500, 503])
@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
def test_bursts_of_429_and_5xx_on_every_endpoint(
    tmp_path: Path, openai_server: FakeOpenAI, method: str, path: str, status: int
) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db)
    openai_server.file_processing_seconds = 1
    openai_server.fail_requests(method, path, status, times=3, retry_after=0.01)

    result = run(openai_server, db)

    assert result.target_rows == 30
    assert [r[2] for r in openai_server.requests if r[0] == method and re.search(path, r[1])][:3] == [status] * 3
    assert openai_server.batches_created == 3  # one per shard: a failed create was looked up, not repeated
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert_exact(db, texts)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
def test_a_connection_dropped_mid_request(tmp_path: Path, openai_server: FakeOpenAI, method: str, path: str) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db)
    openai_server.file_processing_seconds = 1
    openai_server.drop_connections(method, path, times=1)

    result = run(openai_server, db)

    assert result.target_rows == 30
    assert (method, 0) in {(r[0], r[2]) for r in openai_server.requests}
    assert openai_server.batches_created == 3
    assert_exact(db, texts)


def test_a_create_answered_after_the_client_timeout_is_adopted(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db)
    openai_server.delay_responses("POST", r"^/v1/batches$", 1.0, times=1)  # created, but answered too late

    result = run(openai_server, db, openai_timeout=0.3)

    assert result.target_rows == 30
    assert openai_server.batches_created == 3  # the slow create's batch was found and adopted
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert_exact(db, texts)


def test_slow_polls_past_the_client_timeout_are_retried(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db)
    openai_server.delay_responses("GET", r"^/v1/batches/[^/]+$", 1.0, times=1)

    result = run(openai_server, db, openai_timeout=0.3)

    assert result.target_rows == 30
    assert_exact(db, texts)


def test_a_batch_stuck_in_finalizing_is_waited_for_with_backoff(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db, n=10)
    openai_server.finalizing_seconds = 4 * 3600

    result = run(openai_server, db, poll_interval=5, max_poll_interval=120)

    polls = [r for r in openai_server.requests if r[0] == "GET" and r[1].startswith("/v1/batches/")]
    assert result.target_rows == 10
    assert 4 * 3600 / 120 <= len(polls) <= 4 * 3600 / 120 + 15  # backed off to one poll every 2 minutes
    assert_exact(db, texts)


def test_an_output_file_with_a_malformed_line(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db, n=10)
    openai_server.corrupt_output(times=1, line=4)

    result = run(openai_server, db)

    assert result.target_rows == 10
    assert openai_server.batches_created == 2  # the damaged line's request was sent again
    billed = openai_server.inputs_by_text
    assert sorted(billed.values()) == [1] * 9 + [2]  # the server billed the damaged line; nothing else twice
    assert fetch(db, "SELECT code FROM embedsql.errors") == [("missing",)]
    assert_exact(db, texts)


def test_a_rate_limited_key(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "d.duckdb"
    docs(db, n=3)
    openai_server.fail_requests("POST", r"^/v1/files$", 429, times=10, retry_after=0.01)

    result = CliRunner().invoke(cli, ["run", QUERY, "--db", str(db)], env={"EMBEDSQL_OPENAI_MAX_RETRIES": "2"})

    assert result.exit_code == 1
    job_id = fetch(db, "SELECT job_id FROM embedsql.jobs WHERE status = 'prepared'")[0][0]
    assert result.stderr.splitlines()[-1] == (
        f"Error: OpenAI kept answering 429 (rate limit) while trying to upload the shard at {openai_server.base_url}: "
        "Rate limit reached for "
        "requests. Please try again in 1s. Wait a while before going on. Job "
        f"{job_id} keeps its place: continue it with `embedsql resume {job_id}`."
    )
    assert sum(1 for r in openai_server.requests if r[:2] == ("POST", "/v1/files")) == 3  # 1 + 2 retries


def test_a_base_url_that_does_not_answer(tmp_path: Path) -> None:
    db = tmp_path / "d.duckdb"
    docs(db, n=3)
    env = {
        "OPENAI_API_KEY": "sk-test-unanswered-1234",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "EMBEDSQL_OPENAI_MAX_RETRIES": "0",
    }

    result = CliRunner().invoke(cli, ["run", QUERY, "--db", str(db)], env=env)

    assert result.exit_code == 1
    job_id = fetch(db, "SELECT job_id FROM embedsql.jobs")[0][0]
    assert result.stderr.splitlines()[-1] == (
        "Error: could not reach the OpenAI API at http://127.0.0.1:9/v1 to upload the shard (APIConnectionError). "
        f"Check the network and OPENAI_BASE_URL. Job {job_id} keeps its place: continue it with "
        f"`embedsql resume {job_id}`."
    )


@pytest.mark.parametrize("command", ["run", "search"])
def test_a_base_url_that_is_no_address_stops_the_command_before_anything_is_written(
    tmp_path: Path, command: str
) -> None:
    db = tmp_path / "d.duckdb"
    docs(db, n=3)
    before = fetch(db, "SELECT table_name FROM duckdb_tables() ORDER BY 1")
    args = [QUERY] if command == "run" else ["cats", "--table", "docs_embeddings"]

    result = CliRunner().invoke(
        cli,
        [command, *args, "--db", str(db)],
        env={"OPENAI_API_KEY": "sk-test-no-address-1234", "OPENAI_BASE_URL": "http://[::1/v1"},
    )

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: openai_base_url must be the API's address, like http://localhost:8000/v1; got 'http://[::1/v1' "
        "(from environment): Invalid IPv6 URL. Fix --base-url / OPENAI_BASE_URL.\n"
    )
    assert fetch(db, "SELECT table_name FROM duckdb_tables() ORDER BY 1") == before


@pytest.mark.parametrize("key", ["sk-test abc", "sk-test-abc\n", "sk-tést-abc", " sk-test-abc"])
def test_a_malformed_key(tmp_path: Path, key: str) -> None:
    db = tmp_path / "d.duckdb"
    docs(db, n=3)

    result = CliRunner().invoke(cli, ["run", QUERY, "--db", str(db)], env={"OPENAI_API_KEY": key})

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: OPENAI_API_KEY (from environment) is malformed: it holds spaces, line breaks or non-ASCII "
        "characters. Copy the key again from the OpenAI dashboard.\n"
    )
    assert "abc" not in result.stderr


@pytest.mark.parametrize("runner", ["batch", "sync"])
def test_the_key_never_appears_anywhere(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, runner: str
) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db, n=12)
    key = openai_server.api_key
    outputs = []
    env = {"EMBEDSQL_POLL_INTERVAL": "0", "EMBEDSQL_KEEP_FILES": "true", "EMBEDSQL_RUNNER": runner}
    outputs.append(CliRunner().invoke(cli, ["run", QUERY, "--db", str(db), "--dry-run"], env=env).output)
    openai_server.fail_lines([texts[3]], status=400, code="invalid_input", message="Bad input.", times=5)
    outputs.append(CliRunner().invoke(cli, ["run", QUERY, "--db", str(db)], env=env).output)  # fails a line
    outputs.append(CliRunner().invoke(cli, ["config"]).output)
    outputs.append(CliRunner().invoke(cli, ["status", "--db", str(db)]).output)
    wrong = "sk-test-WRONGkeyWRONGkey9876"
    outputs.append(
        CliRunner()
        .invoke(cli, ["run", QUERY, "--db", str(db), "--into", "x"], env={**env, "OPENAI_API_KEY": wrong})
        .output
    )
    errors = []
    for attempt_key in (wrong, key):
        try:
            embedsql.run(
                QUERY,
                db=db,
                into="y",
                openai_api_key=attempt_key,
                openai_max_retries=0,
                runner=runner,
                **fake_time,
            )
        except embedsql.EmbedsqlError as e:
            errors.append(f"{e!r} {e}")

    secrets = {s for k in (key, wrong) for s in (k, mask_key(k), k[-8:], k[3:15])}
    texts_out = "\n".join(outputs + errors)
    assert not [s for s in secrets if s in texts_out]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".jsonl" for p in files)
    assert db in files
    for path in files:
        content = path.read_bytes()
        assert not [s for s in secrets if s.encode() in content], path
    con = duckdb.connect(str(db), read_only=True)
    columns = con.execute(
        "SELECT schema_name, table_name, column_name FROM duckdb_columns() WHERE data_type = 'VARCHAR'"
    ).fetchall()
    for schema, table, column in columns:
        hits = con.execute(
            f'SELECT count(*) FROM "{schema}"."{table}" WHERE '
            + " OR ".join(f'contains("{column}", ?)' for _ in secrets),
            list(secrets),
        ).fetchall()[0][0]
        assert hits == 0, (schema, table, column)
    con.close()
