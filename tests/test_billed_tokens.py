"""The tokens a job was billed, from the ``usage`` of each answered line: summed per shard when it is
loaded, recorded in the ledger, and shown by the run summary, ``embedsql status`` and ``embedsql jobs``."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from click.testing import CliRunner

import embedsql
from embedsql.cli import cli
from embedsql.ledger import SCHEMA_VERSION

from batch_jobs import small_db
from fake_openai import FakeOpenAI
from fake_openai.vectors import token_count
from helpers import FakeTime, fetch

QUERY = "select id, body from docs"


def each_text_once(texts: dict[int, str]) -> int:
    """The prompt tokens of every text of the job, billed once each."""
    return sum(token_count(t) for t in texts.values())


def billed_by_batches(server: FakeOpenAI) -> int:
    return sum(b.billed_tokens for b in server.batches.values())


def test_a_batch_job_reports_the_tokens_its_batches_billed(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")

    result = embedsql.run(QUERY, db=db, **fake_time)

    assert result.billed_tokens == billed_by_batches(openai_server) == each_text_once(texts)
    assert fetch(db, "SELECT sum(billed_tokens) FROM embedsql.shards") == [(each_text_once(texts),)]


def test_lines_sent_again_are_billed_once_each(tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.fail_lines([texts[3], texts[4]], status=500, times=1)
    openai_server.fail_lines([texts[5]], status=429, code="rate_limit_exceeded", message="Slow down.", times=2)

    result = embedsql.run(QUERY, db=db, **fake_time)

    assert openai_server.batches_created == 3
    assert result.billed_tokens == billed_by_batches(openai_server) == each_text_once(texts)
    assert fetch(db, "SELECT shard, billed_tokens FROM embedsql.shards ORDER BY shard") == [
        (1, each_text_once({k: t for k, t in texts.items() if k not in (3, 4, 5)})),
        (2, token_count(texts[3]) + token_count(texts[4])),
        (3, token_count(texts[5])),
    ]


def test_the_sync_runner_reports_the_tokens_of_its_requests(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")

    run = CliRunner().invoke(cli, ["run", QUERY, "--db", str(db), "--runner", "sync", "--max-inputs-per-request", "7"])

    assert run.exit_code == 0, run.output
    served = sum(tokens for _, _, tokens in openai_server.embedding_requests)
    assert served == each_text_once(texts)
    assert f"  billed tokens{served:>13,} (the usage the service reported)\n" in run.stdout
    status = CliRunner().invoke(cli, ["status", "--db", str(db)])
    assert f"  billed      {served:,} tokens\n" in status.stdout


def test_a_resumed_job_reports_every_shard_billed_once(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    db, texts = small_db(tmp_path / "d.duckdb")
    openai_server.in_progress_seconds = 3600
    submitted = embedsql.run(QUERY, db=db, wait=False, max_shard_lines=15, **fake_time)
    assert (submitted.status, submitted.billed_tokens) == ("submitted", 0)
    openai_server.advance(3600)

    result = embedsql.resume(submitted.job_id, db=db, **fake_time)

    assert result.status == "complete"
    assert result.billed_tokens == billed_by_batches(openai_server) == each_text_once(texts)
    jobs = CliRunner().invoke(cli, ["jobs", "--db", str(db), "--format", "jsonl"])
    assert [json.loads(line)["billed_tokens"] for line in jobs.stdout.splitlines()] == [each_text_once(texts)]


def test_a_ledger_of_version_2_is_read_as_it_is_and_brought_to_version_3(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    db, _ = small_db(tmp_path / "d.duckdb")
    first = embedsql.run(QUERY, db=db, **fake_time)
    con = duckdb.connect(str(db))
    try:  # the ledger as embedsql with schema version 2 left it
        con.execute("ALTER TABLE embedsql.shards DROP COLUMN billed_tokens")
        con.execute("DROP TABLE embedsql.maps")
        con.execute("UPDATE embedsql.meta SET value = '2' WHERE key = 'schema_version'")
    finally:
        con.close()
    before = db.read_bytes()
    # The commands that only read show it as it is (no billed figure recorded), and leave it as it is.
    listed = CliRunner().invoke(cli, ["jobs", "--db", str(db), "--format", "jsonl"])
    shown = CliRunner().invoke(cli, ["status", first.job_id, "--db", str(db)])
    assert (listed.exit_code, shown.exit_code) == (0, 0), listed.output + shown.output
    assert json.loads(listed.stdout)["billed_tokens"] is None
    assert "billed" not in shown.stdout
    assert db.read_bytes() == before

    texts_more = {i: f"another document {i}" for i in range(5)}
    con = duckdb.connect(str(db))
    try:
        con.executemany("INSERT INTO docs VALUES (?, ?)", [[100 + i, t] for i, t in texts_more.items()])
    finally:
        con.close()
    second = embedsql.run(QUERY, db=db, **fake_time)

    assert fetch(db, "SELECT value FROM embedsql.meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert fetch(db, "SELECT count(*) FROM embedsql.maps") == [(0,)]
    assert second.billed_tokens == each_text_once(texts_more)
    assert fetch(db, "SELECT job_id, billed_tokens FROM embedsql.shards ORDER BY job_id") == [
        (first.job_id, None),
        (second.job_id, each_text_once(texts_more)),
    ]
