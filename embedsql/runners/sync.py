"""The ``sync`` runner: a shard through the synchronous ``/v1/embeddings`` API, as fast as allowed.

For small jobs that should finish in seconds, and for servers that speak the embeddings API but
have no Batch API (vLLM, Ollama, TEI, LiteLLM). The shard's inputs are packed into requests (at most
``max_inputs`` inputs and 300,000 tokens each), sent by ``concurrency`` threads, paced by the
rate-limit headers of the answers (wait for the refill before sending what would be refused) and
retried after a 429 or 5xx as the server asks (``retry-after``). A request that fails for good
fails only its own inputs. The answers are written as Batch API output lines, like every runner's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RemoteError
from ..events import EventHandler
from ..files import atomic_write
from ..models import ModelInfo
from ..store import JobStore
from ..tokens import count_tokens
from .inprocess import drive_shards
from .lines import error_line, output_line, read_requests, write_line
from .openai import OpenAIClient, RateLimits, SyncAnswer, pack

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

    def drive(self, store: JobStore, on_event: EventHandler) -> None:
        """Embed every shard of the job in turn."""
        drive_shards(self, store, on_event)

    def close(self) -> None:
        """Close the API's connections."""
        self.api.close()

    def run_shard(self, shard: Path, output: Path, errors: Path, *, on_lines: Callable[[int], None]) -> None:
        """Write ``output`` and ``errors`` for every request line of ``shard``."""
        requests = [request for chunk in read_requests(shard, 10_000) for _, request in chunk]
        packs = self._packs(requests)
        # The error file lands first: both files present is what marks a shard computed.
        with (
            atomic_write(output, "w", encoding="utf-8") as out,
            atomic_write(errors, "w", encoding="utf-8") as err,
            ThreadPoolExecutor(max_workers=self.concurrency) as pool,
        ):
            futures = {pool.submit(self._send, pack): pack for pack in packs}
            for future in as_completed(futures):
                pack = futures[future]
                answer = future.result()
                if isinstance(answer, RemoteError):
                    for request in pack:
                        write_line(err, error_line(request, 0, answer.status or 500, None, str(answer)))
                else:
                    counts = count_tokens(self.model, [r["body"]["input"] for r in pack])
                    for request, vector, used in zip(pack, answer.vectors, counts, strict=True):
                        write_line(out, output_line(request, vector, int(used), self.model.name))
                on_lines(len(pack))

    def _packs(self, requests: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Requests grouped, in shard order, under the per-request input and token limits."""
        counts = count_tokens(self.model, [r["body"]["input"] for r in requests])
        return [requests[start:end] for start, end in pack(counts, max_inputs=self.max_inputs)]

    def _send(self, pack: list[dict[str, Any]]) -> SyncAnswer | RemoteError:
        texts = [r["body"]["input"] for r in pack]
        tokens = int(np.sum(count_tokens(self.model, texts)))
        for attempt in range(_RETRIES + 1):
            self.sleep(self.gate.wait_for(tokens))
            try:
                answer = self.api.embed_request(texts, model=self.model.name, dimensions=self.dimensions)
            except RemoteError as e:
                if not e.retryable or attempt == _RETRIES:
                    self.gate.backoff(0.0, tokens)
                    return e
                self.gate.backoff(e.retry_after if e.retry_after is not None else min(2.0**attempt, 60.0), tokens)
                continue
            self.gate.update(answer.limits, tokens)
            return answer
        raise AssertionError("unreachable")


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
