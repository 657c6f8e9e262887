"""Our reading of the OpenAI API, checked against a server nobody here wrote: llmock (MIT, pinned in the
test extra), in its own process on 127.0.0.1, under both runners, with and without its faults.

llmock serves /v1/embeddings, Files and Batches. Its vectors are derived from the text alone (see
``llmock_vector``), so every test asserts the exact table. Faults are scripted through its control API
(``/_llmock/scenario``: an error status N times, or until cleared, on the requests whose path matches; a
held answer) or sampled at rates given when it starts (``--error-rate 429=0.2``); quotas too are set at
start (``--rpm``, ``--tpm``).

Where llmock differs from OpenAI's documented behaviour, embedsql must still end with the exact table,
or in a kept place that ``embedsql resume`` finishes, or with a one-line error:

- no ``GET /v1/files`` (405): a file whose upload was not recorded cannot be looked up;
- ``dimensions`` is ignored: every vector has 1536 numbers, not unit length;
- a batch goes from ``validating`` straight to ``completed`` about 3 s after its creation (the first
  read after that finishes it), never ``in_progress`` or ``finalizing``; its output has no final newline;
- cancelling a finished batch is answered 400, where OpenAI answers 409; an unfinished one is
  ``cancelled`` at once, with no output;
- its error answers carry ``retry-after`` in whole seconds (1 by default for 429 and 503) and
  ``retry-after-ms``; its token quota counts a quarter of the request's bytes, not tokens.

No test waits a fixed time: waits are polls of a condition (the server answering, a fault seen in its
journal), bounded by a deadline far beyond what they need.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import openai
import pytest
from click.testing import CliRunner, Result

from embedsql.cli import cli

from helpers import fetch, texts_table, vectors_by_key

QUERY = "select id, body from docs"
MODEL = "text-embedding-3-small"
DIMENSIONS = 1536
# Far beyond what a start takes (about 2.5 s on an idle core): only a server that never comes up hits it.
STARTUP_DEADLINE = 60.0


def llmock_vector(text: str) -> np.ndarray:
    """llmock 0.2.2's vector of ``text`` (``simulation.build_mock_embedding``), as embedsql stores it: 1536
    numbers in [-1, 1], rounded to 6 places, from a generator seeded by the text's SHA-256."""
    rng = random.Random(int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big"))
    return np.asarray([round(rng.uniform(-1.0, 1.0), 6) for _ in range(DIMENSIONS)], dtype=np.float32)


class LLMock:
    """One llmock server, in its own process on a free port of 127.0.0.1, with its control API."""

    def __init__(self, *flags: str, log: Path) -> None:
        self.flags = flags
        self.log = log  # its stderr: a file, since a pipe nobody reads could fill and stop the server
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> LLMock:
        # A port the OS just handed out and took back is free unless another process grabs it in the
        # instant before llmock binds it; then llmock exits, and a second port is tried.
        for _ in range(5):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            command = [sys.executable, "-m", "llmock.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    [*command, "--log-level", "warning", *self.flags], stdout=subprocess.DEVNULL, stderr=log
                )
            if self._ready():
                return self
        raise AssertionError(f"llmock did not start: {self.log.read_text(errors='replace')}")

    def _ready(self) -> bool:
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"llmock did not answer on port {self.port} within {STARTUP_DEADLINE:g} s")

    def stop(self) -> None:
        if self.process is None:
            return
        # Killed, not asked to stop: uvicorn would first wait for a request held by a scripted delay,
        # and llmock keeps nothing worth a clean exit.
        self.process.kill()
        self.process.wait()

    def fail(self, path: str, status: int, *, times: int | None = 1, retry_after: float = 0.0) -> None:
        """The next ``times`` requests whose path matches ``path`` (shell wildcards) get ``status``; None:
        every one, until ``clear``.

        The answer says ``retry-after: ceil(retry_after)`` and ``retry-after-ms``. The sync runner reads the
        first: 0 lets it retry at once. The SDK, which retries the batch runner's requests, reads the second
        but ignores 0 for its own backoff (0.5 s, doubling): batch tests pass 0.01."""
        behavior = {"type": "fail", "status": status, "times": times, "retry_after": retry_after}
        behavior["match"] = {"path": path}
        httpx.post(f"{self.url}/_llmock/scenario", json={"behaviors": [behavior]}).raise_for_status()

    def delay(self, path: str, seconds: float) -> None:
        """Hold the next answer on ``path`` for ``seconds``."""
        behavior = {"type": "delay", "seconds": seconds, "times": 1, "match": {"path": path}}
        httpx.post(f"{self.url}/_llmock/scenario", json={"behaviors": [behavior]}).raise_for_status()

    def clear(self) -> None:
        """The scripted faults still pending are dropped: the outage is over."""
        httpx.delete(f"{self.url}/_llmock/scenario").raise_for_status()

    def requests(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """The requests served so far (its journal), oldest first, optionally of one method and path."""
        records = httpx.get(f"{self.url}/_llmock/requests", timeout=30).json()["requests"]
        return [
            r
            for r in records
            if (method is None or r["method"] == method) and (path is None or _matches(r["path"], path))
        ]

    def statuses(self, method: str, path: str) -> list[int]:
        return [r["status"] for r in self.requests(method, path)]

    def embedded_texts(self) -> Counter[str]:
        """How many times each text got a vector back from /v1/embeddings."""
        return Counter(
            text
            for r in self.requests("POST", "/v1/embeddings")
            if r["status"] == 200
            for text in ([r["body"]["input"]] if isinstance(r["body"]["input"], str) else r["body"]["input"])
        )


def _matches(path: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(path, pattern)


def point_embedsql_at(server: LLMock, monkeypatch: pytest.MonkeyPatch) -> None:
    """embedsql talks to ``server`` and polls every 0.1 s (at most 0.5 s apart): llmock finishes a batch
    about 3 s after its creation."""
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-llmock-test")
    monkeypatch.setenv("EMBEDSQL_POLL_INTERVAL", "0.1")
    monkeypatch.setenv("EMBEDSQL_MAX_POLL_INTERVAL", "0.5")


@pytest.fixture(scope="module")
def shared_llmock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMock]:
    """One llmock without faults for the tests of this module that one worker runs: a start costs 2.5 s
    of CPU (more on a busy machine), more than most tests here. See ``llmock`` for what each test owns."""
    server = LLMock(log=tmp_path_factory.mktemp("llmock") / "llmock.log").start()
    yield server
    server.stop()


@pytest.fixture
def llmock(shared_llmock: LLMock, monkeypatch: pytest.MonkeyPatch) -> LLMock:
    """The worker's llmock, reset for this test: no scripted fault left, an empty journal. Files and
    batches of earlier tests stay (llmock has no way to drop them), under ids and job metadata of their
    own: a job finds only its own batches."""
    httpx.post(f"{shared_llmock.url}/_llmock/reset").raise_for_status()
    point_embedsql_at(shared_llmock, monkeypatch)
    return shared_llmock


@pytest.fixture
def start_llmock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., LLMock]]:
    """``start_llmock(*flags)``: an llmock of this test's own, started with ``flags`` (error rates are
    set at start only), with embedsql pointed at it."""
    servers: list[LLMock] = []

    def start(*flags: str) -> LLMock:
        server = LLMock(*flags, log=tmp_path / f"llmock-{len(servers)}.log")
        servers.append(server)
        server.start()
        point_embedsql_at(server, monkeypatch)
        return server

    yield start
    for server in servers:
        server.stop()


def some_texts(n: int, start: int = 0) -> dict[int, str]:
    """Distinct texts with accents, CJK and an emoji, by key."""
    return {i: f"llmock text {i} {'héllo wörld' if i % 3 else '東京 🌧'} {'x' * (i % 5)}" for i in range(start, n)}


def docs(db: Path, n: int = 24) -> dict[int, str]:
    """``docs(id, body)`` in ``db`` with ``n`` texts."""
    texts = some_texts(n)
    texts_table(db, texts)
    return texts


def embed(*args: str, env: dict[str, str] | None = None) -> Result:
    """``embedsql ARGS`` in this process, stdout and stderr apart."""
    return CliRunner().invoke(cli, list(args), env=env)


def run(db: Path, runner: str, *args: str) -> Result:
    return embed("run", QUERY, "--db", str(db), "--runner", runner, *args)


def assert_exact(db: Path, texts: dict[int, str], table: str = "docs_embeddings") -> None:
    """The target holds a row per key, of the types embedsql promises, with llmock's vector of its text."""
    assert fetch(
        db,
        f"SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '{table}' "
        "ORDER BY ordinal_position",
    ) == [("id", "INTEGER"), ("embedding", f"FLOAT[{DIMENSIONS}]")]
    assert fetch(db, f"SELECT count(*) FROM {table}") == [(len(texts),)]
    vectors = vectors_by_key(db, table)
    assert sorted(vectors) == sorted(texts)  # type: ignore[type-var]
    keys = sorted(texts)
    np.testing.assert_array_equal(
        np.stack([vectors[k] for k in keys]), np.stack([llmock_vector(texts[k]) for k in keys])
    )


def job_id(db: Path) -> str:
    """The job of the last run."""
    return str(fetch(db, "SELECT job_id FROM embedsql.jobs ORDER BY created_at DESC LIMIT 1")[0][0])


def assert_kept_place(result: Result, db: Path) -> str:
    """Exit 1, one ``Error:`` line saying how to go on, no traceback, the job not complete: its id."""
    job = job_id(db)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert f"embedsql resume {job}" in result.stderr, result.stderr
    assert fetch(db, f"SELECT status FROM embedsql.jobs WHERE job_id = '{job}'") != [("complete",)]
    return job


def table_exists(db: Path, table: str = "docs_embeddings") -> bool:
    return fetch(db, f"SELECT count(*) FROM information_schema.tables WHERE table_name = '{table}'") == [(1,)]


def resume_until_done(result: Result, db: Path, *, tries: int = 5) -> None:
    """Faults sampled at a rate may outlast the retries: then the job must keep its place, and resuming
    (as often as it takes, a few times at most) must finish it."""
    for _ in range(tries):
        if result.exit_code == 0:
            return
        job = assert_kept_place(result, db)
        result = embed("resume", job, "--db", str(db))
    assert result.exit_code == 0, result.output


# The server itself


def test_llmock_answers_each_text_with_the_vector_we_expect(llmock: LLMock) -> None:
    texts = ["plain", "héllo wörld", "東京 🌧", " leading space", "x" * 3000]
    client = openai.OpenAI(base_url=llmock.base_url, api_key="sk-llmock-test", max_retries=0)
    try:
        together = client.embeddings.create(model=MODEL, input=texts)
        alone = [client.embeddings.create(model=MODEL, input=text).data[0].embedding for text in texts]
    finally:
        client.close()

    assert [d.index for d in together.data] == list(range(len(texts)))
    for text, item, vector in zip(texts, together.data, alone, strict=True):
        np.testing.assert_array_equal(np.asarray(item.embedding, np.float32), llmock_vector(text))
        assert item.embedding == vector  # the same text, alone or among others: the same vector


# Without faults


def test_sync_job_gives_the_exact_table(tmp_path: Path, llmock: LLMock) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db)

    result = run(db, "sync", "--max-inputs-per-request", "5")

    assert result.exit_code == 0, result.output
    assert f"docs_embeddings in {db}: 24 rows of {MODEL} FLOAT[1536]" in result.stdout
    assert llmock.statuses("POST", "/v1/embeddings") == [200] * 5  # 24 inputs, 5 a request
    assert llmock.requests("POST", "/v1/batches") == []
    assert llmock.embedded_texts() == Counter(texts.values())
    assert fetch(db, "SELECT runner, status FROM embedsql.jobs") == [("sync", "complete")]
    assert_exact(db, texts)


def test_batch_job_gives_the_exact_table(tmp_path: Path, llmock: LLMock, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db)
    monkeypatch.setenv("EMBEDSQL_MAX_SHARD_LINES", "10")

    result = run(db, "batch")

    assert result.exit_code == 0, result.output
    assert llmock.statuses("POST", "/v1/files") == [200] * 3  # 24 lines, 10 a shard
    assert llmock.statuses("POST", "/v1/batches") == [200] * 3
    assert llmock.requests("POST", "/v1/embeddings") == []
    assert fetch(db, "SELECT runner, status FROM embedsql.jobs") == [("batch", "complete")]
    assert_exact(db, texts)

    again = run(db, "batch")  # everything is in the cache: nothing is sent again

    assert again.exit_code == 0, again.output
    assert llmock.statuses("POST", "/v1/batches") == [200] * 3
    assert_exact(db, texts)


# Scripted faults: the same every run


def test_sync_429_and_5xx_are_retried(tmp_path: Path, llmock: LLMock) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db)
    for status, times in ((429, 2), (500, 1), (503, 1)):
        llmock.fail("/v1/embeddings", status, times=times)

    result = run(db, "sync", "--max-inputs-per-request", "5", "--concurrency", "1")

    assert result.exit_code == 0, result.output
    assert llmock.statuses("POST", "/v1/embeddings") == [429, 429, 500, 503] + [200] * 5
    assert llmock.embedded_texts() == Counter(texts.values())
    assert_exact(db, texts)


def test_sync_request_that_hangs_is_timed_out_and_sent_again(
    tmp_path: Path, start_llmock: Callable[..., LLMock], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db, n=10)
    llmock = start_llmock()  # its own: the held request stays open after the test
    llmock.delay("/v1/embeddings", 600)  # held far longer than the timeout: only the timeout ends it
    monkeypatch.setenv("EMBEDSQL_OPENAI_TIMEOUT", "2")

    result = run(db, "sync", "--max-inputs-per-request", "5", "--concurrency", "1")

    assert result.exit_code == 0, result.output
    assert llmock.embedded_texts() == Counter(texts.values())
    assert_exact(db, texts)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_sync_outage_keeps_the_job_in_place_and_the_target_untouched(
    tmp_path: Path, llmock: LLMock, status: int
) -> None:
    db = tmp_path / "d.duckdb"
    before = docs(db, n=6)
    assert run(db, "sync").exit_code == 0
    # Key 0 leaves, 18 keys come: a target written from this run's vectors would differ from the old one.
    texts = {**{k: t for k, t in before.items() if k != 0}, **some_texts(24, start=6)}
    con = duckdb.connect(str(db))
    try:
        con.execute("DELETE FROM docs WHERE id = 0")
        con.executemany("INSERT INTO docs VALUES (?, ?)", [[k, t] for k, t in texts.items() if k not in before])
    finally:
        con.close()
    llmock.fail("/v1/embeddings", status, times=None)

    failed = run(db, "sync", "--max-inputs-per-request", "5")

    job = assert_kept_place(failed, db)
    assert_exact(db, before)  # the earlier table, exactly
    assert fetch(db, "SELECT count(*) FROM embedsql.errors") == [(0,)]  # the service's failure is no text's
    llmock.clear()

    resumed = embed("resume", job, "--db", str(db))

    assert resumed.exit_code == 0, resumed.output
    # The first six in the first job only (the text of key 0 too, before it left), the rest once.
    assert llmock.embedded_texts() == Counter(texts.values()) + Counter([before[0]])
    assert_exact(db, texts)


def test_batch_fault_at_every_remote_step_still_gives_the_exact_table(
    tmp_path: Path, llmock: LLMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db)
    monkeypatch.setenv("EMBEDSQL_MAX_SHARD_LINES", "10")
    llmock.fail("/v1/files", 500, retry_after=0.01)  # an upload
    llmock.fail("/v1/batches", 503, retry_after=0.01)  # a create, sent once: looked up before a second one
    llmock.fail("/v1/batches/batch_*", 429, retry_after=0.01)  # a poll
    llmock.fail("/v1/files/*/content", 502, retry_after=0.01)  # a download

    result = run(db, "batch")

    assert result.exit_code == 0, result.output
    creates = llmock.statuses("POST", "/v1/batches")
    assert (creates[0], creates.count(200)) == (503, 3)  # one batch a shard, no second one
    assert llmock.requests("GET", "/v1/batches")  # looked up by its metadata after the failed create
    assert 429 in llmock.statuses("GET", "/v1/batches/batch_*")
    assert 502 in llmock.statuses("GET", "/v1/files/*/content")
    assert_exact(db, texts)


def test_batch_outage_while_polling_ends_in_the_exact_table_or_a_kept_place(
    tmp_path: Path, llmock: LLMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db, n=12)
    llmock.fail("/v1/batches/batch_*", 503, times=None, retry_after=0.01)
    # The outage ends once the SDK's own retries of a poll are spent (1 + 4 tries): what embedsql does
    # then is its own. A job that waits it out finishes; one that stops must keep its place.
    finished = threading.Event()

    def end_outage() -> None:
        while not finished.is_set():
            if llmock.statuses("GET", "/v1/batches/batch_*").count(503) >= 5:
                llmock.clear()
                return
            finished.wait(0.05)

    watcher = threading.Thread(target=end_outage)
    watcher.start()
    try:
        result = run(db, "batch")
    finally:
        finished.set()
        watcher.join()
    llmock.clear()

    if result.exit_code != 0:
        job = assert_kept_place(result, db)
        assert not table_exists(db)
        result = embed("resume", job, "--db", str(db))

    assert result.exit_code == 0, result.output
    assert llmock.statuses("POST", "/v1/batches") == [200]  # the batch was followed, never made again
    assert_exact(db, texts)


# Faults sampled at a rate: a different run every time, the same table at the end


def test_sync_under_random_429_and_5xx(tmp_path: Path, start_llmock: Callable[..., LLMock]) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db, n=30)
    # Quotas far above what the job needs, so no test waits for a minute's refill: the rate-limit headers
    # they add (resets written as llmock writes them, "1m0s") must be read without a refusal or an error.
    quotas = ("--rpm", "1000", "--tpm", "1000000")
    server = start_llmock(*quotas, "--error-rate", "429=0.15", "--error-rate", "500=0.1", "--error-rate", "503=0.1")

    result = run(db, "sync", "--max-inputs-per-request", "5", "--concurrency", "2")

    resume_until_done(result, db)
    assert server.embedded_texts() == Counter(texts.values())
    assert_exact(db, texts)


def test_batch_under_random_429_and_5xx(
    tmp_path: Path, start_llmock: Callable[..., LLMock], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db, n=20)
    monkeypatch.setenv("EMBEDSQL_MAX_SHARD_LINES", "10")
    # Every request is at risk, the control API's excepted: uploads, creates, polls, lists, downloads.
    server = start_llmock("--error-rate", "429=0.1", "--error-rate", "500=0.05", "--error-rate", "503=0.05")

    result = run(db, "batch")

    resume_until_done(result, db)
    assert server.statuses("POST", "/v1/batches").count(200) == 2
    assert_exact(db, texts)


# Interrupted between two remote steps: llmock has batches.list, but no files.list


def killed_run(db: Path, failpoint: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "EMBEDSQL_FAILPOINT": failpoint,
        "EMBEDSQL_MAX_SHARD_LINES": "10",
        "EMBEDSQL_RUNNER": "batch",
    }
    return subprocess.run(
        [sys.executable, "-m", "embedsql.cli", "run", QUERY, "--db", str(db)], env=env, capture_output=True, text=True
    )


def test_llmock_has_no_files_list(llmock: LLMock) -> None:
    client = openai.OpenAI(base_url=llmock.base_url, api_key="sk-llmock-test", max_retries=0)
    try:
        with pytest.raises(openai.APIStatusError) as missing:
            client.files.list(purpose="batch")
    finally:
        client.close()

    assert missing.value.status_code == 405


@pytest.mark.parametrize("failpoint", ["after-upload:2", "after-create:2"])
def test_killed_between_remote_steps_then_resumed(tmp_path: Path, llmock: LLMock, failpoint: str) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db)

    killed = killed_run(db, failpoint)

    assert killed.returncode == -9, killed.stderr
    job = job_id(db)
    assert not table_exists(db)

    resumed = embed("resume", job, "--db", str(db))

    assert resumed.exit_code == 0, resumed.output
    # One batch a shard: a file whose upload was not recorded may be uploaded again (llmock cannot list
    # files), but a batch created before the kill is found by its metadata, not created twice.
    assert llmock.statuses("POST", "/v1/batches") == [200] * 3
    assert_exact(db, texts)


# llmock ignores `dimensions`: it always answers 1536 numbers


@pytest.mark.parametrize("runner", ["sync", "batch"])
def test_vectors_of_another_size_than_asked_are_refused_not_stored(tmp_path: Path, llmock: LLMock, runner: str) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db, n=4)

    refused = run(db, runner, "--dimensions", "256")

    assert refused.exit_code == 1, refused.output
    assert isinstance(refused.exception, SystemExit), refused.exception
    assert "Traceback" not in refused.output
    (error,) = [line for line in refused.stderr.splitlines() if line.startswith("Error: ")]
    if runner == "sync":  # the whole answer: the service's failure, the job keeps its place
        assert "answered 1536 dimensions for every text, the job asked for 256 (model text-embedding-3-small)" in error
        assert_kept_place(refused, db)
    else:  # each line of the batch's answer fails, at once: asking again would pay for the same answer
        assert "the server answered 1536 dimensions for it, the job asked for 256; it embeds with another " in error
        assert error.endswith("check --model and --dimensions, then run again (the rest comes from the cache).")
        assert llmock.statuses("POST", "/v1/batches") == [200]
    assert not table_exists(db)  # no empty table of 256-d vectors in the way of the next run

    again = run(db, runner)  # the size this server gives

    assert again.exit_code == 0, again.output
    assert_exact(db, texts)


# llmock refuses to cancel a finished batch with 400, where OpenAI answers 409


def test_cancel_after_the_batch_finished_keeps_what_it_finished(tmp_path: Path, llmock: LLMock) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db, n=8)
    submitted = run(db, "batch", "--no-wait")
    assert submitted.exit_code == 0, submitted.output
    job = job_id(db)
    (batch_id,) = [b for (b,) in fetch(db, f"SELECT batch_id FROM embedsql.shards WHERE job_id = '{job}'")]
    deadline = time.monotonic() + 60  # llmock finishes a batch 3 s after its creation
    while httpx.get(f"{llmock.base_url}/batches/{batch_id}").json()["status"] != "completed":
        assert time.monotonic() < deadline, "llmock never finished the batch"
        time.sleep(0.1)

    cancelled = embed("cancel", job, "--db", str(db))

    assert "Traceback" not in cancelled.output
    assert isinstance(cancelled.exception, SystemExit | None), cancelled.exception
    if cancelled.exit_code == 0:
        finished = run(db, "batch")  # what the batch finished is in the cache
    else:
        assert_kept_place(cancelled, db)
        finished = embed("resume", job, "--db", str(db))
    assert finished.exit_code == 0, finished.output
    assert llmock.statuses("POST", "/v1/batches") == [200]  # nothing paid for twice
    assert_exact(db, texts)
