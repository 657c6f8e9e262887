"""Sync runner throughput against a server with a fixed tokens-per-minute limit.

    python -m bench.sync                 # 6,000 texts, 20,000 TPM
    python -m bench.sync --tpm 100000 --texts 20000

The server is the test suite's local OpenAI server (tests/fake_openai.py) with its rate limiter on,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=6000)
    parser.add_argument("--tpm", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, FakeOpenAI() as server:
        os.environ["OPENAI_API_KEY"], os.environ["OPENAI_BASE_URL"] = server.api_key, server.base_url
        texts = [f"benchmark text number {i} about {'cats' if i % 2 else 'dogs'}" for i in range(args.texts)]
        db = texts_table(Path(scratch) / "bench.duckdb", dict(enumerate(texts)))
        print("| client | tokens | fake minutes | tokens/min | achieved / allowed | 429s |")
        print("|---|---|---|---|---|---|")
        for name, measure in (
            ("embedsql sync runner", lambda: ours(server, db, args.concurrency)),
            ("naive loop (retry-after)", lambda: naive(server, [t + " (again)" for t in texts])),
        ):
            server.tokens_per_minute = None  # a fresh, full bucket for each client
            server.tokens_per_minute = args.tpm
            refused = server.rate_limited
            tokens, seconds = measure()
            allowed = args.tpm * seconds / 60  # past the first full bucket
            ratio = (tokens - args.tpm) / allowed if allowed else float("nan")
            print(
                f"| {name} | {tokens:,} | {seconds / 60:.2f} | {tokens / seconds * 60:,.0f} | {ratio:.3f} | "
                f"{server.rate_limited - refused} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
