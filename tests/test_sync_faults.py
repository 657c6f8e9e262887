"""The sync runner's failure model: each fault of the service, at each moment, through the real SDK.

A failure of the service stops the job with its place kept, the user's target exactly as it was and a
one-line message naming the server; once the fault is gone, `embedsql resume JOB` ends with the exact
vectors, and no text answered with a vector is paid for twice. A failure of one text is that text's.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

import embedsql
from embedsql.cli import cli
from embedsql.errors import EmbedsqlError, RemoteError
from embedsql.events import Event, Progress
from embedsql.ledger import SCHEMA_VERSION
from embedsql.results import wrong_length
from embedsql.runners.failures import learned_token_limit
from embedsql.runners.openai import needs_key

import fake_openai.embeddings
from fake_openai import FakeOpenAI, expected_vector
from fake_openai.wire import Response
from helpers import FakeTime, fetch, texts_table, vectors_by_key

MODEL = "text-embedding-3-small"
QUERY = "select id, body from docs"
TARGET = "SELECT id, embedding FROM docs_embeddings ORDER BY id"
OLD = 5  # rows of docs_embeddings before the job that meets the fault
N = 40
KEEPS = "Job {job} keeps its place: continue it with `embedsql resume {job}`."
EMBEDDINGS = r"^/v1/embeddings$"


def warehouse(tmp_path: Path, fake_time: FakeTime, n: int = N) -> tuple[Path, dict[int, str]]:
    """Table docs of ``n`` texts, and a `replace` target docs_embeddings already holding the first ``OLD``."""
    db = tmp_path / "d.duckdb"
    texts = {i: f"fault text {i} {'xyz' * (i % 5)}" for i in range(n)}
    texts_table(db, texts)
    embedsql.run(f"{QUERY} where id < {OLD}", into="docs_embeddings", db=db, runner="sync", **fake_time)
    return db, texts


def job_of(db: Path) -> str:
    """The job that did not complete."""
    (job,) = fetch(db, "SELECT job_id FROM embedsql.jobs WHERE status <> 'complete'")
    return str(job[0])


def status(db: Path, job: str) -> str:
    return str(fetch(db, f"SELECT status FROM embedsql.jobs WHERE job_id = '{job}'")[0][0])


def embedding_statuses(server: FakeOpenAI) -> list[int]:
    return [s for method, path, s in server.requests if (method, path) == ("POST", "/v1/embeddings")]


def fails(server: FakeOpenAI, db: Path, fake_time: FakeTime, **settings: Any) -> EmbedsqlError:
    """The error that stops the job (through the library, on the server's clock)."""
    with pytest.raises(EmbedsqlError) as stopped:
        embedsql.run(QUERY, db=db, runner="sync", **{"max_inputs_per_request": 10, **settings}, **fake_time)
    return stopped.value


def cli_fails(db: Path, *args: str) -> str:
    """The last stderr line of a `run` that fails (exit 1), through the CLI."""
    result = CliRunner().invoke(
        cli, ["run", QUERY, "--db", str(db), "--runner", "sync", "--max-inputs-per-request", "10", *args]
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stderr.count("Error:") == 1
    return result.stderr.splitlines()[-1]


def finish(
    db: Path, job: str, texts: dict[int, str], fake_time: FakeTime, *, model: str = MODEL, dims: int = 1536
) -> None:
    """Resume ``job``: it completes with the exact vector of every key."""
    result = embedsql.resume(job, db=db, **fake_time)
    assert (result.status, result.target_rows, result.failed_texts) == ("complete", len(texts), 0)
    assert_exact(db, texts, model=model, dims=dims)


def assert_exact(db: Path, texts: dict[int, str], *, model: str = MODEL, dims: int = 1536) -> None:
    """docs_embeddings holds the exact vector of every key."""
    vectors = vectors_by_key(db, "docs_embeddings")
    assert sorted(vectors) == sorted(texts)  # type: ignore[type-var]
    for key, vector in vectors.items():
        np.testing.assert_array_equal(vector, expected_vector(model, texts[key], dims))  # type: ignore[index]


def billed_once(texts: dict[int, str], *servers: FakeOpenAI) -> bool:
    billed: Counter[str] = sum((s.inputs_by_text for s in servers), Counter())
    return all(billed[t] == 1 for t in texts.values())


# ---------------------------------------------------------------------------------------- not retried


@pytest.mark.parametrize("concurrency", ["1", "4"])
def test_a_refused_key_stops_at_the_first_request(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch, concurrency: str
) -> None:
    db, texts = warehouse(tmp_path, fake_time)
    before = fetch(db, TARGET)
    sent = len(embedding_statuses(openai_server))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-1234567890")

    line = cli_fails(db, "--concurrency", concurrency)

    job = job_of(db)
    assert line == (
        f"Error: OpenAI refused the API key (401 while trying to embed the texts at {openai_server.base_url}). "
        "Check OPENAI_API_KEY in the environment or .env: it may be mistyped, revoked, or for another project "
        f"(OPENAI_PROJECT_ID). {KEEPS.format(job=job)}"
    )
    assert "wrong-key" not in line
    # Never retried; with 4 threads, the requests already on the wire may be answered too.
    refused = embedding_statuses(openai_server)[sent:]
    assert refused == [401] * len(refused)
    assert 1 <= len(refused) <= int(concurrency)
    assert fetch(db, TARGET) == before
    assert status(db, job) == "prepared"
    monkeypatch.setenv("OPENAI_API_KEY", openai_server.api_key)
    finish(db, job, texts, fake_time)
    assert billed_once(texts, openai_server)


def test_a_model_the_server_lacks(tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime) -> None:
    db, texts = warehouse(tmp_path, fake_time)
    before = fetch(db, TARGET)
    del openai_server.models[MODEL]

    line = cli_fails(db, "--concurrency", "1")

    job = job_of(db)
    assert line == (
        f"Error: {openai_server.base_url} has no such endpoint or model (404 while trying to embed the texts): The "
        f"model `{MODEL}` does not exist or you do not have access to it. Check OPENAI_BASE_URL and --model / "
        f"EMBEDSQL_MODEL. {KEEPS.format(job=job)}"
    )
    assert embedding_statuses(openai_server)[-1:] == [404]
    assert fetch(db, TARGET) == before
    assert status(db, job) == "prepared"
    openai_server.models[MODEL] = 1536
    resumed = CliRunner().invoke(cli, ["resume", job, "--db", str(db)])
    assert resumed.exit_code == 0, resumed.output
    assert_exact(db, texts)
    assert billed_once(texts, openai_server)


@pytest.mark.parametrize(("status_code", "said"), [(404, "Not Found"), (405, "Method Not Allowed")])
def test_a_server_without_the_embeddings_endpoint(
    tmp_path: Path,
    openai_server: FakeOpenAI,
    fake_time: FakeTime,
    monkeypatch: pytest.MonkeyPatch,
    status_code: int,
    said: str,
) -> None:
    db, texts = warehouse(tmp_path, fake_time)
    before = fetch(db, TARGET)
    sent = len(embedding_statuses(openai_server))
    openai_server.remove_endpoint("POST", EMBEDDINGS, status=status_code)

    line = cli_fails(db)

    job = job_of(db)
    assert line == (
        f"Error: {openai_server.base_url} has no such endpoint or model ({status_code} while trying to embed the "
        f"texts): {said}. Check OPENAI_BASE_URL and --model / EMBEDSQL_MODEL. {KEEPS.format(job=job)}"
    )
    assert len(embedding_statuses(openai_server)) - sent <= 4  # at most the requests already on the wire
    assert fetch(db, TARGET) == before
    # The fix: the right server.
    with FakeOpenAI() as right:
        monkeypatch.setenv("OPENAI_BASE_URL", right.base_url)
        finish(db, job, texts, {"sleep": right.advance, "clock": right.now})
        assert billed_once(texts, openai_server, right)


def _later(rewrite: Callable[[int, Any], Any], skip: int) -> Callable[[int, Any], Any]:
    """``rewrite`` for the answer after the first ``skip`` (which go out as they are)."""
    seen = [0]

    def rewritten(status: int, body: Any) -> Any:
        seen[0] += 1
        return body if seen[0] <= skip else rewrite(status, body)

    return rewritten


def _items(change: Callable[[list[dict]], list[dict]]) -> Callable[[int, Any], Any]:
    return lambda status, body: {**body, "data": change(body["data"])}


def _short(items: list[dict]) -> list[dict]:
    return [{**item, "embedding": base64.b64encode(np.ones(12, "<f4").tobytes()).decode()} for item in items]


MALFORMED: dict[str, tuple[Callable[[int, Any], Any], str]] = {
    "a missing item": (_items(lambda data: data[:-1]), "answered 9 vectors for 10 inputs"),
    "an extra item": (
        _items(lambda data: [*data, {**data[0], "index": len(data)}]),
        "answered 11 vectors for 10 inputs",
    ),
    "an HTML page": (
        lambda status, body: Response(200, b"<html><body>Welcome to nginx!</body></html>", "text/html"),
        "answered an HTML page (text/html), not JSON",
    ),
    "an error object in a 200": (
        lambda status, body: {"error": {"message": "model is loading", "type": "server_error"}},
        "answered 200 with an error object (model is loading)",
    ),
    "JSON that is not an embeddings list": (
        lambda status, body: {"object": "list", "results": body["data"]},
        "answered JSON that is not an embeddings list",
    ),
    "empty data": (_items(lambda data: []), "answered 0 vectors for 10 inputs"),
    "short vectors": (_items(_short), "answered 12 dimensions for every text, the job asked for 1536 (model "),
    "a null vector": (
        _items(lambda data: [{**data[0], "embedding": None}, *data[1:]]),
        "answered null as the vector of item 0",
    ),
    "an item without index": (
        _items(lambda data: [{k: v for k, v in data[0].items() if k != "index"}, *data[1:]]),
        "answered an item without a valid index (null)",
    ),
    "a duplicated index": (
        _items(lambda data: [data[0], {**data[1], "index": 0}, *data[2:]]),
        "answered index 0 twice",
    ),
}


@pytest.mark.parametrize("skip", [0, 2], ids=["first request", "third request"])
@pytest.mark.parametrize("fault", list(MALFORMED))
def test_a_malformed_answer_stops_the_job(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, fault: str, skip: int
) -> None:
    db, texts = warehouse(tmp_path, fake_time)
    before = fetch(db, TARGET)
    sent = len(embedding_statuses(openai_server))
    rewrite, what = MALFORMED[fault]
    openai_server.rewrite_answers("POST", EMBEDDINGS, _later(rewrite, skip), times=skip + 1)

    line = cli_fails(db, "--concurrency", "1")

    job = job_of(db)
    suffix = (
        "it embeds with another model or size: check --model, --dimensions and --base-url."
        if fault == "short vectors"
        else "Check that OPENAI_BASE_URL / --base-url points at an OpenAI-compatible embeddings API."
    )
    assert line.startswith(f"Error: the server at {openai_server.base_url} {what}")
    assert line.endswith(f"{suffix} {KEEPS.format(job=job)}")
    # Stopped at once: no request after the malformed answer.
    assert embedding_statuses(openai_server)[sent:] == [200] * (skip + 1)
    assert fetch(db, TARGET) == before
    assert status(db, job) == "prepared"
    # The vectors received before are kept: only the garbled request's 10 texts are paid for again.
    finish(db, job, texts, fake_time)
    billed = Counter(openai_server.inputs_by_text[t] for t in texts.values())
    assert billed == Counter({1: N - 10, 2: 10})


# ---------------------------------------------------------------------------------------- retried


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_server_that_went_away(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch, concurrency: int
) -> None:
    db, texts = warehouse(tmp_path, fake_time)
    before = fetch(db, TARGET)
    base = openai_server.base_url
    openai_server.stop()

    error = fails(openai_server, db, fake_time, concurrency=concurrency)

    job = job_of(db)
    assert str(error) == (
        f"could not reach the OpenAI API at {base} to embed the texts (APIConnectionError). Check the network and "
        f"OPENAI_BASE_URL. {KEEPS.format(job=job)}"
    )
    assert fetch(db, TARGET) == before
    assert status(db, job) == "prepared"
    with FakeOpenAI() as back:
        monkeypatch.setenv("OPENAI_BASE_URL", back.base_url)
        finish(db, job, texts, {"sleep": back.advance, "clock": back.now})
        assert billed_once(texts, openai_server, back)


@pytest.mark.parametrize(
    "address", ["http://127.0.0.1:9/v1", "http://no-such-host.invalid/v1"], ids=["closed port", "unknown host"]
)
def test_an_address_nothing_answers_at(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, address: str
) -> None:
    db, texts = warehouse(tmp_path, fake_time)
    before = fetch(db, TARGET)

    error = fails(openai_server, db, fake_time, openai_base_url=address)

    job = job_of(db)
    assert str(error) == (
        f"could not reach the OpenAI API at {address} to embed the texts (APIConnectionError). Check "
        f"the network and OPENAI_BASE_URL. {KEEPS.format(job=job)}"
    )
    assert fetch(db, TARGET) == before
    finish(db, job, texts, fake_time)
    assert billed_once(texts, openai_server)


def progress_of(events: list[Progress]) -> Callable[[Event], None]:
    """An event handler that keeps the embedding progress events."""
    return lambda event: events.append(event) if isinstance(event, Progress) and event.stage == "embed" else None


def _after(server: FakeOpenAI, answered: int, arm: Callable[[], None]) -> None:
    """Arm a fault once ``answered`` embeddings requests were answered (at once for 0), whatever the threads."""
    if answered == 0:
        arm()
        return

    def counting(status: int, body: Any) -> Any:
        counting.seen += 1  # type: ignore[attr-defined]
        if counting.seen == answered:  # type: ignore[attr-defined]
            arm()  # under the server's lock: no other request slips in between
        return body

    counting.seen = 0  # type: ignore[attr-defined]
    server.rewrite_answers("POST", EMBEDDINGS, counting, times=answered)


OUTAGES = {
    503: "OpenAI had a server error (503 while trying to embed the texts at {base}): The server is overloaded or not "
    "ready yet.",
    0: "could not reach the OpenAI API at {base} to embed the texts (APIConnectionError). Check the network and "
    "OPENAI_BASE_URL.",
}


@pytest.mark.parametrize("answer", list(OUTAGES), ids=["503", "connection closed"])
@pytest.mark.parametrize("moment", [0, 2], ids=["from the start", "after 2 requests"])
@pytest.mark.parametrize("concurrency", [1, 3])
def test_an_outage_longer_than_the_retries(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, moment: int, concurrency: int, answer: int
) -> None:
    db, texts = warehouse(tmp_path, fake_time)
    before = fetch(db, TARGET)
    _after(openai_server, moment, lambda: openai_server.outage("POST", EMBEDDINGS, 3 * 3600, status=answer))

    progress: list[Progress] = []
    error = fails(openai_server, db, fake_time, concurrency=concurrency, on_event=progress_of(progress))

    job = job_of(db)
    assert isinstance(error, RemoteError)
    # Progress counts the texts embedded, not those the outage kept from being sent: those of the requests
    # answered before it, of 10 texts each, or (three threads: 10, 10, 10, 5) 10 and the last 5 if that
    # one was answered second.
    embedded = fetch(db, f"SELECT coalesce(sum(embedded), 0) FROM embedsql.shards WHERE job_id = '{job}'")[0][0]
    assert progress[-1].done == embedded
    assert embedded in ({10 * moment, 15} if moment and concurrency > 1 else {10 * moment})
    assert progress[-1].total == N - OLD
    assert str(error) == f"{OUTAGES[answer].format(base=openai_server.base_url)} {KEEPS.format(job=job)}"
    assert fetch(db, TARGET) == before
    assert status(db, job) == "prepared"
    # The vectors of the requests answered before the outage are in the cache already.
    assert fetch(db, f"SELECT count(*) FROM embedsql.shards WHERE job_id = '{job}' AND embedded > 0") == [
        (1 if moment else 0,)
    ]
    openai_server.advance(3 * 3600)
    finish(db, job, texts, fake_time)
    assert billed_once(texts, openai_server)


def test_an_outage_of_a_minute_is_waited_out(tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime) -> None:
    db, texts = warehouse(tmp_path, fake_time)
    openai_server.outage("POST", EMBEDDINGS, 60)

    result = embedsql.run(QUERY, db=db, runner="sync", max_inputs_per_request=10, concurrency=1, **fake_time)

    assert (result.status, result.target_rows) == ("complete", N)
    assert billed_once(texts, openai_server)


def test_rate_limited_beyond_the_retries(tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime) -> None:
    db, texts = warehouse(tmp_path, fake_time)
    before = fetch(db, TARGET)
    openai_server.fail_requests("POST", EMBEDDINGS, 429, times=1000, retry_after=30)

    error = fails(openai_server, db, fake_time, concurrency=2)

    job = job_of(db)
    assert str(error).startswith(
        f"OpenAI kept answering 429 (rate limit) while trying to embed the texts at {openai_server.base_url}: "
    )
    assert str(error).endswith(f"Wait a while before going on. {KEEPS.format(job=job)}")
    assert fetch(db, TARGET) == before
    openai_server._request_faults.clear()  # the rate limit is over
    finish(db, job, texts, fake_time)
    assert billed_once(texts, openai_server)


# ---------------------------------------------------------------------------------------- content


def test_an_input_over_the_servers_limit_fails_alone(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    db, texts = warehouse(tmp_path, fake_time)
    long_key = 17
    texts[long_key] = "word " * 60
    con_texts = dict(texts)
    import duckdb

    con = duckdb.connect(str(db))
    con.execute("UPDATE docs SET body = ? WHERE id = ?", [con_texts[long_key], long_key])
    con.close()
    openai_server.input_token_limits[MODEL] = 50

    result = CliRunner().invoke(
        cli, ["run", QUERY, "--db", str(db), "--runner", "sync", "--max-inputs-per-request", "10", "--concurrency", "1"]
    )

    assert result.exit_code == 1, result.output
    assert "  failed                   1 (see table embedsql.errors)\n" in result.stdout
    assert fetch(db, "SELECT count(*) FROM docs_embeddings") == [(N - 1,)]
    assert fetch(db, "SELECT status, code, message FROM embedsql.errors") == [
        (
            400,
            "input_too_long",
            f"OpenAI refused the request (400 while trying to embed the texts at {openai_server.base_url}): This "
            "model's maximum context length is 50 tokens. However, you requested 61 tokens in the input for "
            "embedding generation. Please reduce the length of the input. The server takes at most 50 tokens per "
            "input: pass --max-input-tokens 50 --on-long truncate (or EMBEDSQL_MAX_INPUT_TOKENS=50) to cut such "
            "texts, or shorten them.",
        )
    ]
    assert billed_once({k: t for k, t in texts.items() if k != long_key}, openai_server)


def test_a_server_that_refuses_dimensions_is_not_blamed_on_the_texts(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "d.duckdb"
    texts = {i: f"dimension text {i}" for i in range(12)}
    texts_table(db, texts)
    openai_server.models["nomic-embed-text"] = 768
    monkeypatch.setattr(fake_openai.embeddings, "FIXED_DIMENSIONS", frozenset({"nomic-embed-text"}))

    line = cli_fails(db, "--model", "nomic-embed-text", "--dimensions", "256", "--concurrency", "1")

    job = job_of(db)
    assert line == (
        f"Error: OpenAI refused the request (400 while trying to embed the texts at {openai_server.base_url}): This "
        "model does not support specifying dimensions. Even a request of one short text is refused, so it is not "
        "about the texts: check --model, --dimensions / EMBEDSQL_DIMENSIONS and --base-url. "
        f"{KEEPS.format(job=job)}"
    )
    assert fetch(db, "SELECT count(*) FROM embedsql.errors") == [(0,)]
    assert status(db, job) == "prepared"


# ---------------------------------------------------------------------------------------- other servers


def test_a_server_that_needs_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "d.duckdb"
    texts = {i: f"keyless text {i}" for i in range(12)}
    texts_table(db, texts)
    with FakeOpenAI(api_key=None) as server:
        server.models["nomic-embed-text"] = 768
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)

        result = CliRunner().invoke(
            cli, ["run", QUERY, "--db", str(db), "--runner", "sync", "--model", "nomic-embed-text"]
        )

        assert result.exit_code == 0, result.output
        assert "no-key" not in result.output
        hits = embedsql.search(texts[3], table="docs_embeddings", k=1, db=db)
        assert hits["id"].to_pylist() == [3]
        found = CliRunner().invoke(cli, ["search", texts[4], "--table", "docs_embeddings", "--db", str(db), "-k", "1"])
        assert found.exit_code == 0, found.output
    vectors = vectors_by_key(db, "docs_embeddings")
    for key, vector in vectors.items():
        np.testing.assert_array_equal(vector, expected_vector("nomic-embed-text", texts[key], 768))  # type: ignore[index]


def test_without_a_base_url_a_key_is_still_needed(tmp_path: Path) -> None:
    db = tmp_path / "d.duckdb"
    texts_table(db, {1: "a text"})

    result = CliRunner().invoke(cli, ["run", QUERY, "--db", str(db), "--runner", "sync", "--model", MODEL])

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: model {MODEL} runs on the OpenAI API, which needs a key. Set OPENAI_API_KEY in the environment or "
        "in .env, or use the offline model (--model all-MiniLM-L6-v2)."
    )


def test_the_bundled_models_name_served_by_a_server(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "d.duckdb"
    texts = {i: f"minilm text {i}" for i in range(12)}
    texts_table(db, texts)
    openai_server.models["all-MiniLM-L6-v2"] = 384

    result = CliRunner().invoke(
        cli,
        [
            "run",
            QUERY,
            "--db",
            str(db),
            "--runner",
            "sync",
            "--model",
            "all-MiniLM-L6-v2",
            "--base-url",
            openai_server.base_url,
        ],
    )

    assert result.exit_code == 0, result.output
    assert fetch(db, "SELECT model, dimensions FROM embedsql.targets") == [("all-MiniLM-L6-v2", 384)]
    assert fetch(db, "SELECT runner FROM embedsql.jobs") == [("sync",)]
    for key, vector in vectors_by_key(db, "docs_embeddings").items():
        np.testing.assert_array_equal(vector, expected_vector("all-MiniLM-L6-v2", texts[key], 384))  # type: ignore[index]
    assert billed_once(texts, openai_server)


def test_the_limit_a_server_said_truncates_long_texts_when_set(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "d.duckdb"
    texts = {1: "word " * 60, 2: "a short text"}
    texts_table(db, texts)
    openai_server.models["nomic-embed-text"] = 768
    openai_server.input_token_limits["nomic-embed-text"] = 50
    args = ["run", QUERY, "--db", str(db), "--runner", "sync", "--model", "nomic-embed-text"]

    result = CliRunner().invoke(cli, [*args, "--max-input-tokens", "50", "--on-long", "truncate"])

    assert result.exit_code == 0, result.output
    assert fetch(db, "SELECT count(*) FROM docs_embeddings") == [(2,)]
    assert fetch(db, "SELECT count(*) FROM embedsql.errors") == [(0,)]
    assert openai_server.inputs_by_text[texts[2]] == 1
    assert max(len(t.split()) for t in openai_server.inputs_by_text) <= 50


def test_access_denied_stops_at_once(tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime) -> None:
    db, texts = warehouse(tmp_path, fake_time)
    before = fetch(db, TARGET)
    sent = len(embedding_statuses(openai_server))
    openai_server.fail_requests("POST", EMBEDDINGS, 403, times=1000)

    line = cli_fails(db, "--concurrency", "1")

    job = job_of(db)
    assert line == (
        f"Error: OpenAI denied access (403 while trying to embed the texts at {openai_server.base_url}): Country, "
        "region, or territory not supported. Check that the key's project may use the Batch API and this model. "
        f"{KEEPS.format(job=job)}"
    )
    assert embedding_statuses(openai_server)[sent:] == [403]
    assert fetch(db, TARGET) == before
    openai_server._request_faults.clear()  # access granted
    finish(db, job, texts, fake_time)
    assert billed_once(texts, openai_server)


def _one_item(embedding: Callable[[], np.ndarray]) -> Callable[[int, Any], Any]:
    packed = lambda: base64.b64encode(embedding().astype("<f4").tobytes()).decode()  # noqa: E731
    return _items(lambda data: [data[0], {**data[1], "embedding": packed()}, *data[2:]])


@pytest.mark.parametrize(
    ("vector", "code", "reason"),
    [
        (lambda: np.zeros(1536), "invalid_vector", "the vector is zero or not finite"),
        (lambda: np.full(1536, np.nan), "invalid_vector", "the vector is zero or not finite"),
        (lambda: np.ones(12), "wrong_dimensions", wrong_length(12, 1536)),
    ],
    ids=["zero", "NaN", "another length"],
)
def test_a_vector_the_server_cannot_give_for_one_text_fails_that_text(
    tmp_path: Path,
    openai_server: FakeOpenAI,
    fake_time: FakeTime,
    vector: Callable[[], np.ndarray],
    code: str,
    reason: str,
) -> None:
    db, texts = warehouse(tmp_path, fake_time)
    openai_server.rewrite_answers("POST", EMBEDDINGS, _one_item(vector))

    result = embedsql.run(QUERY, db=db, runner="sync", max_inputs_per_request=10, concurrency=1, **fake_time)

    # That text alone failed (one attempt of its own used up), in the words the batch runner uses too; the
    # other texts of its request were written, and it was asked again and got its vector.
    assert (result.status, result.target_rows, result.failed_texts) == ("complete", N, 0)
    assert fetch(db, "SELECT status, code, message, final FROM embedsql.errors") == [(200, code, reason, False)]
    assert_exact(db, texts)


def test_a_server_that_does_not_answer_in_time(tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime) -> None:
    db, texts = warehouse(tmp_path, fake_time)
    before = fetch(db, TARGET)
    # Every try of the first request (1 + 8 retries) waits far longer than the client does.
    openai_server.delay_responses("POST", EMBEDDINGS, 30, times=9)

    error = fails(openai_server, db, fake_time, concurrency=1, openai_timeout=0.2)

    job = job_of(db)
    assert str(error) == (
        f"the OpenAI API at {openai_server.base_url} did not answer in time to embed the texts (APITimeoutError). "
        "Check the network and OPENAI_BASE_URL, or allow more time with EMBEDSQL_OPENAI_TIMEOUT. "
        f"{KEEPS.format(job=job)}"
    )
    assert fetch(db, TARGET) == before
    finish(db, job, texts, fake_time)  # (a server that answers late bills each try: no way to know)


def test_a_service_failure_in_a_later_shard(tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime) -> None:
    db, texts = warehouse(tmp_path, fake_time)
    before = fetch(db, TARGET)
    _after(openai_server, 2, lambda: openai_server.remove_endpoint("POST", EMBEDDINGS, status=405))

    error = fails(openai_server, db, fake_time, concurrency=1, max_shard_lines=10)

    job = job_of(db)
    assert str(error) == (
        f"{openai_server.base_url} has no such endpoint or model (405 while trying to embed the texts): Method Not "
        f"Allowed. Check OPENAI_BASE_URL and --model / EMBEDSQL_MODEL. {KEEPS.format(job=job)}"
    )
    # Two shards of 10 were answered and loaded; the third stopped at its first request and was loaded with
    # its 10 texts in a new shard of the same attempt; the last shard of 5 was not sent.
    assert embedding_statuses(openai_server)[-3:] == [200, 200, 405]
    assert fetch(
        db, f"SELECT status, count(*) FROM embedsql.shards WHERE job_id = '{job}' GROUP BY ALL ORDER BY 1"
    ) == [
        ("loaded", 3),
        ("written", 2),
    ]
    assert fetch(
        db, f"SELECT lines, attempt FROM embedsql.shards WHERE job_id = '{job}' AND status = 'written' ORDER BY shard"
    ) == [
        (5, 1),
        (10, 2),  # the next round, though it used up no attempt of its texts (they have no row in errors)
    ]
    assert fetch(db, TARGET) == before
    openai_server._request_faults.clear()  # the endpoint is back
    finish(db, job, texts, fake_time)
    assert billed_once(texts, openai_server)


@pytest.mark.parametrize(
    ("said", "limit"),
    [
        ("This model's maximum context length is 8192 tokens, however you requested 9000 tokens", 8192),
        ("This model's maximum context length is 256 tokens. However, you requested 300 tokens in the input", 256),
        ("Input validation error: `inputs` must have less than 512 tokens. Given: 600", 512),
        ("'$.input' is invalid. Please check the API reference", None),
    ],
    ids=["OpenAI", "vLLM", "TEI", "no limit said"],
)
def test_the_limit_is_learned_from_each_servers_words(said: str, limit: int | None) -> None:
    assert learned_token_limit(said) == limit


@pytest.mark.parametrize(
    ("base_url", "needed"),
    [
        (None, True),
        ("https://api.openai.com/v1", True),
        ("https://eu.api.openai.com/v1", True),
        ("http://localhost:11434/v1", False),
        ("localhost:8000/v1", False),
        ("https://openai.com.example.org/v1", False),
    ],
)
def test_only_openai_needs_a_key(base_url: str | None, needed: bool) -> None:
    assert needs_key(base_url) is needed


# ---------------------------------------------------------------------------------------- where a job goes on


def test_a_job_goes_on_at_the_server_it_was_sent_to(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--base-url given only to `run`: resume and cancel go on there, never at OpenAI's own API."""
    db, texts = warehouse(tmp_path, fake_time)
    monkeypatch.delenv("OPENAI_BASE_URL")
    openai_server.outage("POST", EMBEDDINGS, 3600)

    error = fails(openai_server, db, fake_time, concurrency=1, openai_base_url=openai_server.base_url)

    job = job_of(db)
    assert str(error).startswith(
        f"OpenAI had a server error (503 while trying to embed the texts at {openai_server.base_url})"
    )
    assert fetch(db, f"SELECT base_url FROM embedsql.jobs WHERE job_id = '{job}'") == [(openai_server.base_url,)]
    openai_server.advance(3600)  # the server is back
    served = len(openai_server.requests)
    finish(db, job, texts, fake_time)
    assert len(openai_server.requests) > served
    assert billed_once(texts, openai_server)


def test_a_server_that_moved_is_named_when_the_job_goes_on(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, texts = warehouse(tmp_path, fake_time)
    monkeypatch.delenv("OPENAI_BASE_URL")
    fails(openai_server, db, fake_time, concurrency=1, openai_base_url="http://127.0.0.1:9/v1")  # nothing there
    job = job_of(db)

    result = embedsql.resume(job, db=db, openai_base_url=openai_server.base_url, **fake_time)

    assert (result.status, result.target_rows) == ("complete", len(texts))
    assert_exact(db, texts)


def test_a_ledger_of_version_1_gains_the_address_of_each_job(
    tmp_path: Path, openai_server: FakeOpenAI, fake_time: FakeTime
) -> None:
    db, texts = warehouse(tmp_path, fake_time)
    con = duckdb.connect(str(db))
    try:  # the ledger as embedsql 0.1 with schema version 1 left it
        con.execute("ALTER TABLE embedsql.jobs DROP COLUMN base_url")
        con.execute("ALTER TABLE embedsql.shards DROP COLUMN billed_tokens")
        con.execute("DROP TABLE embedsql.maps")
        con.execute("UPDATE embedsql.meta SET value = '1' WHERE key = 'schema_version'")
        (old_job,) = con.execute("SELECT job_id FROM embedsql.jobs").fetchone() or ("",)
    finally:
        con.close()
    before = db.read_bytes()
    # The commands that only read show it as it is, and leave it as it is.
    listed = CliRunner().invoke(cli, ["jobs", "--db", str(db)])
    shown = CliRunner().invoke(cli, ["status", old_job, "--db", str(db)])
    assert (listed.exit_code, shown.exit_code) == (0, 0), listed.output + shown.output
    assert old_job in listed.stdout
    assert db.read_bytes() == before

    result = embedsql.run(QUERY, db=db, runner="sync", **fake_time)

    assert (result.status, result.target_rows) == ("complete", len(texts))
    assert fetch(db, "SELECT value FROM embedsql.meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert fetch(db, "SELECT count(*) FROM embedsql.maps") == [(0,)]
    assert fetch(db, "SELECT count(*), count(base_url) FROM embedsql.jobs") == [(2, 1)]
    assert_exact(db, texts)
