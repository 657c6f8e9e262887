"""End to end: N distinct texts -> FLOAT[1536] table through the Batch API of a local OpenAI server.

    python -m bench.e2e                   # 1,000,000 distinct short texts, 1536-d
    python -m bench.e2e --rows 200000 --dimensions 256

The server is the test suite's (tests/fake_openai/: a real HTTP server with the Batch API's state
machine) with no artificial delay: a batch validates, runs and finalises as soon as it is polled. It
runs in a process of its own, so that its work (a vector, a base64 string and a JSON line per text)
takes the other core instead of sharing the client's interpreter; it only forgets each output file
once downloaded and each batch's result list once written, so that 1M x 1536-d answers (8 GB) do
not all sit in its memory. embedsql runs ``embedsql.run(sql)`` with an OpenAI model in a child
process (its peak RSS is reported), with default settings except a poll interval of 10 ms (the
batches finish at once, so the default 5 s would only measure the wait). The openai SDK is imported
with this module, before the clock starts (~1 s of every process).

The stage breakdown is a timeline of that one call, read from what it tells its caller: every
``BatchProgress`` that ``embedsql.run`` passes to ``on_event`` (one per round of the batch runner:
batches by status, lines done) is stamped with the time and the client's peak RSS. The phases
between the stamps: the plan with the first uploads and batch creations (until the first report),
the remaining submissions (until no shard waits to be submitted), the polls, downloads and loads
into the cache (until every shard is loaded), and the target table with the clean-up and the summary
(until ``run`` returns). The server moves its batches along lazily, on whichever request comes next,
so the phases marked * include its work (validating and embedding the batches): they are the
server's time as much as embedsql's. The plan alone is measured by ``bench.prepare``, loading alone
by ``bench.load``.

At 1536-d, 1M answers are 8 GB of output files and the server holds ~10 GB while it answers them;
embedsql's client peaks at ~1 GiB (measured: 312 s, 1.05 GiB, 11.6 GB of database). ``--dimensions``
shortens the vectors (text-embedding-3-small's ``dimensions``) for a smaller disk.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import embedsql
import embedsql.runners.openai  # the openai SDK (~1 s) loads with this module, before any clock
from embedsql import BatchProgress
from embedsql.events import Event

from .common import Goal, StageResult, fmt_bytes, fmt_n, fmt_s, isolated, markdown, peak_rss
from .data import make_texts
from .prepare import DOCS_SQL, MODEL, settings_for

__all__ = ["PHASES", "LocalServer", "Timeline", "run_stage", "run_with_server"]

TESTS = Path(__file__).resolve().parents[1] / "tests"
DIMENSIONS = 1536
PHASES = (
    "plan, first uploads and batch creations *",
    "remaining uploads and batch creations, with polls, downloads, loads *",
    "polls, downloads, loads into the cache *",
    "target table, clean-up, summary",
)


def _serve(conn: Connection) -> None:
    """The fake OpenAI server, in a process of its own, until the parent says stop."""
    sys.path.insert(0, str(TESTS))
    from fake_openai import BatchRecord, FakeOpenAI

    class Server(FakeOpenAI):
        """Frees what a long benchmark would otherwise pile up: answers already delivered."""

        def _file_content(self, file_id: str, **kwargs: object) -> Any:
            response = super()._file_content(file_id, **kwargs)
            file = self._files.get(file_id)
            if file is not None and file.purpose == "batch_output":
                file.content = b""  # the response holds the bytes until they are sent
            return response

        def _finish(self, batch: BatchRecord, status: str, when: float, results: list[dict]) -> None:
            super()._finish(batch, status, when, results)
            batch.results = None

    with Server() as server:
        conn.send((server.base_url, server.api_key))
        conn.recv()
        usage = sum(b["usage"]["input_tokens"] for b in server.batches.values())
        conn.send({"batches": len(server.batches), "billed_tokens": usage})


class LocalServer:
    """tests/fake_openai/ in a child process: ``with LocalServer() as (base_url, api_key): ...``."""

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


@dataclass
class Timeline:
    """An ``on_event`` handler that stamps each ``BatchProgress`` with the seconds since ``started``
    (a ``time.perf_counter()``) and the process's peak RSS at that moment."""

    started: float
    reports: list[tuple[float, int, BatchProgress]] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        if isinstance(event, BatchProgress):
            self.reports.append((time.perf_counter() - self.started, peak_rss(), event))

    def phases(self, seconds: float) -> list[tuple[str, float, int, int]]:
        """(phase, seconds, progress reports in it, peak RSS at its end) for each of ``PHASES``, the
        run having taken ``seconds`` in all."""
        if not self.reports:
            return []
        submitted = next(i for i, (_, _, r) in enumerate(self.reports) if "waiting" not in r.statuses)
        ends = [0, submitted, len(self.reports) - 1]
        marks = [(0.0, 0), *((self.reports[i][0], self.reports[i][1]) for i in ends), (seconds, peak_rss())]
        counts = [1, submitted, len(self.reports) - 1 - submitted, 0]
        return [(name, marks[i + 1][0] - marks[i][0], counts[i], marks[i + 1][1]) for i, name in enumerate(PHASES)]


def run_with_server(db: Path, sql: str, base_url: str, api_key: str, dimensions: int) -> dict[str, Any]:
    """``embedsql.run(sql)`` against the server at ``base_url``, with the timeline of its phases."""
    settings = settings_for(
        db,
        dimensions=dimensions,
        openai_api_key=api_key,
        openai_base_url=base_url,
        poll_interval=0.01,
        max_poll_interval=0.01,
    )
    started = time.perf_counter()
    timeline = Timeline(started)
    result = embedsql.run(sql, settings=settings, on_event=timeline)
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
        "phases": timeline.phases(seconds),
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
        "Stage breakdown (a timeline of the one embedsql.run call, from the BatchProgress events it passes to "
        "on_event; * includes the local server's work on the batches: it validates and embeds them on "
        "whichever request comes next):",
        "",
    ]
    table = [
        [name, reports, fmt_s(s), f"{s / m['seconds']:.0%}", fmt_bytes(rss)] for name, s, reports, rss in m["phases"]
    ]
    result.lines += markdown(["phase", "progress reports", "seconds", "share", "client peak RSS at its end"], table)
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
