"""The ``sync`` runner: a shard through the synchronous ``/v1/embeddings`` API, as fast as allowed.

For small jobs that should finish in seconds, and for servers that speak the embeddings API but
have no Batch API (vLLM, Ollama, TEI, LiteLLM). The shard's inputs are packed into requests (at most
``max_inputs`` inputs and 300,000 tokens each), sent by ``concurrency`` threads, paced by the
rate-limit headers of the answers (wait for the refill before sending what would be refused) and
retried after a 429 or 5xx as the server asks (``retry-after``). Whether a failure is a text's or the
service's is decided as ``runners.failures`` says: a refused request is split until the refused texts
are found; a service failure stops the shard and then the job. The answers are written as Batch API
output lines, like every runner's, each with its share of the tokens the server billed.

Tokens are counted only where a count must be exact: packing counts the texts of a request whose
bytes could exceed the limit (``pack``), pacing counts a request's texts once the server says it
limits tokens, and the lines' usage is the server's own figure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import RemoteError
from ..events import EventHandler
from ..files import atomic_write
from ..models import ModelInfo
from ..results import WRONG_LENGTH, wrong_length
from ..store import JobStore
from ..tokens import count_tokens
from .failures import NOT_SENT, is_content, learned_token_limit, long_input_advice
from .inprocess import drive_shards
from .lines import error_line, output_line, read_requests, write_line
from .openai import OpenAIClient, RateLimits, SyncAnswer, pack, utf8_lengths

__all__ = ["SyncRunner"]

# Retries of one request that keeps failing for a transient reason, before its inputs fail.
_RETRIES = 8


class SyncRunner:
    """Embeds shards with concurrent, rate-limited /v1/embeddings requests."""

    def __init__(
        self,
        api: OpenAIClient,
        model: ModelInfo,
        *,
        dimensions: int | None,
        concurrency: int,
        max_inputs: int,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.model = model
        self.dimensions = dimensions
        self.concurrency = concurrency
        self.max_inputs = max_inputs
        self.sleep = sleep
        self.gate = _RateGate(clock)
        # The verdict of the probe request (see _probe), asked at most once.
        self.probe_lock = threading.Lock()
        self.probed = False
        self.refused: RemoteError | None = None

    def drive(self, store: JobStore, on_event: EventHandler) -> None:
        """Embed every shard of the job in turn."""
        drive_shards(self, store, on_event)

    def close(self) -> None:
        """Close the API's connections."""
        self.api.close()

    def run_shard(self, shard: Path, output: Path, errors: Path, *, on_lines: Callable[[int], None]) -> None:
        """Write ``output`` and ``errors`` for every request line of ``shard``.

        A service failure (see ``runners.failures``) stops the sending: the files still get every vector
        received and a ``NOT_SENT`` line for each input not sent, and then the failure is raised.
        """
        requests = [request for chunk in read_requests(shard, 10_000) for _, request in chunk]
        # Every thread gets a request: a shard of 4,096 lines in requests of 2,048 inputs would keep two
        # of --concurrency threads busy and the rest idle.
        per_thread = -(-len(requests) // self.concurrency)
        inputs = max(1, min(self.max_inputs, per_thread))
        bounds = pack(self.model, [r["body"]["input"] for r in requests], max_inputs=inputs)
        stop = _Stop()
        # The error file lands first: both files present is what marks a shard computed.
        with (
            atomic_write(output, "w", encoding="utf-8") as out,
            atomic_write(errors, "w", encoding="utf-8") as err,
            ThreadPoolExecutor(max_workers=self.concurrency) as pool,
        ):
            futures = [pool.submit(self._lines, requests[start:end], stop) for start, end in bounds]
            for future in as_completed(futures):
                written, failed, answered = future.result()
                # One write per request: each system call lets the sending threads take the GIL, and
                # getting it back waits out their switch interval.
                out.write(written)
                for line in failed:
                    write_line(err, line)
                on_lines(answered)
        if stop.error is not None:
            raise stop.error

    def _lines(self, pack: list[dict[str, Any]], stop: _Stop) -> tuple[str, list[dict[str, Any]], int]:
        """The output lines of ``pack`` (as one text), its error lines, and how many inputs got an answer.

        Made by the sending thread itself: the thread that writes the files then only writes.
        """
        outcomes = self._embed(pack, stop)
        written = "".join(
            output_line(request, o.vector, o.tokens, self.model.name, encoded=o.encoded)
            for request, o in outcomes
            if isinstance(o, _Done)
        )
        failed = [
            error_line(request, 0, o.status, o.code, o.message) for request, o in outcomes if isinstance(o, _Failed)
        ]
        answered = sum(1 for _, o in outcomes if not (isinstance(o, _Failed) and o.code == NOT_SENT))
        return written, failed, answered

    def _embed(self, pack: list[dict[str, Any]], stop: _Stop) -> list[tuple[dict[str, Any], _Outcome]]:
        """Each request of ``pack`` with its vector or its failure; a refused request is split in halves
        until the inputs refused are found (see ``runners.failures``)."""
        texts = [r["body"]["input"] for r in pack]
        try:
            answer = self._send(texts, stop)
        except RemoteError as e:
            if is_content(e) and len(pack) > 1:
                half = len(pack) // 2
                return self._embed(pack[:half], stop) + self._embed(pack[half:], stop)
            refused = self._probe(stop) if is_content(e) else e
            if refused is None:
                return [(pack[0], _content_failure(e))]
            stop.fail(refused)
            answer = None
        if answer is None:
            return [(r, _NOT_SENT) for r in pack]
        expected = self.dimensions or self.model.dimensions
        lengths = {len(v) for v in answer.vectors}
        if expected and lengths != {expected} and len(lengths) == 1:
            stop.fail(
                RemoteError(
                    f"the server at {self.api.base_url} answered {lengths.pop()} dimensions for every text, the job "
                    f"asked for {expected} (model {self.model.name}); it embeds with another model or size: check "
                    "--model, --dimensions and --base-url."
                )
            )
            return [(r, _NOT_SENT) for r in pack]
        tokens = _usage(self.model, texts, answer.tokens)
        # A vector of another length than its neighbours' is that one text's failure.
        return [
            (r, _Done(v, e, t) if not expected or len(v) == expected else _wrong_length(len(v), expected))
            for r, v, e, t in zip(pack, answer.vectors, answer.encoded, tokens, strict=True)
        ]

    def _probe(self, stop: _Stop) -> RemoteError | None:
        """Whether the server refuses any request of this model and size, even one of a short text: the
        service failure if it does (the refusal was not about the texts), else None. Asked once."""
        with self.probe_lock:
            if self.probed:
                return self.refused
            try:
                if self._send([_PROBE], stop) is None:
                    return stop.error
            except RemoteError as e:
                self.refused = (
                    RemoteError(
                        f"{e} Even a request of one short text is refused, so it is not about the texts: check "
                        "--model, --dimensions / EMBEDSQL_DIMENSIONS and --base-url.",
                        status=e.status,
                    )
                    if is_content(e)
                    else e
                )
            self.probed = True
            return self.refused

    def _send(self, texts: list[str], stop: _Stop) -> SyncAnswer | None:
        """One request, retried after a transient failure as the server asks; None if the shard was
        stopped meanwhile (the request not sent)."""
        tokens = 0
        for attempt in range(_RETRIES + 1):
            # Counted only once the server has said it limits tokens, and then exactly: an estimate too
            # low would be refused, one too high would waste what the limit allows.
            if not tokens and self.gate.limits_tokens:
                tokens = int(np.sum(count_tokens(self.model, texts)))
            self.sleep(self.gate.wait_for(tokens))
            if stop.error is not None:
                self.gate.backoff(0.0, tokens)
                return None
            try:
                answer = self.api.embed_request(texts, model=self.model.name, dimensions=self.dimensions, tried=attempt)
            except RemoteError as e:
                if not e.retryable or attempt == _RETRIES:
                    self.gate.backoff(0.0, tokens)
                    raise
                self.gate.backoff(e.retry_after if e.retry_after is not None else min(2.0**attempt, 60.0), tokens)
                continue
            self.gate.update(answer.limits, tokens)
            return answer
        raise AssertionError("unreachable")


def _usage(model: ModelInfo, texts: list[str], billed: int | None) -> list[int]:
    """The tokens of each text's output line: what the server ``billed`` for the request, shared out in
    proportion to the texts' UTF-8 bytes (largest remainders), so that the lines add up to exactly
    that; when the server did not say, each text's own count."""
    if billed is None:
        return [int(n) for n in count_tokens(model, texts)]
    sizes = utf8_lengths(texts)
    total = int(sizes.sum())
    if total == 0:
        sizes, total = np.ones(len(texts), dtype=np.int64), len(texts)
    shares, remainders = np.divmod(sizes * billed, total)
    # The tokens left over go one each to the texts with the largest remainders (the first on a tie).
    shares[np.argsort(-remainders, kind="stable")[: billed - int(shares.sum())]] += 1
    return shares.tolist()


# The text of the probe request that tells a refused request from refused texts.
_PROBE = "probe"


@dataclass(frozen=True)
class _Failed:
    """An input that got no vector: the error line it gets."""

    status: int | None
    code: str | None
    message: str


class _Done(NamedTuple):
    """An input that got its vector: what its output line says."""

    vector: np.ndarray
    encoded: str | None  # the vector's base64 text as the server sent it
    tokens: int


_Outcome = _Done | _Failed
_NOT_SENT = _Failed(None, NOT_SENT, "not sent: the service failed before this input was sent")


def _wrong_length(length: int, expected: int) -> _Failed:
    return _Failed(200, WRONG_LENGTH, wrong_length(length, expected))


def _content_failure(error: RemoteError) -> _Failed:
    """The failure of the one input that ``error`` refused, with the fix when the server said its limit."""
    message = str(error)
    limit = learned_token_limit(message)
    if limit is not None:
        return _Failed(error.status, "input_too_long", f"{message} {long_input_advice(limit)}")
    return _Failed(error.status, None, message)


class _Stop:
    """The service failure that stopped a shard (the first one), seen by every sending thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.error: RemoteError | None = None

    def fail(self, error: RemoteError) -> None:
        with self.lock:
            if self.error is None:
                self.error = error


class _Bucket:
    """One rate limit as the server reports it: a bucket of ``limit`` a minute, refilling steadily."""

    def __init__(self) -> None:
        self.limit: float | None = None
        self.level = 0.0  # what the server said was left, at time `seen`
        self.seen = 0.0
        self.in_flight = 0.0  # spent by requests sent but not answered yet

    def available(self, now: float) -> float | None:
        if self.limit is None:
            return None
        return min(self.limit, self.level + self.limit / 60 * (now - self.seen)) - self.in_flight

    def observe(self, limit: float, remaining: float, now: float) -> None:
        """Take in what an answer says is left. Answers of concurrent requests arrive in any order, and
        an answer that the server wrote before another one was admitted reports more than is left now:
        so a report only ever lowers the estimate (refilling raises it), unless the limit itself changed.
        """
        if self.limit != limit:
            self.limit, self.level = limit, remaining
        else:
            estimate = min(limit, self.level + limit / 60 * (now - self.seen))
            self.level = min(remaining, estimate)
        self.seen = now

    def wait(self, now: float, cost: float) -> float:
        """Seconds until ``cost`` is available (0 when it is, or when the limit is unknown)."""
        available = self.available(now)
        if available is None or available >= cost or self.limit is None or self.limit <= 0:
            return 0.0
        return (cost - available) / (self.limit / 60)


class _RateGate:
    """The server's rate limits as its answers report them, shared by the sending threads.

    Before a request, ``wait_for`` says how long to wait so that it will not be refused, and counts
    it as in flight (so that other threads do not spend the same tokens); ``update`` records the
    answer's headers; after a 429, ``backoff`` holds every thread back for ``retry-after``.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.tokens = _Bucket()
        self.requests = _Bucket()
        self.not_before = 0.0

    @property
    def limits_tokens(self) -> bool:
        """Whether the server has said that it limits tokens per minute."""
        return self.tokens.limit is not None

    def wait_for(self, tokens: int) -> float:
        with self.lock:
            now = self.clock()
            wait = max(self.not_before - now, self.tokens.wait(now, tokens), self.requests.wait(now, 1), 0.0)
            self.tokens.in_flight += tokens
            self.requests.in_flight += 1
            return wait

    def update(self, limits: RateLimits, tokens: int) -> None:
        with self.lock:
            now = self.clock()
            for bucket, limit, remaining, cost in (
                (self.tokens, limits.limit_tokens, limits.remaining_tokens, tokens),
                (self.requests, limits.limit_requests, limits.remaining_requests, 1),
            ):
                bucket.in_flight = max(0.0, bucket.in_flight - cost)
                if limit is not None and remaining is not None:
                    bucket.observe(float(limit), float(remaining), now)

    def backoff(self, seconds: float, tokens: int) -> None:
        with self.lock:
            self.not_before = max(self.not_before, self.clock() + seconds)
            self.tokens.in_flight = max(0.0, self.tokens.in_flight - tokens)
            self.requests.in_flight = max(0.0, self.requests.in_flight - 1)
