"""The sync runner: its throughput against a bare ``openai`` SDK client, and its pacing against a rate limit.

    python -m bench.sync                                   # 20,000 texts at 1 and 8 connections, pacing
    python -m bench.sync --texts 50000 --concurrency 8 --rounds 3

Throughput. A fast local embeddings server (``FastServer``: worker processes sharing one port, HTTP/1.1
keep-alive, every answer cut from precomputed bytes of one 1536-d vector) stands in for the API, so
that the client is what is measured. On it, in the same run and for the same texts (nine short texts
to one long one, see bench.data): embedsql end to end (``embedsql.run`` with ``runner="sync"``, a
DuckDB table to the FLOAT table: plan, send, load), the runner alone (``SyncRunner.run_shard`` on a
shard written beforehand), and the reference: a bare ``openai.OpenAI`` client sending the same packed
requests (base64) from as many threads, decoding each vector into numpy. A raw HTTP client that sends
the same requests and reads the answers without parsing them shows what the server itself can serve:
when it serves much faster than the clients take, the server is not what limits them. Each figure
is the best of ``--rounds``, the clients taking turns within a round.

Pacing. The server is the test suite's local OpenAI server (tests/fake_openai/) with its rate limiter
on, on its own clock: the runner sleeps by advancing that clock, so the figure is how well the runner
paces itself (achieved / allowed tokens per minute after the first full bucket), not the speed of
this machine. One thread: every sleep advances the one fake clock, so with several threads their
sleeps would add up instead of overlapping. The baseline in the same run is the naive client: the
same requests sent as fast as possible, each 429 waited out with its retry-after, the way a
notebook loop does it.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import openai

import embedsql
from embedsql.config import load_settings
from embedsql.models import compatible_model
from embedsql.runners.openai import MAX_INPUTS_PER_REQUEST, OpenAIClient, pack
from embedsql.runners.sync import SyncRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from .common import Goal, StageResult, fmt_ratio, markdown
from .data import connect, make_texts
from fake_openai import FakeOpenAI
from helpers import texts_table

MODEL = "text-embedding-3-small"
DIMENSIONS = 1536
QUERY = "select id, body from docs"
GOAL = 0.8  # of the bare SDK client's texts/s


# --- The fast server -------------------------------------------------------------------------------


class FastServer:
    """``POST /v1/embeddings`` on 127.0.0.1, answered by ``workers`` processes that share one port
    (SO_REUSEPORT): each connection gets a thread of one worker and is kept alive. Every item of an
    answer is the same vector, as base64 or floats as asked, with a ``usage`` estimated from the bytes
    (a quarter of each text's, at least 1): nothing is computed per text but that sum."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self.processes: list[Any] = []
        self.port = 0

    def __enter__(self) -> FastServer:
        context = multiprocessing.get_context("spawn")
        ready = context.Queue()
        for _ in range(self.workers):
            process = context.Process(target=_serve, args=(self.port, ready), daemon=True)
            process.start()
            self.processes.append(process)
            self.port = ready.get(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.terminate()
            process.join()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _serve(port: int, ready: Any) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    ready.put(listener.getsockname()[1])
    answers = _Answers()
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=_connection, args=(connection, answers), daemon=True).start()


def _connection(connection: socket.socket, answers: _Answers) -> None:
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = connection.makefile("rb", buffering=1 << 16)
    with connection, reader:
        while True:
            request_line = reader.readline()
            if not request_line:
                return
            length = 0
            while (header := reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = header.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = reader.read(length)
            if request_line.split(b" ")[:2] == [b"POST", b"/v1/embeddings"]:
                status, parts = b"200 OK", answers.embeddings(json.loads(body))
            else:
                status, parts = b"404 Not Found", [_NOT_FOUND]
            size = sum(len(p) for p in parts)
            connection.sendall(
                b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % size
            )
            for part in parts:
                connection.sendall(part)


_NOT_FOUND = b'{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":null}}'


class _Answers:
    """The bytes of every answer, cut from items built once per format and size."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: dict[tuple[str, int], list[bytes]] = {}
        self.lists: dict[tuple[str, int, int], bytes] = {}

    def embeddings(self, params: dict[str, Any]) -> list[bytes]:
        texts = params["input"] if isinstance(params["input"], list) else [params["input"]]
        key = (params.get("encoding_format") or "float", params.get("dimensions") or DIMENSIONS, len(texts))
        with self.lock:
            if key not in self.lists:
                self.lists[key] = b",".join(self._items(key[0], key[1])[: key[2]])
        tokens = sum(max(1, len(t) // 4) for t in texts)
        tail = b'],"model":%s,"usage":{"prompt_tokens":%d,"total_tokens":%d}}' % (
            json.dumps(params["model"]).encode(),
            tokens,
            tokens,
        )
        return [b'{"object":"list","data":[', self.lists[key], tail]

    def _items(self, encoding: str, dimensions: int) -> list[bytes]:
        if (encoding, dimensions) not in self.items:
            vector = np.random.default_rng(dimensions).standard_normal(dimensions).astype("<f4")
            vector /= np.linalg.norm(vector)
            embedding = (
                b'"' + base64.b64encode(vector.tobytes()) + b'"'
                if encoding == "base64"
                else json.dumps(vector.tolist()).encode()
            )
            self.items[(encoding, dimensions)] = [
                b'{"object":"embedding","index":%d,"embedding":%s}' % (i, embedding)
                for i in range(MAX_INPUTS_PER_REQUEST)
            ]
        return self.items[(encoding, dimensions)]


# --- The clients -----------------------------------------------------------------------------------


def _timed(send: Callable[[tuple[int, int]], None], bounds: list[tuple[int, int]], concurrency: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _ in pool.map(send, bounds):
            pass
    return time.perf_counter() - started


def raw_http(base_url: str, texts: list[str], bounds: list[tuple[int, int]], concurrency: int) -> float:
    """Seconds to send the packed requests and read the answers unparsed: what the server can serve."""
    bodies = {
        b: json.dumps({"model": MODEL, "input": texts[b[0] : b[1]], "encoding_format": "base64"}).encode()
        for b in bounds
    }
    local = threading.local()
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    connections: list[http.client.HTTPConnection] = []

    def send(bound: tuple[int, int]) -> None:
        if not hasattr(local, "connection"):
            local.connection = http.client.HTTPConnection("127.0.0.1", port)
            connections.append(local.connection)
        local.connection.request("POST", "/v1/embeddings", bodies[bound], {"content-type": "application/json"})
        answer = local.connection.getresponse()
        answer.read()
        assert answer.status == 200, answer.status

    try:
        return _timed(send, bounds, concurrency)
    finally:
        for connection in connections:
            connection.close()


def bare_sdk(base_url: str, texts: list[str], bounds: list[tuple[int, int]], concurrency: int) -> float:
    """Seconds for a bare openai client with ``concurrency`` threads to get every vector into numpy."""
    client = openai.OpenAI(api_key="bench", base_url=base_url, max_retries=0)
    vectors = np.empty((len(texts), DIMENSIONS), dtype=np.float32)

    def send(bound: tuple[int, int]) -> None:
        start, end = bound
        answer = client.embeddings.create(model=MODEL, input=texts[start:end], encoding_format="base64")
        for item in answer.data:
            vectors[start + item.index] = np.frombuffer(base64.b64decode(item.embedding), dtype="<f4")

    try:
        return _timed(send, bounds, concurrency)
    finally:
        client.close()


def runner_alone(base_url: str, shard: Path, concurrency: int, scratch: Path) -> float:
    """Seconds for ``SyncRunner.run_shard`` to turn the shard into its output and error files."""
    settings = load_settings({"openai_base_url": base_url}, environ={}, cwd=scratch)
    runner = SyncRunner(
        OpenAIClient(settings),
        compatible_model(MODEL),
        dimensions=None,
        concurrency=concurrency,
        max_inputs=MAX_INPUTS_PER_REQUEST,
    )
    output, errors = scratch / f"out-{concurrency}.jsonl", scratch / f"err-{concurrency}.jsonl"
    try:
        started = time.perf_counter()
        runner.run_shard(shard, output, errors, on_lines=lambda n: None)
        seconds = time.perf_counter() - started
    finally:
        runner.close()
    assert errors.stat().st_size == 0, errors.read_text()[:500]
    output.unlink()
    errors.unlink()
    return seconds


def end_to_end(base_url: str, template: Path, texts: int, concurrency: int, scratch: Path) -> float:
    """Seconds for ``embedsql.run`` from the DuckDB table to the FLOAT table (a fresh copy of the database)."""
    work = scratch / f"e2e-{concurrency}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    db = work / "bench.duckdb"
    shutil.copy(template, db)
    started = time.perf_counter()
    result = embedsql.run(QUERY, db=db, runner="sync", openai_base_url=base_url, concurrency=concurrency, model=MODEL)
    seconds = time.perf_counter() - started
    assert (result.embedded_texts, result.failed_texts) == (texts, 0), result
    shutil.rmtree(work)
    return seconds


def bench_texts(db: Path, texts: int) -> list[str]:
    """Create ``docs(id, body)`` in ``db``: ``texts`` distinct texts, one in ten long, mixed; its bodies by id."""
    long = texts // 10
    make_texts(db, texts - long, kind="short", table="short")
    make_texts(db, long, kind="long", table="long")
    con = connect(str(db))
    try:
        con.execute(
            "CREATE TABLE docs AS SELECT (row_number() OVER (ORDER BY hash(kind, i)) - 1)::BIGINT AS id, body "
            "FROM (SELECT 's' AS kind, id AS i, body FROM short UNION ALL SELECT 'l', id, body FROM long)"
        )
        con.execute("DROP TABLE short")
        con.execute("DROP TABLE long")
        con.execute("CHECKPOINT")
        return [body for (body,) in con.execute("SELECT body FROM docs ORDER BY id").fetchall()]
    finally:
        con.close()


def write_shard(path: Path, texts: list[str]) -> Path:
    """A shard of Batch API request lines, one per text, as the planner writes them."""
    with open(path, "w", encoding="utf-8") as f:
        for i, text in enumerate(texts):
            body = {"model": MODEL, "input": text, "encoding_format": "base64"}
            f.write(json.dumps({"custom_id": f"t{i}", "method": "POST", "url": "/v1/embeddings", "body": body}))
            f.write("\n")
    return path


CLIENTS = ("embedsql end to end", "embedsql runner alone", "bare openai SDK", "server alone (raw HTTP, unparsed)")


def throughput(texts: int, concurrencies: list[int], rounds: int, workers: int) -> dict[tuple[str, int], float]:
    """Texts/s of each client at each concurrency (the best of ``rounds``)."""
    best: dict[tuple[str, int], float] = {}
    saved = {var: os.environ.pop(var, None) for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    try:
        with tempfile.TemporaryDirectory() as scratch_dir, FastServer(workers) as server:
            scratch = Path(scratch_dir)
            template = scratch / "bench.duckdb"
            bodies = bench_texts(template, texts)
            bounds = pack(compatible_model(MODEL), bodies, max_inputs=MAX_INPUTS_PER_REQUEST)
            shard = write_shard(scratch / "shard.jsonl", bodies)
            url = server.base_url
            measures: dict[str, Callable[[int], float]] = {
                CLIENTS[0]: lambda c: end_to_end(url, template, texts, c, scratch),
                CLIENTS[1]: lambda c: runner_alone(url, shard, c, scratch),
                CLIENTS[2]: lambda c: bare_sdk(url, bodies, bounds, c),
                CLIENTS[3]: lambda c: raw_http(url, bodies, bounds, c),
            }
            for _ in range(rounds):
                for c in concurrencies:
                    for name, measure in measures.items():
                        rate = texts / measure(c)
                        best[(name, c)] = max(best.get((name, c), 0.0), rate)
    finally:
        for var, value in saved.items():
            if value is not None:
                os.environ[var] = value
    return best


# --- Pacing on the fake clock ----------------------------------------------------------------------


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


PACING_HEADER = ["client", "tokens", "fake minutes", "tokens/min", "achieved / allowed", "429s"]


def pacing(texts: int, tpm: int, concurrency: int) -> list[list[str]]:
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


def run_stage(
    texts: int = 20_000,
    concurrency: tuple[int, ...] = (1, 8),
    rounds: int = 2,
    workers: int = 2,
    pacing_texts: int = 6000,
    tpm: int = 20_000,
) -> StageResult:
    """The tables and summary lines for ``python -m bench``."""
    result = StageResult(
        f"8. Sync runner: {texts:,} texts against a fast local server; pacing of {pacing_texts:,} texts against "
        f"{tpm:,} tokens/min (fake clock)"
    )
    rates = throughput(texts, list(concurrency), rounds, workers)
    rows = []
    for c in concurrency:
        reference = rates[(CLIENTS[2], c)]
        for name in CLIENTS:
            rows.append([name, c, f"{rates[(name, c)]:,.0f}", f"{rates[(name, c)] / reference:.2f}x"])
    result.lines += [
        f"Throughput: {texts:,} texts (one in ten ~1.3 kB, the rest ~30 B), {DIMENSIONS}-d base64 answers, "
        f"server in {workers} worker processes, best of {rounds} round(s).",
        "",
        *markdown(["client", "connections", "texts/s", "vs bare SDK"], rows),
        "",
    ]
    for c in concurrency:
        reference = rates[(CLIENTS[2], c)]
        # The goal is the runner's: the bare client only sends. End to end, planning, loading and the
        # target table come on top of the sending; it is reported beside the goal, held to none.
        for name, stage, held in (
            (CLIENTS[1], f"8 sync runner c={c}", True),
            (CLIENTS[0], f"8 sync end to end c={c}", False),
        ):
            ratio = rates[(name, c)] / reference
            result.goals.append(
                Goal(
                    stage,
                    f"{rates[(name, c)]:,.0f} texts/s",
                    f"bare openai SDK {reference:,.0f} texts/s",
                    ratio,
                    f">= {GOAL}x bare SDK" if held else "—",
                    ratio >= GOAL if held else None,
                )
            )
    paced = pacing(pacing_texts, tpm, 1)
    result.lines += ["Pacing:", "", *markdown(PACING_HEADER, paced)]
    ours_ratio, naive_ratio = float(paced[0][4]), float(paced[1][4])
    result.goals.append(
        Goal(
            "8 sync pacing",
            f"{ours_ratio:.3f} of allowed tokens/min, {paced[0][5]} refused",
            f"naive loop {naive_ratio:.3f}, {paced[1][5]} refused",
            ours_ratio / naive_ratio,
            "—",
            None,
        )
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, action="append", help="connections (repeat); default 1 and 8")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--pacing-texts", type=int, default=6000)
    parser.add_argument("--tpm", type=int, default=20_000)
    args = parser.parse_args()
    result = run_stage(
        args.texts, tuple(args.concurrency or (1, 8)), args.rounds, args.workers, args.pacing_texts, args.tpm
    )
    met = {True: "yes", False: "**no**", None: "—"}
    rows = [[g.stage, g.figure, g.reference, fmt_ratio(g.ratio), g.goal, met[g.met]] for g in result.goals]
    print("\n".join([*result.lines, "", *markdown(["stage", "figure", "reference", "ratio", "goal", "met?"], rows)]))


if __name__ == "__main__":
    main()
