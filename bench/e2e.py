"""End to end: N distinct texts -> FLOAT[1536] table through the Batch API of a local OpenAI server.

    python -m bench.e2e                   # 1,000,000 distinct short texts, 1536-d
    python -m bench.e2e --rows 200000 --dimensions 256

The server is the test suite's (tests/fake_openai.py: a real HTTP server with the Batch API's state
machine) with no artificial delay: a batch validates, runs and finalises as soon as it is polled. It
runs in a process of its own, so that its work (a vector, a base64 string and a JSON line per text)
takes the other core instead of sharing the client's interpreter; it only forgets each output file
once downloaded and each batch's result list once written, so that 1M x 1536-d answers (8 GB) do
not all sit in its memory. embedsql runs ``embedsql.run(sql)`` with an OpenAI model in a child
process (its peak RSS is reported), with default settings except a poll interval of 10 ms (the
batches finish at once, so the default 5 s would only measure the wait).

The stage breakdown comes from timers around the functions that do each step: the plan, the
uploads, batch creation, polls, downloads, loading each shard into the cache, the target table,
and removing the work files, with how far each raised the client's peak RSS. The server moves its
batches along lazily, on whichever request comes next: the upload, create and poll calls (marked
*) wait while it validates and embeds the batches created before them, so together they are the
server's time, not embedsql's.

At 1536-d, 1M answers are 8 GB of output files and the server holds ~10 GB while it answers them;
embedsql's client peaks at ~1 GiB (measured: 312 s, 1.05 GiB, 11.6 GB of database). ``--dimensions``
shortens the vectors (text-embedding-3-small's ``dimensions``) for a smaller disk.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import embedsql
import embedsql.pipeline
from embedsql.runners.openai import OpenAIClient
from embedsql.store import JobStore

from .common import Goal, StageResult, Stopwatch, fmt_bytes, fmt_n, fmt_s, isolated, markdown
from .data import make_texts
from .prepare import DOCS_SQL, MODEL, settings_for

__all__ = ["LocalServer", "run_stage", "run_with_server"]

TESTS = Path(__file__).resolve().parents[1] / "tests"
DIMENSIONS = 1536
STEPS = {
    "prepare (plan, shards)": (embedsql.pipeline, "make_plan"),
    "upload *": (OpenAIClient, "upload"),
    "create batches *": (OpenAIClient, "create"),
    "poll *": (OpenAIClient, "retrieve"),
    "download": (OpenAIClient, "download"),
    "load into cache": (JobStore, "load"),
    "target table": (embedsql.pipeline, "materialise"),
    "remove work files": (shutil, "rmtree"),
}


def _serve(conn: Connection) -> None:
    """The fake OpenAI server, in a process of its own, until the parent says stop."""
    sys.path.insert(0, str(TESTS))
    from fake_openai import FakeOpenAI

    class Server(FakeOpenAI):
        """Frees what a long benchmark would otherwise pile up: answers already delivered."""

        def _file_content(self, file_id: str, **kwargs: object) -> Any:
            response = super()._file_content(file_id, **kwargs)
            file = self._files.get(file_id)
            if file is not None and file["purpose"] == "batch_output":
                file["content"] = b""  # the response holds the bytes until they are sent
            return response

        def _finish(self, batch: dict, status: str, when: float, results: list[dict]) -> None:
            super()._finish(batch, status, when, results)
            batch["_results"] = None

    with Server() as server:
        conn.send((server.base_url, server.api_key))
        conn.recv()
        usage = sum(b["usage"]["input_tokens"] for b in server.batches.values())
        conn.send({"batches": len(server.batches), "billed_tokens": usage})


class LocalServer:
    """tests/fake_openai.py in a child process: ``with LocalServer() as (base_url, api_key): ...``."""

    def __enter__(self) -> tuple[str, str]:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), daemon=True)
        self.process.start()
        address: tuple[str, str] = self.conn.recv()
        return address

    def stats(self) -> dict[str, int]:
        """Stop the server; what it served (batches, billed tokens)."""
        self.conn.send("stop")
        stats: dict[str, int] = self.conn.recv()
        return stats

    def __exit__(self, *exc: object) -> None:
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()


def run_with_server(db: Path, sql: str, base_url: str, api_key: str, dimensions: int) -> dict[str, Any]:
    """``embedsql.run(sql)`` against the server at ``base_url``, with the stage breakdown."""
    settings = settings_for(
        db,
        dimensions=dimensions,
        openai_api_key=api_key,
        openai_base_url=base_url,
        poll_interval=0.01,
        max_poll_interval=0.01,
    )
    with Stopwatch(STEPS) as watch:
        started = time.perf_counter()
        result = embedsql.run(sql, settings=settings)
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "status": result.status,
        "rows": result.target_rows,
        "sent": result.sent_texts,
        "embedded": result.embedded_texts,
        "failed": result.failed_texts,
        "shards": result.shards,
        "tokens": result.tokens,
        "steps": dict(watch.seconds),
        "calls": dict(watch.calls),
        "raised": dict(watch.raised),
    }


def measure(rows: int, scratch: Path, dimensions: int) -> dict[str, Any]:
    db = scratch / "bench.duckdb"
    make_texts(db, rows, kind="short")
    server = LocalServer()
    with server as (base_url, api_key):
        m, before, peak = isolated(run_with_server, db, DOCS_SQL, base_url, api_key, dimensions)
        m |= server.stats()
    m |= {"rss_base": before, "rss_peak": peak, "db_bytes": db.stat().st_size}
    return m


def run_stage(rows: int, *, dimensions: int = DIMENSIONS, echo: bool = True) -> StageResult:
    """Run the end-to-end case once; the stage's tables and summary lines."""
    result = StageResult(
        f"3. End to end: {rows:,} distinct texts -> FLOAT[{dimensions}] table, local Batch API server ({MODEL})"
    )
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        m = measure(rows, Path(tmp), dimensions)
    if m["status"] != "complete" or m["rows"] != rows or m["failed"]:
        raise RuntimeError(f"the end-to-end job did not complete cleanly: {m}")
    rate = rows / m["seconds"]
    if echo:
        print(f"  end to end {rows:,}: {fmt_s(m['seconds'])}, {fmt_n(rate)} texts/s", flush=True)
    result.lines += markdown(
        ["texts", "shards (batches)", "billed tokens", "total", "texts/s", "client peak RSS", "database size"],
        [
            [
                fmt_n(rows),
                f"{m['shards']} ({m['batches']})",
                fmt_n(m["billed_tokens"]),
                fmt_s(m["seconds"]),
                fmt_n(rate),
                fmt_bytes(m["rss_peak"]),
                fmt_bytes(m["db_bytes"]),
            ]
        ],
    )
    result.lines += [
        "",
        "Stage breakdown (timers around the functions that do each step; * includes the local server's work "
        "on the batches created before: it validates and embeds them on whichever request comes next):",
        "",
    ]
    steps = m["steps"]
    table = [
        [name, m["calls"][name], fmt_s(s), f"{s / m['seconds']:.0%}", fmt_bytes(m["raised"][name])]
        for name, s in steps.items()
    ]
    other = m["seconds"] - sum(steps.values())
    share = f"{other / m['seconds']:.0%}"
    table.append(["other (bind, ledger reads, polling sleeps, summary)", "", fmt_s(other), share, ""])
    result.lines += markdown(["step", "calls", "seconds", "share", "peak RSS raised inside"], table)
    result.goals.append(
        Goal("3 end to end", f"{fmt_n(rows)} texts in {fmt_s(m['seconds'])} ({fmt_n(rate)}/s)", "—", None, "—", None)
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="distinct texts")
    parser.add_argument("--dimensions", type=int, default=DIMENSIONS, help="vector size (at most 1536)")
    args = parser.parse_args()
    print(run_stage(args.rows, dimensions=args.dimensions).text())


if __name__ == "__main__":
    main()
