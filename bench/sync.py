"""Sync runner throughput against a server with a fixed tokens-per-minute limit.

    python -m bench.sync                 # 6,000 texts, 20,000 TPM
    python -m bench.sync --tpm 100000 --texts 20000

The server is the test suite's local OpenAI server (tests/fake_openai/) with its rate limiter on,
on its own clock: the runner sleeps by advancing that clock, so the figure is how well the runner
paces itself (achieved / allowed tokens per minute after the first full bucket), not the speed of
this machine. One thread: every sleep advances the one fake clock, so with several threads their
sleeps would add up instead of overlapping. The baseline in the same run is the naive client: the
same requests sent as fast as possible, each 429 waited out with its retry-after, the way a
notebook loop does it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import openai

import embedsql

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from .common import Goal, StageResult, markdown
from fake_openai import FakeOpenAI
from helpers import texts_table


def ours(server: FakeOpenAI, db: Path, concurrency: int) -> tuple[int, float]:
    start, before = server.now(), len(server.embedding_requests)
    embedsql.run(
        "select id, body from docs",
        db=db,
        runner="sync",
        concurrency=concurrency,
        max_inputs_per_request=50,
        sleep=server.advance,
        clock=server.now,
    )
    return sum(t for _, _, t in server.embedding_requests[before:]), server.now() - start


def naive(server: FakeOpenAI, texts: list[str]) -> tuple[int, float]:
    client = openai.OpenAI(api_key=server.api_key, base_url=server.base_url, max_retries=0)
    start, before = server.now(), len(server.embedding_requests)
    try:
        for i in range(0, len(texts), 50):
            while True:
                try:
                    client.embeddings.create(model="text-embedding-3-small", input=texts[i : i + 50])
                    break
                except openai.RateLimitError as e:
                    server.advance(float(e.response.headers.get("retry-after") or 1.0))
    finally:
        client.close()
    return sum(t for _, _, t in server.embedding_requests[before:]), server.now() - start


HEADER = ["client", "tokens", "fake minutes", "tokens/min", "achieved / allowed", "429s"]


def measure(texts: int, tpm: int, concurrency: int) -> list[list[str]]:
    """One table row per client: the runner's pacing and the naive loop's, against the same limit."""
    rows = []
    saved = {var: os.environ.get(var) for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    with tempfile.TemporaryDirectory() as scratch, FakeOpenAI() as server:
        os.environ["OPENAI_API_KEY"], os.environ["OPENAI_BASE_URL"] = server.api_key, server.base_url
        try:
            bodies = [f"benchmark text number {i} about {'cats' if i % 2 else 'dogs'}" for i in range(texts)]
            db = texts_table(Path(scratch) / "bench.duckdb", dict(enumerate(bodies)))
            for name, client in (
                ("embedsql sync runner", lambda: ours(server, db, concurrency)),
                ("naive loop (retry-after)", lambda: naive(server, [t + " (again)" for t in bodies])),
            ):
                server.tokens_per_minute = None  # a fresh, full bucket for each client
                server.tokens_per_minute = tpm
                refused = server.rate_limited
                tokens, seconds = client()
                allowed = tpm * seconds / 60  # past the first full bucket
                achieved = (tokens - tpm) / allowed if allowed else float("nan")
                rows.append(
                    [
                        name,
                        f"{tokens:,}",
                        f"{seconds / 60:.2f}",
                        f"{tokens / seconds * 60:,.0f}",
                        f"{achieved:.3f}",
                        f"{server.rate_limited - refused}",
                    ]
                )
        finally:
            for var, value in saved.items():
                if value is None:
                    os.environ.pop(var, None)
                else:
                    os.environ[var] = value
    return rows


def run_stage(texts: int = 6000, tpm: int = 20_000, concurrency: int = 1) -> StageResult:
    """The table and summary line for ``python -m bench``."""
    result = StageResult(f"8. Sync runner pacing: {texts:,} texts against {tpm:,} tokens/min (fake clock)")
    rows = measure(texts, tpm, concurrency)
    result.lines += markdown(HEADER, rows)
    ours_ratio, naive_ratio = float(rows[0][4]), float(rows[1][4])
    result.goals.append(
        Goal(
            "8 sync",
            f"{ours_ratio:.3f} of allowed tokens/min, {rows[0][5]} refused",
            f"naive loop {naive_ratio:.3f}, {rows[1][5]} refused",
            ours_ratio / naive_ratio,
            "—",
            None,
        )
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=6000)
    parser.add_argument("--tpm", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    print("\n".join(run_stage(args.texts, args.tpm, args.concurrency).lines), flush=True)


if __name__ == "__main__":
    main()
