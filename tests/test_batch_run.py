"""A batch job from query to table through the real SDK and the local OpenAI server: what is sent, what lands."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import embedsql
from embedsql.cli import cli

from batch_jobs import MODEL, Q, assert_exact_table, small_db
from fake_openai import FakeOpenAI, expected_vector
from helpers import FakeTime, fetch, make_db, vectors_by_key


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
