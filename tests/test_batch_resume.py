"""A batch job across processes: submit and resume, cancel, Ctrl-C, and other processes on the same files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from click.testing import CliRunner

import embedsql
from embedsql.cli import cli

from batch_jobs import assert_exact_table, small_db
from fake_openai import FakeOpenAI
from helpers import FakeTime, fetch


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
        f"job {job_id}: submitted\n"
        "  target      docs_embeddings (replace)\n"
        "  model       text-embedding-3-small (1536-d), runner batch\n"
        "  rows        40 (40 distinct texts, 0 cached)\n"
        "  requests    0 embedded, 0 failed, of 40\n"
        "  billed      0 tokens\n"
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
        "target": "docs_embeddings",
        "model": "text-embedding-3-small",
        "rows": 40,
        "texts_to_embed": 40,
        "billed_tokens": sum(b.billed_tokens for b in openai_server.batches.values()),
    }
    assert created.startswith(job_id[:4] + "-" + job_id[4:6] + "-" + job_id[6:8] + " ")
    table = CliRunner().invoke(cli, ["jobs", "--db", str(db)]).stdout.splitlines()
    assert (
        table[0] == "job                   status    target           model                   rows  texts_to_embed"
        "  billed_tokens  created"
    )
    assert table[2].startswith(f"{job_id}  complete  docs_embeddings  text-embedding-3-small    40              40  ")


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
    assert cancelled.stderr.splitlines()[-1].endswith(
        "they never ran (the job was cancelled): run the same command again to embed them (the rest comes from the "
        "cache)."
    )
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
