"""Failed lines and batches, lost answers and broken downloads: what is sent again, what is reported."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from click.testing import CliRunner

import embedsql
from embedsql.cli import cli

from batch_jobs import MODEL, assert_exact_table, small_db
from fake_openai import FakeOpenAI, mask_key
from helpers import FakeTime, fetch, vectors_by_key


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


def test_a_batch_that_fails_validation_stops_the_job_with_the_servers_message_and_keeps_its_place(
    tmp_path: Path, openai_server: FakeOpenAI
) -> None:
    """A batch refused whole is the service's failure, not the texts': no text fails for good, the job
    stops with the server's reason, and once the cause is fixed a resume submits the shard again."""
    db, texts = small_db(tmp_path / "d.duckdb", n=3)
    model = openai_server.models.pop(MODEL)  # the organisation has no access to the model

    result = CliRunner().invoke(
        cli, ["run", "select id, body from docs", "--db", str(db)], env={"EMBEDSQL_POLL_INTERVAL": "0"}
    )

    assert result.exit_code == 1
    (batch,) = openai_server.batches.values()
    server_message = batch["errors"]["data"][0]["message"].rstrip(".")
    job_id = fetch(db, "SELECT job_id FROM embedsql.jobs")[0][0]
    assert result.stderr.splitlines()[-1] == (
        f"Error: batch {batch['id']} (shard 1) failed validation: model_not_found: {server_message}. Nothing of it "
        "ran; fix the cause (the model, the key's access to it), then continue. "
        f"Job {job_id} keeps its place: continue it with `embedsql resume {job_id}`."
    )
    assert fetch(db, "SELECT status, batch_id, batch_status FROM embedsql.shards") == [("uploaded", None, "failed")]
    assert fetch(db, "SELECT count(*) FROM embedsql.errors") == [(0,)]
    assert fetch(db, "SELECT status FROM embedsql.jobs") == [("prepared",)]

    openai_server.models[MODEL] = model
    resumed = CliRunner().invoke(cli, ["resume", job_id, "--db", str(db)], env={"EMBEDSQL_POLL_INTERVAL": "0"})

    assert resumed.exit_code == 0, resumed.output
    assert openai_server.batches_created == 2
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_a_wrong_key_is_one_clear_line_and_never_echoed(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db, _ = small_db(tmp_path / "d.duckdb", n=3)
    # Its last characters could not appear in the output by chance (a job id is digits and hex, as is a
    # port): "1234" was once in the job id of a run started at 12:34.
    wrong = "sk-proj-WRONGwrongWRONGwrongQzXy"

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
