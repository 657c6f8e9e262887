"""The OpenAI Batch runner, through the real SDK against the local OpenAI server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import embedsql
from embedsql.cli import cli

from fake_openai import FakeOpenAI, expected_vector, mask_key, token_count
from helpers import FakeTime, fetch, make_db, texts_table, vectors_by_key

MODEL = "text-embedding-3-small"
Q = "select movieId, genres from movies"


def assert_exact_table(db: Path, table: str, texts: dict[object, str], key: str, dimensions: int = 1536) -> None:
    """Every key has exactly the server's vector of its own text."""
    vectors = vectors_by_key(db, table, key)
    assert sorted(vectors) == sorted(texts)  # type: ignore[type-var]
    cache: dict[str, np.ndarray] = {}
    for k, vector in vectors.items():
        text = texts[k]
        if text not in cache:
            cache[text] = expected_vector(MODEL, text, dimensions)
        np.testing.assert_array_equal(vector, cache[text])


def small_db(path: Path, n: int = 40) -> tuple[Path, dict[int, str]]:
    texts = {i: f"document number {i} about {'cats' if i % 2 else 'dogs'}" for i in range(n)}
    return texts_table(path, texts), texts


def test_movies_end_to_end_each_distinct_text_embedded_once(
    movies_db: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    openai_server.validating_seconds = 30
    openai_server.in_progress_seconds = 600
    openai_server.finalizing_seconds = 60
    events: list[object] = []

    result = embedsql.run(Q, **fake_time, on_event=events.append)

    genres = dict(fetch(movies_db, "SELECT movieId, genres FROM movies"))
    assert (result.status, result.model, result.dimensions, result.target_rows) == ("complete", MODEL, 1536, 62_423)
    assert (result.distinct_texts, result.embedded_texts, result.failed_texts) == (1639, 1639, 0)
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(set(genres.values()), 1))
    assert openai_server.batches_created == 1
    assert_exact_table(movies_db, "movies_embeddings", genres, "movieId")
    assert fetch(
        movies_db,
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'movies_embeddings' "
        "AND column_name = 'embedding'",
    ) == [("FLOAT[1536]",)]
    notices = [e.message for e in events if isinstance(e, embedsql.Notice)]
    assert notices[0] == "Model: text-embedding-3-small (1536-d): OPENAI_API_KEY is configured, so the OpenAI default."
    statuses = [tuple(e.statuses) for e in events if isinstance(e, embedsql.BatchProgress)]
    assert ("validating",) in statuses
    assert ("in_progress",) in statuses
    assert ("finalizing",) in statuses
    (body,) = {b["metadata"]["embedsql_job"] for b in openai_server.batches.values()}
    assert body == result.job_id


def test_a_rerun_after_completion_creates_no_batch(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    embedsql.run("select id, body from docs", db=db, **fake_time)
    created = openai_server.batches_created
    uploads = [r for r in openai_server.requests if r[:2] == ("POST", "/v1/files")]

    result = embedsql.run("select id, body from docs", db=db, **fake_time)

    assert (result.embedded_texts, result.cached_texts, result.target_rows) == (0, 40, 40)
    assert openai_server.batches_created == created
    assert [r for r in openai_server.requests if r[:2] == ("POST", "/v1/files")] == uploads
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_two_jobs_submitted_with_the_same_texts_both_load(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    # Both jobs are planned before either loads, so both send the shared texts (the cache had none of
    # them yet); the second to load finds them in the cache and keeps the vectors stored first.
    db, texts = small_db(tmp_path / "d.duckdb", n=30)
    run = {"db": db, **fake_time, "wait": False}
    first = embedsql.run("select id, body from docs where id < 20", into="first", **run)
    second = embedsql.run("select id, body from docs where id >= 10", into="second", **run)
    assert (first.status, second.status) == ("submitted", "submitted")

    done = [embedsql.resume(j.job_id, db=db, **fake_time) for j in (second, first)]

    assert [(r.status, r.target_rows, r.failed_texts) for r in done] == [("complete", 20, 0), ("complete", 20, 0)]
    shared = {texts[i] for i in range(10, 20)}
    assert openai_server.inputs_by_text == Counter({t: 2 if t in shared else 1 for t in texts.values()})
    assert fetch(db, "SELECT count(*) FROM embedsql.cache_text_embedding_3_small_1536") == [(30,)]
    assert_exact_table(db, "first", {i: texts[i] for i in range(20)}, "id")
    assert_exact_table(db, "second", {i: texts[i] for i in range(10, 30)}, "id")


def test_shards_split_several_in_flight_within_the_token_budget(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db, texts = small_db(tmp_path / "d.duckdb", n=100)
    openai_server.in_progress_seconds = 100
    tokens_per_shard = 20 * 6  # 20 lines of 6 tokens ("document number 12 about cats")
    in_flight: list[int] = []

    def sleep(seconds: float) -> None:
        live = [b for b in openai_server.batches.values() if b["status"] in ("validating", "in_progress", "finalizing")]
        in_flight.append(len(live))
        openai_server.advance(seconds)

    result = embedsql.run(
        "select id, body from docs",
        db=db,
        sleep=sleep,
        clock=openai_server.now,
        max_shard_lines=20,
        max_enqueued_tokens=2 * tokens_per_shard + 10,
    )

    assert result.shards == 5
    assert openai_server.batches_created == 5
    assert max(in_flight) == 2
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_lines_that_fail_for_a_transient_reason_are_retried_to_completion(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.fail_lines([texts[3], texts[4]], status=500, times=1)
    openai_server.fail_lines([texts[5]], status=429, code="rate_limit_exceeded", message="Slow down.", times=2)

    result = embedsql.run("select id, body from docs", db=db, **fake_time)

    assert (result.embedded_texts, result.failed_texts, result.target_rows) == (40, 0, 40)
    assert openai_server.batches_created == 3
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert fetch(db, "SELECT shard, attempt, lines, status FROM embedsql.shards ORDER BY shard") == [
        (1, 1, 40, "loaded"),
        (2, 2, 3, "loaded"),
        (3, 3, 1, "loaded"),
    ]
    assert fetch(db, "SELECT count(*), count(*) FILTER (WHERE final) FROM embedsql.errors") == [(4, 0)]
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_permanent_failures_are_recorded_and_summarised(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db, texts = small_db(tmp_path / "d.duckdb", n=6)
    openai_server.fail_lines([texts[2]], status=400, code="invalid_input", message="This input is invalid.", times=9)

    result = CliRunner().invoke(
        cli, ["run", "select id, body from docs", "--db", str(db)], env={"EMBEDSQL_POLL_INTERVAL": "0"}
    )

    assert result.exit_code == 1, result.output
    assert "  failed                   1 (see table embedsql.errors)\n" in result.stdout
    job_id = fetch(db, "SELECT job_id FROM embedsql.jobs")[0][0]
    assert result.stderr.splitlines()[-1] == (
        "Error: 1 text(s) failed for good and their rows are not in docs_embeddings; first: 400 invalid_input: "
        "This input is invalid. See table embedsql.errors (job_id = "
        f"'{job_id}'), fix those texts, and run again (the rest comes from the cache)."
    )
    assert sorted(vectors_by_key(db, "docs_embeddings", "id")) == [0, 1, 3, 4, 5]
    assert openai_server.batches_created == 1


def test_an_expired_batch_is_completed_by_a_later_attempt(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.in_progress_seconds = 86_400 * 2  # the first batch gets through half its lines in 24 h

    def sleep(seconds: float) -> None:
        openai_server.advance(seconds)
        if openai_server.batches_created >= 1:
            openai_server.in_progress_seconds = 60

    result = embedsql.run(
        "select id, body from docs",
        db=db,
        sleep=sleep,
        clock=openai_server.now,
        poll_interval=3600,
        max_poll_interval=3600,
    )

    first = min(openai_server.batches.values(), key=lambda b: b["created_at"])
    assert first["status"] == "expired"
    assert 0 < first["request_counts"]["completed"] < 40
    assert openai_server.batches_created == 2
    assert result.target_rows == 40
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert fetch(db, "SELECT code, count(*) FROM embedsql.errors GROUP BY 1") == [
        ("batch_expired", 40 - first["request_counts"]["completed"])
    ]
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_a_batch_cancelled_elsewhere_is_completed_by_a_later_attempt(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    import openai

    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.in_progress_seconds = 100
    client = openai.OpenAI(api_key=openai_server.api_key, base_url=openai_server.base_url, max_retries=0)

    def sleep(seconds: float) -> None:
        openai_server.advance(seconds)
        for batch in openai_server.batches.values():
            if (
                batch["status"] == "in_progress"
                and openai_server.batches_created == 1
                and batch["in_progress_at"]
                and openai_server.now() - batch["in_progress_at"] >= 50
            ):
                client.batches.cancel(batch["id"])  # someone cancels it in the dashboard, halfway

    result = embedsql.run(
        "select id, body from docs",
        db=db,
        sleep=sleep,
        clock=openai_server.now,
        poll_interval=10,
        max_poll_interval=10,
    )
    client.close()

    statuses = sorted(b["status"] for b in openai_server.batches.values())
    assert statuses == ["cancelled", "completed"]
    assert result.target_rows == 40
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_token_limit_exceeded_is_waited_out(tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime) -> None:
    db, texts = small_db(tmp_path / "d.duckdb", n=60)
    openai_server.in_progress_seconds = 300
    openai_server.enqueued_token_limit = 250  # room for one shard of 20 lines x 8 tokens, not two
    events: list[object] = []

    result = embedsql.run(
        "select id, body from docs",
        db=db,
        **fake_time,
        max_shard_lines=20,
        on_event=events.append,
    )

    refused = [b for b in openai_server.batches.values() if b["status"] == "failed"]
    assert refused
    assert all(b["errors"]["data"][0]["code"] == "token_limit_exceeded" for b in refused)
    assert result.target_rows == 60
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert any("enqueued-token limit" in e.message for e in events if isinstance(e, embedsql.Notice))
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_a_short_download_is_downloaded_again(tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.cut_downloads(times=2)

    result = embedsql.run("select id, body from docs", db=db, **fake_time)

    downloads = [r for r in openai_server.requests if r[0] == "GET" and r[1].endswith("/content")]
    assert len(downloads) == 3  # cut, cut, whole
    assert result.target_rows == 40
    assert openai_server.batches_created == 1
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_a_completed_batch_without_its_output_file_is_sent_again(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.omit_output_file(times=1)

    result = embedsql.run("select id, body from docs", db=db, **fake_time)

    assert openai_server.batches_created == 2
    assert result.target_rows == 40
    assert fetch(db, "SELECT code, count(*) FROM embedsql.errors GROUP BY 1") == [("missing", 40)]
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_a_batch_that_fails_validation_is_reported_with_the_servers_message(
    tmp_path: Path, openai_server: FakeOpenAI
) -> None:
    db, _ = small_db(tmp_path / "d.duckdb", n=3)
    del openai_server.models[MODEL]  # the organisation has no access to the model

    result = CliRunner().invoke(
        cli, ["run", "select id, body from docs", "--db", str(db)], env={"EMBEDSQL_POLL_INTERVAL": "0"}
    )

    assert result.exit_code == 1
    (batch,) = openai_server.batches.values()
    server_message = batch["errors"]["data"][0]["message"]
    assert f"failed validation: model_not_found: {server_message}" in result.stderr
    assert (
        "Error: 3 text(s) failed for good and their rows are not in docs_embeddings; first: batch_failed: "
        f"model_not_found: {server_message}" in result.stderr
    )


def test_a_wrong_key_is_one_clear_line_and_never_echoed(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db, _ = small_db(tmp_path / "d.duckdb", n=3)
    wrong = "sk-proj-WRONGwrongWRONGwrong1234"

    result = CliRunner().invoke(
        cli, ["run", "select id, body from docs", "--db", str(db)], env={"OPENAI_API_KEY": wrong}
    )

    assert result.exit_code == 1
    job_id = fetch(db, "SELECT job_id FROM embedsql.jobs")[0][0]
    assert result.stderr.splitlines()[-1] == (
        f"Error: OpenAI refused the API key (401 while trying to upload the shard at {openai_server.base_url}). "
        "Check OPENAI_API_KEY in the environment or .env: it may be mistyped, revoked, or for another project "
        f"(OPENAI_PROJECT_ID). Job {job_id} keeps its place: continue it with `embedsql resume {job_id}`."
    )
    for leaked in (wrong, mask_key(wrong), wrong[-4:], wrong[8:16]):
        assert leaked not in result.output
    assert fetch(db, "SELECT status FROM embedsql.jobs") == [("prepared",)]


def test_no_wait_then_resume_gives_the_same_table(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.in_progress_seconds = 3600
    env = {"EMBEDSQL_POLL_INTERVAL": "0"}

    submitted = CliRunner().invoke(cli, ["run", "select id, body from docs", "--db", str(db), "--no-wait"], env=env)

    assert submitted.exit_code == 0, submitted.output
    job_id = fetch(db, "SELECT job_id FROM embedsql.jobs")[0][0]
    assert submitted.stdout.startswith(f"Job {job_id} submitted: docs_embeddings in {db} was not written.\n")
    assert f"Submitted. Follow it with: embedsql status {job_id}; finish with: embedsql resume {job_id}\n" in (
        submitted.stderr
    )
    openai_server.advance(600)
    status = CliRunner().invoke(cli, ["status", job_id, "--db", str(db)])
    assert status.exit_code == 0, status.output
    assert status.stdout == (
        f"job {job_id}: prepared\n"
        '  target      "docs_embeddings" (replace)\n'
        "  model       text-embedding-3-small (1536-d), runner batch\n"
        "  rows        40 (40 distinct texts, 0 cached)\n"
        "  requests    0 embedded, 0 failed, of 40\n"
        "  shards      1 submitted\n"
        "  batches     1 validating\n"
        f"Continue with: embedsql resume {job_id}\n"
    )
    openai_server.advance(3600)

    resumed = CliRunner().invoke(cli, ["resume", job_id, "--db", str(db)], env=env)

    assert resumed.exit_code == 0, resumed.output
    assert openai_server.batches_created == 1
    assert_exact_table(db, "docs_embeddings", texts, "id")
    jobs = CliRunner().invoke(cli, ["jobs", "--db", str(db), "--format", "jsonl"])
    (row,) = [json.loads(line) for line in jobs.stdout.splitlines()]
    created = row.pop("created")
    assert row == {
        "job": job_id,
        "status": "complete",
        "target": '"docs_embeddings"',
        "model": "text-embedding-3-small",
        "rows": 40,
        "texts_to_embed": 40,
    }
    assert created.startswith(job_id[:4] + "-" + job_id[4:6] + "-" + job_id[6:8] + " ")
    table = CliRunner().invoke(cli, ["jobs", "--db", str(db)]).stdout.splitlines()
    assert (
        table[0]
        == "job                   status    target             model                   rows  texts_to_embed  created"
    )
    assert table[2].startswith(f'{job_id}  complete  "docs_embeddings"  text-embedding-3-small    40              40  ')


def test_dimensions_are_requested_and_the_vectors_have_that_size(tmp_path: Path, fake_time: FakeTime) -> None:
    db, texts = small_db(tmp_path / "d.duckdb", n=5)

    embedsql.run("select id, body from docs", db=db, dimensions=256, **fake_time)

    assert_exact_table(db, "docs_embeddings", texts, "id", dimensions=256)


@pytest.mark.parametrize(("policy", "rows", "truncated"), [("truncate", 3, 1), ("skip", 2, 0)])
def test_texts_over_the_token_limit(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, policy: str, rows: int, truncated: int
) -> None:
    long_text = "token " * 9000
    db = make_db(
        tmp_path / "l.duckdb",
        f"CREATE TABLE l AS SELECT * FROM (VALUES (1, 'short one'), (2, '{long_text}'), (3, 'short two')) t(id, body)",
    )

    result = embedsql.run("select id, body from l", db=db, on_long=policy, **fake_time)

    assert (result.target_rows, result.truncated) == (rows, truncated)
    if policy == "truncate":
        (sent,) = [t for t in openai_server.inputs_by_text if t.startswith("token")]
        assert sent == "token " * 8191 + "token"
        np.testing.assert_array_equal(vectors_by_key(db, "l_embeddings", "id")[2], expected_vector(MODEL, sent, 1536))
    else:
        assert result.skipped == {"text too long": 1}
        assert all(not t.startswith("token") for t in openai_server.inputs_by_text)


def test_texts_over_the_token_limit_under_the_error_policy(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = make_db(tmp_path / "l.duckdb", f"CREATE TABLE l AS SELECT 7 AS id, '{'token ' * 9000}' AS body")

    result = CliRunner().invoke(cli, ["run", "select id, body from l", "--db", str(db), "--on-long", "error"])

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: at least 1 text(s) are longer than the 8,192 tokens text-embedding-3-small accepts, e.g. the text "
        "of key 7 (9,001 tokens). Shorten them in the query, or pass --on-long truncate (cut at 8,192 tokens) or "
        "--on-long skip (leave them out)."
    )
    assert openai_server.batches_created == 0
    assert fetch(db, "SELECT count(*) FROM embedsql.jobs") == [(0,)]


def test_a_create_whose_answer_was_lost_is_adopted_not_sent_twice(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.lose_responses("POST", r"^/v1/batches$", status=502)
    events: list[object] = []

    result = embedsql.run(
        "select id, body from docs",
        db=db,
        **fake_time,
        on_event=events.append,
    )

    assert openai_server.batches_created == 1
    (batch,) = openai_server.batches.values()
    assert batch["metadata"] == {
        "embedsql_job": result.job_id,
        "embedsql_shard": "1",
        "embedsql_attempt": "1",
        "embedsql_submission": "1",
    }
    notices = [e.message for e in events if isinstance(e, embedsql.Notice)]
    assert f"Adopted batch {batch['id']} of shard 1, created before an interruption." in notices
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_shards_are_cut_to_fit_the_token_budget(tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")

    result = embedsql.run(
        "select id, body from docs",
        db=db,
        max_enqueued_tokens=100,
        **fake_time,
    )

    tokens = [t for (t,) in fetch(db, "SELECT tokens FROM embedsql.shards ORDER BY shard")]
    assert {token_count(t) for t in texts.values()} == {6}  # "document number 12 about cats"
    assert tokens == [96, 96, 48]  # 16 lines of 6 tokens fit under 100
    assert sum(tokens) == result.tokens == sum(openai_server.batch_tokens(b) for b in openai_server.batches)
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_organization_and_project_are_sent(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, _ = small_db(tmp_path / "d.duckdb", n=2)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-embedsql")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_embedsql")

    embedsql.run("select id, body from docs", db=db, **fake_time)

    headers = [h for _, _, h in openai_server.request_headers]
    assert headers
    assert {h.get("openai-organization") for h in headers} == {"org-embedsql"}
    assert {h.get("openai-project") for h in headers} == {"proj_embedsql"}


def test_waiting_does_not_hold_the_database(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.in_progress_seconds = 600
    writes: list[int] = []

    def sleep(seconds: float) -> None:
        if not writes:  # another process writes to the warehouse while the job waits for OpenAI
            code = (
                "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                "c.execute('CREATE TABLE written_meanwhile AS SELECT 42 AS answer'); c.close()"
            )
            writes.append(subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True).returncode)
        openai_server.advance(seconds)

    embedsql.run("select id, body from docs", db=db, sleep=sleep, clock=openai_server.now)

    assert writes == [0]
    assert fetch(db, "SELECT answer FROM written_meanwhile") == [(42,)]
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_cancel_keeps_what_was_finished_and_a_rerun_pays_only_for_the_rest(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.in_progress_seconds = 100
    env = {"EMBEDSQL_POLL_INTERVAL": "0"}
    submitted = CliRunner().invoke(cli, ["run", "select id, body from docs", "--db", str(db), "--no-wait"], env=env)
    assert submitted.exit_code == 0, submitted.output
    job_id = fetch(db, "SELECT job_id FROM embedsql.jobs")[0][0]
    openai_server.advance(50)  # half the lines are done

    cancelled = CliRunner().invoke(cli, ["cancel", job_id, "--db", str(db)], env=env)

    assert cancelled.exit_code == 1  # the never-run lines are reported as failed for good
    assert cancelled.stdout.startswith(f"Job {job_id} cancelled: docs_embeddings in {db} was not written.\n")
    assert "  embedded                20\n" in cancelled.stdout
    (batch,) = openai_server.batches.values()
    assert batch["status"] == "cancelled"
    assert fetch(db, "SELECT status FROM embedsql.jobs") == [("cancelled",)]
    assert fetch(db, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'docs_embeddings'") == [(0,)]

    rerun = embedsql.run("select id, body from docs", db=db, **fake_time)

    assert (rerun.cached_texts, rerun.sent_texts) == (20, 20)
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert_exact_table(db, "docs_embeddings", texts, "id")


def waiting_run(db: Path) -> tuple[subprocess.Popen[str], list[str]]:
    """`embedsql run` as a real process, returned once its batch is in progress (and its stderr so far)."""
    env = {**os.environ, "EMBEDSQL_POLL_INTERVAL": "0.05", "EMBEDSQL_MAX_POLL_INTERVAL": "0.05"}
    process = subprocess.Popen(
        [sys.executable, "-m", "embedsql.cli", "run", "select id, body from docs", "--db", str(db)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith("batches: 1 in_progress"):
            break
    return process, seen


def test_ctrl_c_detaches_and_resume_finishes(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.in_progress_seconds = 3600
    process, seen = waiting_run(db)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)

    job_id = fetch(db, "SELECT job_id FROM embedsql.jobs")[0][0]
    assert process.returncode == 130, "".join(seen) + stderr
    assert stderr.endswith(
        f"Detached from job {job_id}. Its batches (if any) keep running at OpenAI; nothing is lost.\n"
        f"Continue with: embedsql resume {job_id}\n"
    )
    assert stdout == ""
    openai_server.advance(3600)

    resumed = CliRunner().invoke(cli, ["resume", job_id, "--db", str(db)], env={"EMBEDSQL_POLL_INTERVAL": "0"})

    assert resumed.exit_code == 0, resumed.output
    assert openai_server.batches_created == 1
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_the_live_display_off_a_terminal_is_a_line_per_change(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db, _ = small_db(tmp_path / "d.duckdb", n=10)

    result = CliRunner().invoke(
        cli, ["run", "select id, body from docs", "--db", str(db)], env={"EMBEDSQL_POLL_INTERVAL": "0"}
    )

    assert result.exit_code == 0, result.output
    lines = [line.rsplit(" | ", 1)[0] for line in result.stderr.splitlines() if line.startswith("batches:")]
    assert lines == [
        "batches: 1 validating | requests 0/10 done, 0 failed",
        "batches: 1 loaded | requests 10/10 done, 0 failed",
    ]


def test_a_second_process_on_the_same_job_stops_with_a_clear_message(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.in_progress_seconds = 3600
    first, _ = waiting_run(db)
    env = {**os.environ, "EMBEDSQL_POLL_INTERVAL": "0.05", "EMBEDSQL_MAX_POLL_INTERVAL": "0.05"}

    second = subprocess.run(
        [sys.executable, "-m", "embedsql.cli", "run", "select id, body from docs", "--db", str(db)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    openai_server.advance(3600)
    _, err = first.communicate(timeout=60)

    job_id = fetch(db, "SELECT job_id FROM embedsql.jobs")[0][0]
    assert second.returncode == 1
    assert second.stderr.splitlines()[-1] == (
        f"Error: job {job_id} is being run by another embedsql process (PID {first.pid}). Follow it with "
        f"`embedsql status {job_id}`, or stop that process and run `embedsql resume {job_id}`."
    )
    assert first.returncode == 0, err
    assert openai_server.batches_created == 1
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_a_job_waits_while_another_process_holds_the_warehouse(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.in_progress_seconds = 600
    holders: list[subprocess.Popen[str]] = []

    def sleep(seconds: float) -> None:
        if not holders:  # someone opens the warehouse for writing and keeps it for a second
            code = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(1)"
            holder = subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE, text=True)
            assert holder.stdout is not None
            assert holder.stdout.readline() == "held\n"
            holders.append(holder)
        openai_server.advance(seconds)

    result = embedsql.run("select id, body from docs", db=db, sleep=sleep, clock=openai_server.now, lock_wait=10)

    holders[0].wait()
    assert holders[0].stdout is not None
    holders[0].stdout.close()
    assert result.target_rows == 40
    assert_exact_table(db, "docs_embeddings", texts, "id")
