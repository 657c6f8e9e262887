"""Shards and the enqueued-token budget: how many batches are in flight at OpenAI at once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import embedsql

from batch_jobs import assert_exact_table, small_db
from fake_openai import FakeOpenAI, token_count
from helpers import FakeTime, fetch


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
