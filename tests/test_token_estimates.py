"""Tokens where they decide something: a job to send estimates most of its texts' tokens while it
plans, counts exactly the texts that could be over the model's limit, and each shard before it is
sent; a dry run counts every text. Jobs here have more texts than a plan counts whole (500)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import embedsql
from embedsql.cli import cli
from embedsql.token_estimate import TokenEstimate

from batch_jobs import assert_exact_table
from batch_rules import ENCODING
from fake_openai import FakeOpenAI
from helpers import FakeTime, fetch, isolated, texts_table

N = 1_500
# Texts of very different tokens per byte: prose, digit runs, CJK, emoji, code, whitespace runs.
_KINDS = (
    lambda i: f"document number {i} about {'cats' if i % 2 else 'dogs'} and the garden",
    lambda i: str(i) * 7,
    lambda i: f"{i} 日本語のテキストです",
    lambda i: f"{i} 🙂👍🏽👩‍👩‍👧🇫🇷",
    lambda i: f"def f_{i}(x):\n    return x ** {i}  # power\n",
    lambda i: f"{i}" + " \n\t" * 20 + "end",
)


def mixed_texts(n: int = N) -> dict[int, str]:
    return {i: _KINDS[i % len(_KINDS)](i) for i in range(n)}


def tokens(text: str) -> int:
    return len(ENCODING.encode_ordinary(text))


def test_a_job_sends_shards_within_the_budget_by_their_exact_count(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    texts = mixed_texts()
    db = texts_table(tmp_path / "d.duckdb", texts)
    budget = 6_000
    openai_server.in_progress_seconds = 100
    openai_server.enqueued_token_limit = budget  # the organisation's limit is the budget, to the token
    in_flight: list[int] = []

    def sleep(seconds: float) -> None:
        live = [b for b, info in openai_server.batches.items() if info["status"] in ("validating", "in_progress")]
        in_flight.append(sum(openai_server.batch_tokens(b) for b in live))
        openai_server.advance(seconds)

    events: list[object] = []
    result = embedsql.run(
        "select id, body from docs",
        db=db,
        sleep=sleep,
        clock=fake_time["clock"],
        max_enqueued_tokens=budget,
        on_event=events.append,
    )

    assert result.status == "complete"
    shards = fetch(db, "SELECT path, tokens, batch_id FROM embedsql.shards ORDER BY shard")
    assert len(shards) > 2
    for _, counted, batch_id in shards:
        # The ledger holds each shard's exact count: the tokens the API counts against its limit.
        assert counted == openai_server.batch_tokens(str(batch_id))
        assert counted <= budget
    assert not [b for b in openai_server.batches.values() if b["status"] == "failed"]
    assert 0 < max(in_flight) <= budget
    assert sum(c for _, c, _ in shards) == sum(tokens(t) for t in texts.values())
    planned = [e.message for e in events if isinstance(e, embedsql.Notice) and "to embed" in e.message]
    assert planned == [
        f"Job {result.job_id}: {N:,} rows, {len(shards)} shard(s) to embed, about {result.tokens:,} tokens (estimated)."
    ]
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    assert_exact_table(db, "docs_embeddings", texts, "id")


def test_a_dry_run_counts_every_text_exactly(tmp_path: Path) -> None:
    texts = mixed_texts()
    db = texts_table(tmp_path / "d.duckdb", texts)
    exact = sum(tokens(t) for t in texts.values())

    with isolated(tmp_path):
        result = CliRunner().invoke(
            cli, ["run", "select id, body from docs", "--db", str(db), "--model", "text-embedding-3-small", "--dry-run"]
        )

    assert result.exit_code == 0, result.output
    assert f"  tokens              {exact:,} (counted exactly)\n" in result.stdout
    dry = embedsql.run("select id, body from docs", db=db, model="text-embedding-3-small", dry_run=True)
    assert dry.tokens == exact


LONG = "token " * 9000  # 9,001 tokens, over the 8,192 of text-embedding-3-small
# Over the limit in bytes (9,000) but not in tokens: counted, found within the limit, and sent whole.
LONG_IN_BYTES = "abcdefghi" * 1000


@pytest.mark.parametrize("policy", ["truncate", "skip", "error"])
def test_texts_over_the_limit_are_found_exactly_among_estimated_ones(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, policy: str
) -> None:
    texts: dict[int, str] = {**mixed_texts(), N: LONG, N + 1: LONG_IN_BYTES}
    assert tokens(LONG_IN_BYTES) < 8192 < len(LONG_IN_BYTES.encode())
    db = texts_table(tmp_path / "d.duckdb", texts)

    if policy == "error":
        result = CliRunner().invoke(cli, ["run", "select id, body from docs", "--db", str(db), "--on-long", "error"])
        assert result.exit_code == 1
        assert result.stderr.splitlines()[-1] == (
            "Error: at least 1 text(s) are longer than the 8,192 tokens text-embedding-3-small accepts, e.g. the text "
            "of key 1500 (9,001 tokens). Shorten them in the query, or pass --on-long truncate (cut at 8,192 tokens) "
            "or --on-long skip (leave them out)."
        )
        assert fetch(db, "SELECT count(*) FROM embedsql.jobs") == [(0,)]
        assert openai_server.batches_created == 0
        return

    result = embedsql.run("select id, body from docs", db=db, on_long=policy, **fake_time)

    assert result.status == "complete"
    sent = openai_server.inputs_by_text
    assert sent[LONG_IN_BYTES] == 1
    if policy == "truncate":
        assert result.truncated == 1
        assert sent["token " * 8191 + "token"] == 1
        assert result.target_rows == N + 2
    else:
        assert result.skipped == {"text too long": 1}
        assert not [t for t in sent if t.startswith("token token")]
        assert result.target_rows == N + 1
    del texts[N]
    if policy == "skip":
        assert_exact_table(db, "docs_embeddings", texts, "id")


def test_an_estimate_is_bytes_times_the_sampled_ratio_with_its_margin_never_over_the_bytes() -> None:
    estimate = TokenEstimate(max_tokens=8192)
    sizes = np.array([100, 200, 9000, 50, 3])
    # Counted: a sampled text (25 tokens in 100 bytes) and one over the limit in bytes (no sample).
    counts = estimate.counts(sizes, np.array([0, 2]), np.array([25, 8500]))

    # 25 / 100 x 1.25 = 0.3125 tokens a byte, rounded up.
    assert counts.tolist() == [25, 63, 8500, 16, 1]
    assert estimate.estimated == 3
    # A later batch with a lower ratio keeps the job's: the higher of the two.
    assert estimate.counts(np.array([100, 100]), np.array([0]), np.array([10])).tolist() == [10, 22]


def test_without_a_sample_the_estimate_is_the_bound_itself() -> None:
    none = np.array([], dtype=np.int64)

    assert TokenEstimate(max_tokens=8192).counts(np.array([10, 20]), none, none).tolist() == [10, 20]
