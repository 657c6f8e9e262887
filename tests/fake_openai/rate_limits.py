"""The rate limiter of ``POST /v1/embeddings``: a token bucket per model and limit, on the fake clock.

As OpenAI does it: a bucket holds up to its limit and refills continuously at limit/60 per second; a
request costs its input tokens and 1 request; a refused request costs nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .wire import ORGANIZATION, ApiError

RATE_LIMITS_URL = "https://platform.openai.com/account/rate-limits"
RATE_LIMIT_NAMES = {"requests": "requests per min (RPM)", "tokens": "tokens per min (TPM)"}
# Fake seconds of shortfall forgiven: the float clock near EPOCH moves in steps of about 2.4e-7 s.
CLOCK_SLACK = 1e-6


@dataclass
class Bucket:
    """A rate limit bucket: ``level`` (what it holds) at fake time ``at``, refilling at limit/60 per second."""

    limit: int
    level: float
    at: float

    @property
    def rate(self) -> float:
        return self.limit / 60

    def refill(self, now: float) -> None:
        self.level = min(float(self.limit), self.level + max(now - self.at, 0.0) * self.rate)
        self.at = now

    def wait(self, cost: int) -> float:
        """Fake seconds until the bucket holds ``cost`` (0 if it does, give or take CLOCK_SLACK)."""
        wait = (cost - self.level) / self.rate
        return wait if wait > CLOCK_SLACK else 0.0

    def remaining(self) -> int:
        return max(math.floor(self.level + 1e-6), 0)

    def reset(self) -> float:
        """Fake seconds until the bucket is full again."""
        return max(self.limit - self.level, 0.0) / self.rate


def limits(requests_per_minute: int | None, tokens_per_minute: int | None) -> list[tuple[str, int]]:
    """``[(kind, limit)]`` of the limits that are set (None: unlimited)."""
    pairs = [("requests", requests_per_minute), ("tokens", tokens_per_minute)]
    for kind, limit in pairs:
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ValueError(f"{kind}_per_minute must be a positive int or None (got {limit!r})")
    return [(kind, limit) for kind, limit in pairs if limit is not None]


class RateLimiter:
    """The buckets of every model; ``limits`` come with each call, so changing one takes effect at once."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], Bucket] = {}

    def _bucket(self, model: str, kind: str, limit: int, now: float) -> Bucket:
        """The ``kind`` bucket of ``model`` refilled up to now (a new or re-limited one starts full)."""
        bucket = self._buckets.get((model, kind))
        if bucket is None or bucket.limit != limit:
            bucket = self._buckets[(model, kind)] = Bucket(limit, float(limit), now)
        bucket.refill(now)
        return bucket

    def headers(self, model: str, limits: list[tuple[str, int]], now: float) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers of ``model`` now, for the limits that are set."""
        buckets = [(kind, self._bucket(model, kind, limit, now)) for kind, limit in limits]
        headers = {f"x-ratelimit-limit-{kind}": str(bucket.limit) for kind, bucket in buckets}
        headers |= {f"x-ratelimit-remaining-{kind}": str(bucket.remaining()) for kind, bucket in buckets}
        headers |= {f"x-ratelimit-reset-{kind}": duration(bucket.reset()) for kind, bucket in buckets}
        return headers

    def admit(self, model: str, tokens: int, limits: list[tuple[str, int]], now: float) -> None:
        """Take 1 request and ``tokens`` from the buckets of ``model``, or refuse with a 429 taking nothing."""
        costs = {"requests": 1, "tokens": tokens}
        buckets = [(kind, self._bucket(model, kind, limit, now)) for kind, limit in limits]
        for kind, bucket in buckets:
            if costs[kind] > bucket.limit:
                raise ApiError(
                    429,
                    f"Request too large for {model} in organization {ORGANIZATION} on {RATE_LIMIT_NAMES[kind]}: "
                    f"Limit {bucket.limit}, Requested {costs[kind]}. The input or output tokens must be reduced in "
                    f"order to run successfully. Visit {RATE_LIMITS_URL} to learn more.",
                    type_=kind,
                    code="rate_limit_exceeded",
                    headers=self.headers(model, limits, now),
                )
        waits = [(bucket.wait(costs[kind]), kind, bucket) for kind, bucket in buckets]
        refused = [w for w in waits if w[0] > 0]
        if refused:
            wait, kind, bucket = max(refused, key=lambda w: w[0])
            raise ApiError(
                429,
                f"Rate limit reached for {model} in organization {ORGANIZATION} on {RATE_LIMIT_NAMES[kind]}: "
                f"Limit {bucket.limit}, Used {bucket.limit - bucket.remaining()}, Requested {costs[kind]}. "
                f"Please try again in {duration(wait)}. Visit {RATE_LIMITS_URL} to learn more.",
                type_=kind,
                code="rate_limit_exceeded",
                headers={**self.headers(model, limits, now), "retry-after": retry_after(wait)},
            )
        for kind, bucket in buckets:
            bucket.level -= costs[kind]


def _milliseconds(seconds: float) -> int:
    """``seconds`` rounded up to a whole millisecond (float noise below a nanosecond ignored)."""
    return max(math.ceil(round(seconds * 1000, 6)), 0)


def duration(seconds: float) -> str:
    """A duration as OpenAI's ``x-ratelimit-reset-*`` headers write it (Go style, to the ms, rounded up):
    ``"0s"``, ``"6ms"``, ``"1.2s"``, ``"59.999s"``, ``"1m0s"``, ``"1m3s"``, ``"1h0m0.5s"``."""
    ms = _milliseconds(seconds)
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    text = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


def retry_after(seconds: float) -> str:
    """A ``retry-after`` value: seconds rounded up to the millisecond, like ``"1.234"``, ``"0.006"``, ``"2"``."""
    return f"{_milliseconds(seconds) / 1000:.3f}".rstrip("0").rstrip(".")
