"""Faults of the service at each moment of a batch job, against the local server: what the job does.

Each case asserts the whole outcome: exit status or error, its one-line message, the exact table (or
the user's table untouched), where the job stands in the ledger, and that no text was billed twice.
The service's faults (expiry, cancel, lost lines, outages) never fail a text "for good"; a text's
own line failing uses up one of that text's attempts; a fault that waiting cannot fix stops the job
with its place kept, and `resume` finishes it.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from click.testing import CliRunner

import embedsql
from embedsql.cli import cli
from embedsql.errors import RemoteError

from batch_jobs import assert_exact_table, small_db
from fake_openai import FakeOpenAI
from helpers import FakeTime, fetch, vectors_by_key

Q = "select id, body from docs"
# The SDK's own retries sleep on the wall clock; the runner's waits run on the server's.
NO_SDK_RETRIES = {"openai_max_retries": 0}


def once_each(texts: dict[int, str]) -> Counter[str]:
    return Counter(dict.fromkeys(texts.values(), 1))


def expiring(server: FakeOpenAI, batches: int) -> Callable[[float], None]:
    """A sleep on the server's clock under which the first ``batches`` batches expire with half their
    lines done (a completion window of 100 s for 200 s of work); later ones complete."""
    server.completion_window_seconds = 100
    server.in_progress_seconds = 200

    def sleep(seconds: float) -> None:
        server.advance(seconds)
        if server.batches_created >= batches:
            server.in_progress_seconds = 0

    return sleep


def statuses(server: FakeOpenAI) -> list[str]:
    return [b["status"] for b in sorted(server.batches.values(), key=lambda b: b["created_at"])]


# ------------------------------------------------------------------------------------------- attempts


@pytest.mark.parametrize("expiries", [1, 3, 5])
def test_batches_that_expire_again_and_again_use_up_no_attempt(
    tmp_path: Path, openai_server: FakeOpenAI, expiries: int
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")

    result = embedsql.run(
        Q, db=db, sleep=expiring(openai_server, expiries), clock=openai_server.now, max_attempts=1, poll_interval=10
    )

    assert statuses(openai_server) == ["expired"] * expiries + ["completed"]
    assert (result.status, result.embedded_texts, result.failed_texts, result.target_rows) == ("complete", 40, 0, 40)
    assert openai_server.inputs_by_text == once_each(texts)
    assert fetch(db, "SELECT DISTINCT code, final FROM embedsql.errors") == [("batch_expired", False)]
    assert fetch(db, "SELECT status FROM embedsql.jobs") == [("complete",)]
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_expiries_and_lines_that_fail_count_attempts_per_text(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    """Text 7 fails twice on its own line (attempts 1 and 2 of 3) and then succeeds, text 8 fails on
    every attempt: only text 8 fails for good, whatever the expiries in between."""
    db, texts = small_db(tmp_path / "d.duckdb", n=50)
    openai_server.fail_lines([texts[7]], status=500, times=2)
    openai_server.fail_lines([texts[8]], status=500, times=99)

    result = embedsql.run(Q, db=db, sleep=expiring(openai_server, 2), clock=openai_server.now, poll_interval=10)

    assert statuses(openai_server)[:2] == ["expired", "expired"]
    assert (result.embedded_texts, result.failed_texts, result.target_rows) == (49, 1, 49)
    counted = fetch(
        db,
        "SELECT custom_id, count(*), count(*) FILTER (WHERE final) FROM embedsql.errors "
        "WHERE code <> 'batch_expired' GROUP BY 1 ORDER BY 2",
    )
    assert [(n, final) for _, n, final in counted] == [(2, 0), (3, 1)]
    billed = Counter({text: 1 for key, text in texts.items() if key != 8})
    assert openai_server.inputs_by_text == billed  # failed lines are not billed
    del texts[8]
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_lines_that_fail_until_their_attempts_are_used_up_are_reported_as_the_servers_doing(
    tmp_path: Path, openai_server: FakeOpenAI
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb", n=6)
    openai_server.fail_lines([texts[2]], status=500, times=99)

    result = CliRunner().invoke(cli, ["run", Q, "--db", str(db)], env={"EMBEDSQL_POLL_INTERVAL": "0"})

    assert result.exit_code == 1
    job_id = fetch(db, "SELECT job_id FROM embedsql.jobs")[0][0]
    assert result.stderr.splitlines()[-1] == (
        "Error: 1 text(s) failed for good and their rows are not in docs_embeddings; first: 500 server_error: "
        "The server had an error while processing your request. See table embedsql.errors (job_id = "
        f"'{job_id}'), the server failed on them every time it was asked: run the same command again later "
        "(the rest comes from the cache)."
    )
    assert openai_server.batches_created == 3
    del texts[2]
    assert_exact_table(db, "docs_embeddings", texts, "id")


@pytest.mark.parametrize("cancels", [1, 3])
def test_batches_cancelled_by_the_service_are_sent_again_without_using_up_an_attempt(
    tmp_path: Path, openai_server: FakeOpenAI, cancels: int
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.in_progress_seconds = 100
    client = openai.OpenAI(api_key=openai_server.api_key, base_url=openai_server.base_url, max_retries=0)

    def sleep(seconds: float) -> None:
        openai_server.advance(seconds)
        for batch in openai_server.batches.values():
            running = batch["status"] == "in_progress" and batch["in_progress_at"]
            if running and openai_server.batches_created <= cancels and openai_server.now() - running >= 50:
                client.batches.cancel(batch["id"])  # the service cancels it, halfway

    try:
        result = embedsql.run(
            Q, db=db, sleep=sleep, clock=openai_server.now, max_attempts=1, poll_interval=10, max_poll_interval=10
        )
    finally:
        client.close()

    assert statuses(openai_server) == ["cancelled"] * cancels + ["completed"]
    assert (result.embedded_texts, result.failed_texts, result.target_rows) == (40, 0, 40)
    assert openai_server.inputs_by_text == once_each(texts)
    assert fetch(db, "SELECT DISTINCT code, final FROM embedsql.errors") == [("batch_cancelled", False)]
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_lines_missing_from_the_output_are_sent_again_however_often(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.rewrite_output_lines(lambda lines: lines[2:], times=3)  # two lines lost, three batches running

    result = embedsql.run(Q, db=db, max_attempts=1, **fake_time)

    assert openai_server.batches_created == 4
    assert (result.embedded_texts, result.failed_texts, result.target_rows) == (40, 0, 40)
    assert fetch(db, "SELECT code, count(*), count(*) FILTER (WHERE final) FROM embedsql.errors GROUP BY 1") == [
        ("missing", 6, 0)
    ]
    # The server billed the lines it lost; each of them was sent once more, nothing else twice.
    assert sum(openai_server.inputs_by_text.values()) == 40 + 6
    assert set(openai_server.inputs_by_text) == set(texts.values())
    assert_exact_table(db, "docs_embeddings", texts, "id")


# ------------------------------------------------------------------------------------- bad result lines


def _shorten_first(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first line's vector one dimension short (base64 or a float list)."""
    data = lines[0]["response"]["body"]["data"][0]
    if isinstance(data["embedding"], str):
        data["embedding"] = base64.b64encode(base64.b64decode(data["embedding"])[:-4]).decode()
    else:
        data["embedding"] = data["embedding"][:-1]
    return lines


def test_a_vector_of_the_wrong_length_fails_its_line_alone_and_is_asked_again(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.rewrite_output_lines(_shorten_first, times=1)

    result = embedsql.run(Q, db=db, **fake_time)

    assert (result.embedded_texts, result.failed_texts, result.target_rows) == (40, 0, 40)
    assert openai_server.batches_created == 2
    assert fetch(db, "SELECT attempt, status, code, message, final FROM embedsql.errors") == [
        (
            1,
            200,
            "wrong_dimensions",
            "the server answered 1535 dimensions for it, the job asked for 1536; it embeds with another model or "
            "size: check --model and --dimensions",
            False,
        )
    ]
    assert fetch(db, "SELECT shard, embedded, failed FROM embedsql.shards ORDER BY shard") == [(1, 39, 0), (2, 1, 0)]
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_a_vector_of_the_wrong_length_every_time_is_reported_with_its_fix(
    tmp_path: Path, openai_server: FakeOpenAI
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb", n=6)
    openai_server.rewrite_output_lines(_shorten_first, times=3)

    result = CliRunner().invoke(
        cli, ["run", Q, "--db", str(db), "--max-attempts", "1"], env={"EMBEDSQL_POLL_INTERVAL": "0"}
    )

    assert result.exit_code == 1
    job_id = fetch(db, "SELECT job_id FROM embedsql.jobs")[0][0]
    assert result.stderr.splitlines()[-1] == (
        "Error: 1 text(s) failed for good and their rows are not in docs_embeddings; first: 200 wrong_dimensions: "
        "the server answered 1535 dimensions for it, the job asked for 1536; it embeds with another model or size: "
        f"check --model and --dimensions. See table embedsql.errors (job_id = '{job_id}'), the server answered "
        "unusable vectors: check --model and --dimensions, then run again (the rest comes from the cache)."
    )
    assert len(vectors_by_key(db, "docs_embeddings", "id")) == 5
    assert openai_server.inputs_by_text == once_each(texts)


def test_a_line_answered_twice_counts_once_and_a_line_nobody_sent_is_ignored(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")

    def duplicate(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        stranger = {**lines[1], "custom_id": "0" * 64}
        return [*lines, lines[0], stranger]

    openai_server.rewrite_output_lines(duplicate, times=1)

    result = embedsql.run(Q, db=db, **fake_time)

    assert (result.embedded_texts, result.failed_texts, result.target_rows) == (40, 0, 40)
    assert fetch(db, "SELECT shard, embedded, failed FROM embedsql.shards") == [(1, 40, 0)]
    assert fetch(db, "SELECT count(*) FROM embedsql.errors") == [(0,)]
    assert openai_server.batches_created == 1
    assert_exact_table(db, "docs_embeddings", texts, "id")


# ---------------------------------------------------------------------------------- files and endpoints


def test_a_file_answered_without_status_is_ready_at_once(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.rewrite_answers(
        "POST", r"^/v1/files$", lambda status, body: {k: v for k, v in body.items() if k != "status"}
    )

    result = embedsql.run(Q, db=db, **fake_time)

    assert result.target_rows == 40
    assert not [
        r
        for r in openai_server.requests
        if r[0] == "GET" and r[1].startswith("/v1/files/file") and not r[1].endswith("/content")
    ]
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_a_file_that_never_gets_processed_stops_the_job_with_its_place_kept(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")

    def pending(status: int, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "status": "uploaded"}

    openai_server.rewrite_answers("POST", r"^/v1/files$", pending)
    openai_server.rewrite_answers("GET", r"^/v1/files/file-[^/]+$", pending, times=1000)

    with pytest.raises(RemoteError) as caught:
        embedsql.run(Q, db=db, **fake_time)

    ((job_id, file_id),) = fetch(db, "SELECT job_id, input_file_id FROM embedsql.shards")
    (uploaded,) = openai_server.files.values()
    assert file_id is None
    assert str(caught.value) == (
        f"the file {uploaded['id']} uploaded to {openai_server.base_url} was still 'uploaded' after 605.5 s, not "
        "'processed'; the server does not get it ready for a batch. Try again later, or use --runner sync. "
        f"Job {job_id} keeps its place: continue it with `embedsql resume {job_id}`."
    )
    assert openai_server.batches_created == 0

    embedsql.resume(job_id, db=db, **fake_time)  # the server processes files again

    assert openai_server.batches_created == 1
    assert_exact_table(db, "docs_embeddings", texts, "id")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/v1/files", 404),
        ("POST", "/v1/files", 405),
        ("POST", "/v1/batches", 404),
        ("POST", "/v1/batches", 405),
    ],
)
def test_a_server_without_a_batch_api_says_so_in_one_line_with_the_way_round_it(
    tmp_path: Path, openai_server: FakeOpenAI, method: str, path: str, status: int
) -> None:
    db, _ = small_db(tmp_path / "d.duckdb", n=3)
    before = fetch(db, "SELECT * FROM docs ORDER BY id")
    openai_server.remove_endpoint(method, f"^{path}$", status=status)

    result = CliRunner().invoke(cli, ["run", Q, "--db", str(db)])

    assert result.exit_code == 1
    job_id = fetch(db, "SELECT job_id FROM embedsql.jobs")[0][0]
    assert result.stderr.splitlines()[-1] == (
        f"Error: {openai_server.base_url} has no Batch API ({status} on {method} {path}): it serves no Files or "
        "Batches endpoint. Use --runner sync to embed through its /v1/embeddings. "
        f"Job {job_id} keeps its place: continue it with `embedsql resume {job_id}`."
    )
    assert "Traceback" not in result.output
    assert fetch(db, "SELECT status FROM embedsql.jobs") == [("prepared",)]
    assert fetch(db, "SELECT status FROM embedsql.shards") == [("uploading" if "files" in path else "uploaded",)]
    assert fetch(db, "SELECT * FROM docs ORDER BY id") == before
    assert openai_server.batches_created == 0


def test_an_upload_interrupted_on_a_server_that_cannot_list_files_is_uploaded_again(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.remove_endpoint("GET", r"^/v1/files$", status=405)
    monkeypatch.setenv("EMBEDSQL_FAILPOINT", "after-upload:eio")

    with pytest.raises(OSError, match="Input/output error"):
        embedsql.run(Q, db=db, **fake_time)

    assert fetch(db, "SELECT status FROM embedsql.shards") == [("uploading",)]
    monkeypatch.delenv("EMBEDSQL_FAILPOINT")
    job_id = fetch(db, "SELECT job_id FROM embedsql.jobs")[0][0]

    result = embedsql.resume(job_id, db=db, **fake_time)

    assert result.status == "complete"
    inputs = [f for f in openai_server.files.values() if f["filename"].startswith("embedsql-")]
    assert len(inputs) == 2  # the lost upload, and the one used
    assert openai_server.batches_created == 1
    assert openai_server.inputs_by_text == once_each(texts)
    assert_exact_table(db, "docs_embeddings", texts, "id")


# --------------------------------------------------------------------------------- outages while waiting


@pytest.mark.parametrize(
    ("path", "status", "answer"),
    [
        (r"^/v1/batches/batch", 503, "503 on GET /v1/batches/{batch}"),
        (r"^/v1/batches/batch", 0, "no answer on GET /v1/batches/{batch}"),
        (r"/content$", 500, "500 on GET /v1/files/{output}/content"),
        (r"/content$", 0, "no answer on GET /v1/files/{output}/content"),
    ],
    ids=["poll-503", "poll-connection", "download-500", "download-connection"],
)
@pytest.mark.parametrize("moment", ["first", "later"])
def test_an_outage_of_minutes_while_batches_run_is_waited_out_and_said(
    tmp_path: Path, openai_server: FakeOpenAI, path: str, status: int, answer: str, moment: str
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    # Polls fail for 8 of a batch's 10 minutes; a download fails for 7 minutes after its batch completes.
    openai_server.in_progress_seconds = 60 if "content" in path else 600
    armed = []

    def sleep(seconds: float) -> None:
        openai_server.advance(seconds)
        # "first": from the first poll of the first shard; "later": once the second shard's batch runs.
        if not armed and (moment == "first" or openai_server.batches_created == 2):
            armed.append(openai_server.now())
            openai_server.outage("GET", path, 8 * 60, status=status)

    events: list[object] = []
    result = embedsql.run(
        Q,
        db=db,
        sleep=sleep,
        clock=openai_server.now,
        on_event=events.append,
        max_shard_lines=20,
        max_enqueued_tokens=200,  # 20 texts of ~7 tokens a shard, one batch at a time
        poll_interval=30,
        max_poll_interval=30,
        **NO_SDK_RETRIES,
    )

    outages = [e for e in events if isinstance(e, embedsql.Outage)]
    assert outages, "the outage was not said"
    hit = sorted(openai_server.batches.values(), key=lambda b: b["created_at"])[0 if moment == "first" else 1]
    assert {e.answer for e in outages} == {answer.format(batch=hit["id"], output=hit["output_file_id"])}
    waits = [e.retry_in for e in outages]
    assert waits[:4] == [1.0, 2.0, 4.0, 8.0][: len(waits[:4])]
    assert max(waits) <= 300
    after = events[events.index(outages[-1]) + 1 :]
    assert any(isinstance(e, embedsql.BatchProgress) for e in after)  # back to normal progress
    assert (result.status, result.failed_texts, result.target_rows) == ("complete", 0, 40)
    assert openai_server.batches_created == 2
    assert fetch(db, "SELECT shard, status FROM embedsql.shards ORDER BY 1") == [(1, "loaded"), (2, "loaded")]
    assert openai_server.inputs_by_text == once_each(texts)
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_an_outage_longer_than_a_batchs_window_stops_the_job_with_its_place_kept(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.in_progress_seconds = 600
    openai_server.outage("GET", r"^/v1/batches/batch", 30 * 3600)

    with pytest.raises(RemoteError) as caught:
        embedsql.run(Q, db=db, **fake_time, **NO_SDK_RETRIES)

    ((job_id, shard_status),) = fetch(db, "SELECT job_id, status FROM embedsql.shards")
    assert str(caught.value) == (
        f"OpenAI had a server error (503 while trying to check the batch at {openai_server.base_url}): The server "
        "is overloaded or not ready yet. It kept failing for 24 hours while the job waited on its batches, beyond "
        "a batch's 24-hour window. "
        f"Job {job_id} keeps its place: continue it with `embedsql resume {job_id}`."
    )
    assert shard_status == "submitted"
    assert fetch(db, "SELECT status FROM embedsql.jobs") == [("prepared",)]
    assert not fetch(db, "SELECT * FROM information_schema.tables WHERE table_name = 'docs_embeddings'")

    openai_server.advance(6 * 3600)  # the API is back
    result = embedsql.resume(job_id, db=db, **fake_time)

    assert result.status == "complete"
    assert openai_server.batches_created == 1
    assert openai_server.inputs_by_text == once_each(texts)
    assert_exact_table(db, "docs_embeddings", texts, "id")


@pytest.mark.parametrize("status", [401, 403, 404])
def test_an_error_that_waiting_cannot_fix_stops_polling_at_once_and_resume_finishes(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, status: int
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.in_progress_seconds = 600
    openai_server.fail_requests("GET", r"^/v1/batches/batch", status, times=1)
    events: list[object] = []

    with pytest.raises(RemoteError) as caught:
        embedsql.run(Q, db=db, on_event=events.append, **fake_time)

    assert (caught.value.status, caught.value.retryable) == (status, False)
    assert not [e for e in events if isinstance(e, embedsql.Outage)]
    polls = [r for r in openai_server.requests if r[0] == "GET" and r[1].startswith("/v1/batches/")]
    assert [r[2] for r in polls] == [status]
    job_id = fetch(db, "SELECT job_id FROM embedsql.jobs")[0][0]
    assert fetch(db, "SELECT status FROM embedsql.shards") == [("submitted",)]

    result = embedsql.resume(job_id, db=db, **fake_time)

    assert result.status == "complete"
    assert openai_server.batches_created == 1
    assert openai_server.inputs_by_text == once_each(texts)
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_the_status_line_says_while_the_api_is_down() -> None:
    import io

    from embedsql.cli import _Display

    stream = io.StringIO()
    display = _Display(stream)
    display(embedsql.Outage("503 on GET /v1/batches/batch_1", 40.0, 75.0))
    display(embedsql.Outage("503 on GET /v1/batches/batch_1", 80.0, 115.0))
    display(embedsql.BatchProgress({"in_progress": 1}, 10, 0, 40, 200.0, None))

    assert stream.getvalue().splitlines() == [
        "waiting for the API to come back (503 on GET /v1/batches/batch_1; retrying in 40s) | down for 1m15s",
        "batches: 1 in_progress | requests 10/40 done, 0 failed | 3m20s",
    ]
