"""A fake OpenAI Files / Batches / Embeddings API: a real HTTP server on 127.0.0.1 for tests.

The real ``openai`` SDK, given ``base_url=server.base_url`` and ``api_key=API_KEY``, talks to it over
loopback exactly as it would to api.openai.com for the calls embedsql makes. Nothing is mocked on the
client side. The facts it reproduces are those of /work/shared/OPENAI_BATCH.md.

Time is the server's own: ``now()`` starts at a fixed epoch and only ``advance()`` moves it, so a
client given ``sleep=server.advance`` polls a 24-hour batch in microseconds. Batches move through
``validating -> in_progress -> finalizing -> completed`` (or ``failed``, ``expired``,
``cancelling -> cancelled``) lazily: every request first replays, in time order, the transitions of
all batches that fell due, so a batch validated later sees the enqueued tokens of the others as they
were at that moment. The durations (``*_seconds`` knobs) and limits ``max_lines``/``max_inputs`` are
read when a batch is created (``cancelling_seconds`` when it is cancelled); ``enqueued_token_limit``
when a batch finishes validating.

``POST /v1/embeddings`` is rate limited per model when ``tokens_per_minute`` / ``requests_per_minute`` are
set (None, the default, is unlimited), as OpenAI does it: a bucket per model and limit holds up to the
limit and refills continuously at limit/60 per fake second; a request costs its input tokens and 1 request.
Every answer for a known model carries ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` for the
limits that are set (reset: the time until the bucket is full again, like ``"6ms"``, ``"1.2s"``, ``"1m3s"``).
A request costing more than a bucket holds gets a 429 (type ``requests`` or ``tokens``, code
``rate_limit_exceeded``) with ``retry-after`` in seconds (fractional, rounded up to the millisecond): after
``advance(retry_after)`` it succeeds. One asking for more tokens than the whole TPM limit gets a 429
"Request too large ..." with no ``retry-after`` (waiting never helps). Refused requests cost nothing.

Vectors are derived from ``(model, text, dimensions)`` by :func:`expected_vector`, so a test can
assert the exact vector stored for every key. Everything random (ids, output order) comes from
``seed``.

Fault switches (each for the next ``times`` occurrences; request ones match ``method`` and a regex searched
in the path without query):

- :meth:`FakeOpenAI.fail_requests`: an HTTP error with the OpenAI body (and ``retry-after``), no effect.
- :meth:`FakeOpenAI.lose_responses`: the request takes effect, then the answer is an HTTP error.
- :meth:`FakeOpenAI.drop_connections`: the request is read, then the TCP connection is closed with no
  answer and no effect (the SDK raises ``APIConnectionError``). Listed in ``requests`` with status 0.
- :meth:`FakeOpenAI.delay_responses`: the request takes effect at once, then the answer waits that many
  seconds of real time (for client timeouts); a client that hung up meanwhile is ignored, and
  ``stop()`` cuts the wait short.
- :meth:`FakeOpenAI.fail_lines`: batch lines holding a text land in the error file.
- :meth:`FakeOpenAI.cut_downloads`: a file download stops halfway (no Content-Length, then close).
- :meth:`FakeOpenAI.omit_output_file`: a ``completed`` batch with no output file.
- :meth:`FakeOpenAI.corrupt_output`: one line of a ``completed`` batch's output file is invalid JSON.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import functools
import hashlib
import json
import math
import random
import re
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from batch_rules import ENCODING

__all__ = [
    "API_KEY",
    "EPOCH",
    "NATIVE_DIMENSIONS",
    "FakeOpenAI",
    "expected_vector",
    "mask_key",
    "token_count",
]

API_KEY = "sk-test-fake-0123456789abcdef"
EPOCH = 1_790_000_000.0
ORGANIZATION = "org-fake"
NATIVE_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
# Models that refuse the `dimensions` parameter.
FIXED_DIMENSIONS = frozenset({"text-embedding-ada-002"})
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
# States whose tokens count against the enqueued-token limit (validated, not yet terminal).
ENQUEUED = frozenset({"in_progress", "finalizing", "cancelling"})
MAX_INPUTS_PER_REQUEST = 2_048
MAX_TOKENS_PER_INPUT = 8_192
MAX_TOKENS_PER_REQUEST = 300_000
RATE_LIMITS_URL = "https://platform.openai.com/account/rate-limits"
RATE_LIMIT_NAMES = {"requests": "requests per min (RPM)", "tokens": "tokens per min (TPM)"}
# Fake seconds of shortfall forgiven: the float clock near EPOCH moves in steps of about 2.4e-7 s.
CLOCK_SLACK = 1e-6
FILE_RETENTION_SECONDS = 30 * 86_400

FILE_FIELDS = ("id", "object", "bytes", "created_at", "expires_at", "filename", "purpose", "status", "status_details")
BATCH_FIELDS = (
    "id",
    "object",
    "endpoint",
    "model",
    "errors",
    "input_file_id",
    "completion_window",
    "status",
    "output_file_id",
    "error_file_id",
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
    "request_counts",
    "metadata",
    "usage",
)

INVALID_INPUT = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
INVALID_JSON_BODY = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library "
    "correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble "
    "figuring out how to fix this, please contact us through our help center at help.openai.com.)"
)
NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth "
    "(i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the "
    "API from your browser and are prompted for a username and password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)
# Default error type, code and message of a status injected by fail_requests().
FAULTS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: ("invalid_request_error", None, "Not found."),
    408: ("invalid_request_error", "timeout", "Request timed out."),
    409: ("invalid_request_error", None, "Conflict."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 1s."),
    500: ("server_error", "server_error", "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", "bad_gateway", "Bad gateway."),
    503: ("server_error", "service_unavailable", "The server is overloaded or not ready yet."),
    504: ("server_error", "gateway_timeout", "Gateway timeout."),
}


# --------------------------------------------------------------------------------------------------- pure helpers


def expected_vector(model: str, text: str, dimensions: int) -> np.ndarray:
    """The float32 unit vector the server returns for ``text`` embedded by ``model`` at ``dimensions``.

    Seeded with ``int.from_bytes(sha256(f"{model}\\0{dimensions}\\0{text}"), "big")``: a standard normal draw
    of numpy's ``default_rng``, L2-normalised. Without a ``dimensions`` request parameter the server uses
    the model's native dimensions.
    """
    return _vector(model, text, dimensions).copy()


@functools.lru_cache(maxsize=4_096)
def _vector(model: str, text: str, dimensions: int) -> np.ndarray:
    digest = hashlib.sha256(f"{model}\0{dimensions}\0{text}".encode()).digest()
    draw = np.random.default_rng(int.from_bytes(digest, "big")).standard_normal(dimensions)
    vector = (draw / np.linalg.norm(draw)).astype(np.float32)
    vector.flags.writeable = False
    return vector


@functools.lru_cache(maxsize=65_536)
def token_count(text: str) -> int:
    """cl100k_base tokens of ``text``, as the server counts them (special tokens are plain text)."""
    return len(ENCODING.encode_ordinary(text))


def mask_key(key: str) -> str:
    """The key as OpenAI echoes it in a 401: first 8 characters, one ``*`` per hidden one, last 4."""
    if len(key) <= 12:
        return key[:2] + "*" * max(len(key) - 2, 0)
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


def _error(
    message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict:
    return {"message": message, "type": type_, "param": param, "code": code}


class ApiError(Exception):
    """An HTTP error the server answers with the OpenAI error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": _error(message, type_, param, code)}
        self.headers = headers or {}


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    cut: bool = False  # send about half the body without Content-Length, then close
    drop: bool = False  # send nothing, close the connection
    delay: float = 0.0  # real seconds to wait before answering


def _json(status: int, obj: object, headers: dict[str, str] | None = None) -> _Response:
    return _Response(status, _dumps(obj).encode(), headers=headers or {})


def _dumps(obj: object) -> str:
    # Float vectors stay numpy arrays until written: no list of Python floats per line in memory.
    return json.dumps(obj, default=np.ndarray.tolist)


@dataclass
class _RequestFault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    retry_after: float | None
    body: dict | None


@dataclass
class _ConnectionFault:
    method: str
    path: re.Pattern[str]
    times: int
    seconds: float = 0.0


@dataclass
class _Corruption:
    line: int
    times: int


@dataclass
class _LineFault:
    status: int
    code: str | None
    message: str
    times: int


@dataclass
class _Bucket:
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


@dataclass
class _Request:
    """One line of a batch input file, as validation accepted it."""

    line: int
    custom_id: str
    body: dict


@dataclass
class _Parsed:
    """A batch input file after validation: its requests, or why it fails."""

    requests: list[_Request]
    errors: list[dict]
    model: str | None
    tokens: int


# --------------------------------------------------------------------------------------------------- the server


class FakeOpenAI:
    """A loopback OpenAI API for the Files, Batches and Embeddings endpoints, on a fake clock.

    Use as a context manager (``with FakeOpenAI() as server: ...``); ``base_url`` is then
    ``http://127.0.0.1:<port>/v1``. Tune the public attributes (timings in fake seconds, limits,
    ``shuffle_output``, ``models``, ``tokens_per_minute``, ``requests_per_minute``) and the fault switches
    from the test; read ``batches``, ``files``, ``inputs_by_text``, ``requests``, ``embedding_requests`` and
    ``rate_limited`` to assert what happened.
    """

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        seed: int = 0,
        tokens_per_minute: int | None = None,
        requests_per_minute: int | None = None,
    ) -> None:
        self.api_key = api_key
        # Rate limits of POST /v1/embeddings, per model (None: unlimited). Changing one refills its buckets.
        self.tokens_per_minute = tokens_per_minute
        self.requests_per_minute = requests_per_minute
        self.rate_limited = 0  # requests of POST /v1/embeddings the rate limiter answered with a 429
        self.models: dict[str, int] = dict(NATIVE_DIMENSIONS)
        self.validating_seconds = 0.0
        self.in_progress_seconds = 0.0
        self.finalizing_seconds = 0.0
        self.cancelling_seconds = 0.0
        self.file_processing_seconds = 0.0
        self.completion_window_seconds = 86_400.0
        self.enqueued_token_limit: int | None = None
        self.max_file_bytes = 200_000_000
        self.max_lines = 50_000
        self.max_inputs = 50_000
        self.shuffle_output = True
        self.batches_created = 0
        self._lock = threading.RLock()
        self._clock = EPOCH
        self._ids = random.Random(f"ids-{seed}")
        self._shuffle = random.Random(f"shuffle-{seed}")
        self._files: dict[str, dict] = {}
        self._batches: dict[str, dict] = {}
        self._inputs_by_text: collections.Counter[str] = collections.Counter()
        self._embedding_requests: list[tuple[float, int, int]] = []
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._requests: list[tuple[str, str, int]] = []
        self._request_faults: list[_RequestFault] = []
        self._lost_responses: list[_RequestFault] = []
        self._drops: list[_ConnectionFault] = []
        self._delays: list[_ConnectionFault] = []
        self._corruptions: list[_Corruption] = []
        self._headers: list[tuple[str, str, dict[str, str]]] = []
        self._line_faults: dict[str, _LineFault] = {}
        self._cuts = 0
        self._omissions = 0
        self.unexpected_errors: list[str] = []  # tracebacks of server bugs (answered with a 500)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------------------------- lifecycle

    def start(self) -> FakeOpenAI:
        """Bind 127.0.0.1 on a free port and serve in a background thread."""
        if self._httpd is not None:
            raise RuntimeError("FakeOpenAI is already running")
        self._httpd = _HTTPServer(self)
        # A short poll interval keeps stop() fast: shutdown() waits for the serving loop to look up.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections and wait for every handler thread."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        httpd.shutdown()
        httpd.stopping.set()  # wakes handlers sleeping in a delay_responses() wait
        httpd.drop_connections()
        httpd.server_close()
        thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if exc_type is None and self.unexpected_errors:
            raise AssertionError("fake OpenAI server failed:\n" + "\n".join(self.unexpected_errors))

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, for ``openai.OpenAI(base_url=...)``."""
        if self._httpd is None:
            raise RuntimeError("FakeOpenAI is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    # ---------------------------------------------------------------------------------------------- clock

    def now(self) -> float:
        """The server's clock in epoch seconds; starts at EPOCH and moves only by advance()."""
        with self._lock:
            return self._clock

    def advance(self, seconds: float) -> None:
        """Move the clock forward (usable as a client's ``sleep``)."""
        if seconds < 0:
            raise ValueError(f"cannot move the clock back ({seconds} s)")
        with self._lock:
            self._clock += seconds

    # ---------------------------------------------------------------------------------------------- faults

    def fail_requests(
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        body: dict | None = None,
    ) -> None:
        """Answer the next ``times`` requests of ``method`` whose path (no query) matches regex ``path`` with
        ``status`` and an OpenAI-style error body (or ``body``, sent as the whole JSON body), before auth."""
        with self._lock:
            self._request_faults.append(
                _RequestFault(method.upper(), re.compile(path), status, times, retry_after, body)
            )

    def lose_responses(self, method: str, path: str, *, status: int = 500, times: int = 1) -> None:
        """Carry out the next ``times`` matching requests, then answer ``status`` as if they had failed:
        the client cannot tell whether a batch was created (why a create must never be blindly retried)."""
        with self._lock:
            self._lost_responses.append(_RequestFault(method.upper(), re.compile(path), status, times, None, None))

    def drop_connections(self, method: str, path: str, *, times: int = 1) -> None:
        """Read the next ``times`` matching requests, then close the connection without any answer.

        The request has no effect (nothing is created or billed); the SDK sees the server disconnect and
        raises ``openai.APIConnectionError`` (or retries). ``requests`` lists it with status 0.
        """
        with self._lock:
            self._drops.append(_ConnectionFault(method.upper(), re.compile(path), times))

    def delay_responses(self, method: str, path: str, seconds: float, *, times: int = 1) -> None:
        """Answer the next ``times`` matching requests normally, but only after ``seconds`` of real time.

        The request takes effect at once (a ``POST /v1/batches`` creates its batch, as the real API may
        for a client that timed out) and ``requests`` lists it then; only the answer waits. If the client
        hung up meanwhile the answer is dropped quietly. ``stop()`` ends the wait early (nothing is sent).
        """
        if seconds < 0:
            raise ValueError(f"delay must not be negative ({seconds} s)")
        with self._lock:
            self._delays.append(_ConnectionFault(method.upper(), re.compile(path), times, seconds))

    def fail_lines(
        self,
        texts: Iterable[str],
        *,
        status: int = 500,
        code: str | None = "server_error",
        message: str = "The server had an error while processing your request.",
        times: int = 1,
    ) -> None:
        """The next ``times`` batch lines holding each text land in the error file with ``status``, unbilled."""
        with self._lock:
            for text in texts:
                self._line_faults[text] = _LineFault(status, code, message, times)

    def cut_downloads(self, times: int = 1) -> None:
        """The next ``times`` file content downloads stop after about half the body (no Content-Length)."""
        with self._lock:
            self._cuts += times

    def omit_output_file(self, times: int = 1) -> None:
        """The next ``times`` batches that complete report no output file; their successes are lost."""
        with self._lock:
            self._omissions += times

    def corrupt_output(self, *, times: int = 1, line: int = 1) -> None:
        """The next ``times`` batches that complete with at least ``line`` output lines get line ``line``
        (1-based, after shuffling) of their output file replaced by the first half of its JSON text, still
        newline-terminated. ``request_counts`` and billing (``inputs_by_text``, ``usage``) are unchanged."""
        if line < 1:
            raise ValueError(f"line numbers start at 1 (got {line})")
        with self._lock:
            self._corruptions.append(_Corruption(line, times))

    # ---------------------------------------------------------------------------------------------- introspection

    @property
    def batches(self) -> dict[str, dict]:
        """Batch objects by id, brought up to the current clock (private state under ``_`` keys)."""
        with self._lock:
            self._sync()
            return self._batches

    @property
    def files(self) -> dict[str, dict]:
        """File objects by id, with ``content`` (bytes) and ``deleted`` beside the API fields."""
        with self._lock:
            self._sync()
            return self._files

    @property
    def inputs_by_text(self) -> collections.Counter[str]:
        """How many times each text was embedded and billed, batch and sync together."""
        with self._lock:
            self._sync()
            return self._inputs_by_text

    @property
    def embedding_requests(self) -> list[tuple[float, int, int]]:
        """``(fake time, inputs, tokens)`` of every ``POST /v1/embeddings`` served (200), in order."""
        with self._lock:
            return list(self._embedding_requests)

    @property
    def request_headers(self) -> list[tuple[str, str, dict[str, str]]]:
        """``(method, path, headers with lower-case names)`` of every request received, in order."""
        with self._lock:
            return list(self._headers)

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """``(method, path without query, status)`` of every request answered, in order; status 0 for one
        whose connection drop_connections() closed unanswered."""
        with self._lock:
            return list(self._requests)

    def batch_tokens(self, batch_id: str) -> int:
        """The cl100k_base tokens of every input of a batch (what counts against the enqueued limit)."""
        with self._lock:
            return self._batches[batch_id]["_tokens"]

    # ---------------------------------------------------------------------------------------------- HTTP entry

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Response:
        """Answer one request (called by the HTTP handler threads)."""
        path = urlsplit(target).path
        query = {k: v[-1] for k, v in parse_qs(urlsplit(target).query).items()}
        with self._lock:
            self._headers.append((method, path, dict(headers)))
            if _take(self._drops, method, path) is not None:
                self._requests.append((method, path, 0))
                return _Response(0, b"", drop=True)
            try:
                response = self._fault(method, path) or self._route(method, path, query, headers, body)
                response = self._lost(method, path) or response
            except ApiError as e:
                response = _json(e.status, e.body, e.headers)
            except Exception:
                self.unexpected_errors.append(traceback.format_exc())
                response = _json(500, {"error": _error("fake server bug", "server_error", None, "server_error")})
            if (delay := _take(self._delays, method, path)) is not None:
                response.delay = delay.seconds
            self._requests.append((method, path, response.status))
            return response

    def _lost(self, method: str, path: str) -> _Response | None:
        """A response replaced by a 500 after the request took effect (see lose_responses)."""
        for fault in self._lost_responses:
            if fault.times > 0 and fault.method == method and fault.path.search(path):
                fault.times -= 1
                type_, code, message = FAULTS.get(fault.status, ("server_error", None, "Error."))
                return _json(fault.status, {"error": _error(message, type_, None, code)})
        return None

    def _fault(self, method: str, path: str) -> _Response | None:
        for fault in self._request_faults:
            if fault.times > 0 and fault.method == method and fault.path.search(path):
                fault.times -= 1
                headers = {}
                if fault.retry_after is not None:
                    headers["retry-after"] = f"{fault.retry_after:g}"
                if fault.body is not None:
                    return _json(fault.status, fault.body, headers)
                type_, code, message = FAULTS.get(fault.status, ("server_error", None, "Error."))
                return _json(fault.status, {"error": _error(message, type_, None, code)}, headers)
        return None

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> _Response:
        self._authenticate(headers.get("authorization"))
        self._sync()
        for route_method, pattern, handler in _ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                return handler(self, *match.groups(), query=query, headers=headers, body=body)
        raise ApiError(404, f"Invalid URL ({method} {path})")

    def _authenticate(self, authorization: str | None) -> None:
        scheme, _, key = (authorization or "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(401, NO_KEY)
        if key != self.api_key:
            raise ApiError(
                401,
                f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    def _new_id(self, prefix: str, alphabet: str, length: int) -> str:
        return prefix + "".join(self._ids.choice(alphabet) for _ in range(length))

    # ---------------------------------------------------------------------------------------------- files

    def _upload(self, *, headers: dict[str, str], body: bytes, **_: object) -> _Response:
        fields = _parse_multipart(headers.get("content-type", ""), body)
        purpose = fields.get("purpose")
        if "file" not in fields:
            raise ApiError(400, "Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        if purpose is None:
            raise ApiError(
                400, "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
            )
        purpose_value = purpose[1].decode("utf-8", "replace")
        if purpose_value != "batch":
            raise ApiError(
                400,
                f"Invalid value for purpose: '{purpose_value}'. This fake server only accepts 'batch'.",
                param="purpose",
                code="invalid_value",
            )
        filename, content = fields["file"]
        filename = filename or "upload"
        if not filename.endswith(".jsonl"):
            raise ApiError(400, f"Invalid file format for Batch API. Must be .jsonl (got '{filename}').", param="file")
        if len(content) > self.max_file_bytes:
            raise ApiError(400, "File is too large.")
        file = self._add_file(filename, "batch", content, ready_after=self.file_processing_seconds)
        return _json(200, self._file_view(file))

    def _add_file(self, filename: str, purpose: str, content: bytes, *, ready_after: float = 0.0) -> dict:
        created = int(self._clock)
        file_id = self._new_id("file-", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 22)
        file = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": created,
            "expires_at": created + FILE_RETENTION_SECONDS,
            "filename": filename,
            "purpose": purpose,
            "status": "processed" if ready_after <= 0 else "uploaded",
            "status_details": None,
            "content": content,
            "deleted": False,
            "_ready_at": self._clock + ready_after,
            "_seq": len(self._files),
        }
        self._files[file_id] = file
        return file

    def _file(self, file_id: str) -> dict:
        file = self._files.get(file_id)
        if file is None or file["deleted"]:
            raise ApiError(404, f"No such File object: {file_id}", param="id")
        return file

    def _file_view(self, file: dict) -> dict:
        return {key: file[key] for key in FILE_FIELDS}

    def _get_file(self, file_id: str, **_: object) -> _Response:
        return _json(200, self._file_view(self._file(file_id)))

    def _list_files(self, *, query: dict[str, str], **_: object) -> _Response:
        files = [f for f in self._files.values() if not f["deleted"]]
        if "purpose" in query:
            files = [f for f in files if f["purpose"] == query["purpose"]]
        files.sort(key=lambda f: f["_seq"], reverse=query.get("order", "desc") != "asc")
        return _json(200, _page([self._file_view(f) for f in files], query, default=10_000, maximum=10_000))

    def _file_content(self, file_id: str, **_: object) -> _Response:
        file = self._file(file_id)
        response = _Response(200, file["content"], content_type="application/octet-stream")
        if self._cuts > 0:
            self._cuts -= 1
            response.cut = True
        return response

    def _delete_file(self, file_id: str, **_: object) -> _Response:
        self._file(file_id)["deleted"] = True
        return _json(200, {"id": file_id, "object": "file", "deleted": True})

    # ---------------------------------------------------------------------------------------------- batches

    def _create_batch(self, *, body: bytes, **_: object) -> _Response:
        params = _json_body(body)
        for name in ("input_file_id", "endpoint", "completion_window"):
            if name not in params:
                raise ApiError(
                    400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
                )
        endpoint, window = params["endpoint"], params["completion_window"]
        if endpoint != "/v1/embeddings":
            raise ApiError(
                400,
                f"Invalid value: '{endpoint}'. This fake server supports only '/v1/embeddings'.",
                param="endpoint",
                code="invalid_value",
            )
        if window != "24h":
            raise ApiError(
                400,
                f"Invalid value: '{window}'. Supported values are: '24h'.",
                param="completion_window",
                code="invalid_value",
            )
        metadata = params.get("metadata")
        _check_metadata(metadata)
        file_id = params["input_file_id"]
        file = self._files.get(file_id) if isinstance(file_id, str) else None
        if file is None or file["deleted"]:
            raise ApiError(400, f"No such File object: {file_id}", param="input_file_id")
        if file["purpose"] != "batch":
            raise ApiError(
                400, f"File {file_id} has purpose '{file['purpose']}', expected 'batch'.", param="input_file_id"
            )
        if file["status"] != "processed":
            raise ApiError(
                400,
                f"File {file_id} is still being processed. Please try again once it is processed.",
                param="input_file_id",
            )
        parsed = _parse_input(file["content"], endpoint, self.models, self.max_lines, self.max_inputs)
        created = self._clock
        batch = {
            "id": self._new_id("batch_", "0123456789abcdef", 32),
            "object": "batch",
            "endpoint": endpoint,
            "model": parsed.model,
            "errors": None,
            "input_file_id": file_id,
            "completion_window": window,
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(created),
            "in_progress_at": None,
            "expires_at": int(created + self.completion_window_seconds),
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": metadata,
            "usage": _usage(0),
            "_seq": len(self._batches),
            "_parsed": parsed,
            "_tokens": parsed.tokens,
            "_created": created,
            "_expires": created + self.completion_window_seconds,
            "_validating_s": self.validating_seconds,
            "_in_progress_s": self.in_progress_seconds,
            "_finalizing_s": self.finalizing_seconds,
            "_cancelling_s": 0.0,
            "_in_progress_at": None,
            "_finalizing_at": None,
            "_cancelling_at": None,
            "_cancel_done": 0,
            "_results": None,
        }
        self._batches[batch["id"]] = batch
        self.batches_created += 1
        return _json(200, _batch_view(batch))

    def _batch(self, batch_id: str) -> dict:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise ApiError(404, f"No batch found with id '{batch_id}'.")
        return batch

    def _get_batch(self, batch_id: str, **_: object) -> _Response:
        return _json(200, _batch_view(self._batch(batch_id)))

    def _list_batches(self, *, query: dict[str, str], **_: object) -> _Response:
        batches = sorted(self._batches.values(), key=lambda b: b["_seq"], reverse=True)
        return _json(200, _page([_batch_view(b) for b in batches], query, default=20, maximum=100))

    def _cancel_batch(self, batch_id: str, **_: object) -> _Response:
        batch = self._batch(batch_id)
        status = batch["status"]
        if status in TERMINAL:
            raise ApiError(409, f"Cannot cancel a batch with status '{status}'.")
        if status != "cancelling":
            total = len(batch["_parsed"].requests)
            if status == "validating":
                done = 0
            elif status == "in_progress":
                done = _lines_done(total, self._clock - batch["_in_progress_at"], batch["_in_progress_s"])
            else:  # finalizing: every line already ran
                done = total
            batch.update(
                status="cancelling",
                cancelling_at=int(self._clock),
                _cancelling_at=self._clock,
                _cancelling_s=self.cancelling_seconds,
                _cancel_done=done,
            )
        return _json(200, _batch_view(batch))

    # ---------------------------------------------------------------------------------------------- the state machine

    def _sync(self) -> None:
        """Apply, in time order, every batch transition due by now (ties: older batch first)."""
        while True:
            due: tuple[float, dict] | None = None
            for batch in self._batches.values():
                when = _next_event(batch)
                if when is not None and when <= self._clock and (due is None or when < due[0]):
                    due = (when, batch)
            if due is None:
                break
            self._step(due[1], due[0])
        for file in self._files.values():
            if file["status"] == "uploaded" and file["_ready_at"] <= self._clock:
                file["status"] = "processed"

    def _step(self, batch: dict, when: float) -> None:
        status = batch["status"]
        if status in ("validating", "in_progress") and when == batch["_expires"] and when < _phase_end(batch):
            self._expire(batch)
        elif status == "validating":
            self._validate(batch, when)
        elif status == "in_progress":
            batch["_results"] = [self._run_line(batch, request) for request in batch["_parsed"].requests]
            self._count(batch, batch["_results"])
            batch.update(status="finalizing", finalizing_at=int(when), _finalizing_at=when)
        elif status == "finalizing":
            self._finish(batch, "completed", when, batch["_results"])
        elif status == "cancelling":
            self._finish_partial(batch, "cancelled", when, batch["_cancel_done"])

    def _validate(self, batch: dict, when: float) -> None:
        parsed: _Parsed = batch["_parsed"]
        errors = parsed.errors
        if not errors and self.enqueued_token_limit is not None:
            enqueued = sum(
                other["_tokens"]
                for other in self._batches.values()
                if other is not batch and other["status"] in ENQUEUED and other["_parsed"].model == parsed.model
            )
            if enqueued + parsed.tokens > self.enqueued_token_limit:
                errors = [
                    {
                        "code": "token_limit_exceeded",
                        "message": (
                            f"Enqueued token limit reached for {parsed.model} in organization {ORGANIZATION}. "
                            f"Limit: {self.enqueued_token_limit:,} enqueued tokens. Please try again once some "
                            "in_progress batches have been completed."
                        ),
                        "param": None,
                        "line": None,
                    }
                ]
        if errors:
            batch.update(status="failed", failed_at=int(when), errors={"object": "list", "data": errors})
            return
        batch["request_counts"]["total"] = len(parsed.requests)
        batch.update(status="in_progress", in_progress_at=int(when), _in_progress_at=when)

    def _expire(self, batch: dict) -> None:
        when = batch["_expires"]
        if batch["status"] == "validating":
            done = 0
        else:
            done = _lines_done(len(batch["_parsed"].requests), when - batch["_in_progress_at"], batch["_in_progress_s"])
        self._finish_partial(batch, "expired", when, done)

    def _finish_partial(self, batch: dict, status: str, when: float, done: int) -> None:
        """End a batch cut short: its first ``done`` lines ran, the others land in the error file."""
        requests = batch["_parsed"].requests
        results = batch["_results"]
        if results is None:  # the lines had not run yet
            results = [self._run_line(batch, request) for request in requests[:done]]
            self._count(batch, results)
        code, message = {
            "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
            "cancelled": ("batch_cancelled", "This request was not executed because the batch was cancelled."),
        }[status]
        never_ran = [
            {
                "id": self._request_id(),
                "custom_id": r.custom_id,
                "response": None,
                "error": {"code": code, "message": message},
            }
            for r in requests[len(results) :]
        ]
        batch["request_counts"]["total"] = len(requests)
        batch["request_counts"]["failed"] += len(never_ran)
        self._finish(batch, status, when, results + never_ran)

    def _finish(self, batch: dict, status: str, when: float, results: list[dict]) -> None:
        """Write the output and error files of a batch and give it its terminal status."""
        successes = [r for r in results if _succeeded(r)]
        failures = [r for r in results if not _succeeded(r)]
        if status == "completed" and successes and self._omissions > 0:
            self._omissions -= 1
            successes = []
        corrupt = None
        if status == "completed":
            for corruption in self._corruptions:
                if corruption.times > 0 and corruption.line <= len(successes):
                    corruption.times -= 1
                    corrupt = corruption.line
                    break
        batch_id = batch["id"]
        batch.update(
            status=status,
            output_file_id=self._write_results(f"batch_{batch_id}_output.jsonl", successes, corrupt=corrupt),
            error_file_id=self._write_results(f"batch_{batch_id}_error.jsonl", failures),
        )
        batch[f"{status}_at"] = int(when)

    def _write_results(self, filename: str, lines: list[dict], *, corrupt: int | None = None) -> str | None:
        """Write a results file (shuffled); line ``corrupt`` (1-based) becomes the first half of its JSON."""
        if not lines:
            return None
        if self.shuffle_output:
            lines = lines.copy()
            self._shuffle.shuffle(lines)
        texts = [_dumps(line) for line in lines]
        if corrupt is not None:
            text = texts[corrupt - 1]
            texts[corrupt - 1] = text[: len(text) // 2]
        content = "".join(text + "\n" for text in texts).encode()
        return self._add_file(filename, "batch_output", content)["id"]

    def _count(self, batch: dict, results: list[dict]) -> None:
        counts = batch["request_counts"]
        for result in results:
            if _succeeded(result):
                counts["completed"] += 1
                batch["usage"] = _usage(
                    batch["usage"]["input_tokens"] + result["response"]["body"]["usage"]["prompt_tokens"]
                )
            else:
                counts["failed"] += 1

    def _request_id(self) -> str:
        return self._new_id("batch_req_", "0123456789abcdef", 32)

    def _run_line(self, batch: dict, request: _Request) -> dict:
        """One batch line through the embeddings endpoint: its output or error-file line."""
        status, body = 200, None
        try:
            texts = _texts(request.body.get("input"))
            fault = None
            for text in texts:
                if (candidate := self._line_faults.get(text)) is not None and candidate.times > 0:
                    candidate.times -= 1
                    fault = fault or candidate
            if fault is not None:
                status = fault.status
                type_ = FAULTS.get(fault.status, ("server_error", None, ""))[0]
                body = {"error": _error(fault.message, type_, None, fault.code)}
            else:
                body = self._embed(request.body, texts)
        except ApiError as e:
            status, body = e.status, e.body
        return {
            "id": self._request_id(),
            "custom_id": request.custom_id,
            "response": {"status_code": status, "request_id": self._new_id("", "0123456789abcdef", 32), "body": body},
            "error": None,
        }

    # ---------------------------------------------------------------------------------------------- embeddings

    def _embeddings(self, *, body: bytes, **_: object) -> _Response:
        params = _json_body(body)
        model = params.get("model")
        if not model:
            raise ApiError(400, "you must provide a model parameter")
        if not isinstance(model, str) or model not in self.models:
            raise ApiError(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        try:
            if "input" not in params:
                raise ApiError(400, "'input' is a required property", param="input")
            texts = _texts(params["input"])
            result = self._embed(params, texts, admit=functools.partial(self._admit, model))
        except ApiError as e:
            e.headers = {**self._rate_headers(model), **e.headers}
            raise
        self._embedding_requests.append((self._clock, len(texts), result["usage"]["prompt_tokens"]))
        return _json(200, result, self._rate_headers(model))

    def _limits(self) -> list[tuple[str, int]]:
        limits = [("requests", self.requests_per_minute), ("tokens", self.tokens_per_minute)]
        for kind, limit in limits:
            if limit is not None and (not isinstance(limit, int) or limit < 1):
                raise ValueError(f"{kind}_per_minute must be a positive int or None (got {limit!r})")
        return [(kind, limit) for kind, limit in limits if limit is not None]

    def _bucket(self, model: str, kind: str, limit: int) -> _Bucket:
        """The ``kind`` bucket of ``model`` refilled up to now (a new or re-limited one starts full)."""
        bucket = self._buckets.get((model, kind))
        if bucket is None or bucket.limit != limit:
            bucket = self._buckets[(model, kind)] = _Bucket(limit, float(limit), self._clock)
        bucket.refill(self._clock)
        return bucket

    def _rate_headers(self, model: str) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers of ``model`` now, for the limits that are set."""
        limits = [(kind, self._bucket(model, kind, limit)) for kind, limit in self._limits()]
        headers = {f"x-ratelimit-limit-{kind}": str(bucket.limit) for kind, bucket in limits}
        headers |= {f"x-ratelimit-remaining-{kind}": str(bucket.remaining()) for kind, bucket in limits}
        headers |= {f"x-ratelimit-reset-{kind}": _duration(bucket.reset()) for kind, bucket in limits}
        return headers

    def _admit(self, model: str, tokens: int) -> None:
        """Take 1 request and ``tokens`` from the buckets of ``model``, or refuse with a 429 taking nothing."""
        costs = {"requests": 1, "tokens": tokens}
        buckets = [(kind, self._bucket(model, kind, limit)) for kind, limit in self._limits()]
        for kind, bucket in buckets:
            if costs[kind] > bucket.limit:
                self.rate_limited += 1
                raise ApiError(
                    429,
                    f"Request too large for {model} in organization {ORGANIZATION} on {RATE_LIMIT_NAMES[kind]}: "
                    f"Limit {bucket.limit}, Requested {costs[kind]}. The input or output tokens must be reduced in "
                    f"order to run successfully. Visit {RATE_LIMITS_URL} to learn more.",
                    type_=kind,
                    code="rate_limit_exceeded",
                    headers=self._rate_headers(model),
                )
        waits = [(bucket.wait(costs[kind]), kind, bucket) for kind, bucket in buckets]
        refused = [w for w in waits if w[0] > 0]
        if refused:
            wait, kind, bucket = max(refused, key=lambda w: w[0])
            self.rate_limited += 1
            raise ApiError(
                429,
                f"Rate limit reached for {model} in organization {ORGANIZATION} on {RATE_LIMIT_NAMES[kind]}: "
                f"Limit {bucket.limit}, Used {bucket.limit - bucket.remaining()}, Requested {costs[kind]}. "
                f"Please try again in {_duration(wait)}. Visit {RATE_LIMITS_URL} to learn more.",
                type_=kind,
                code="rate_limit_exceeded",
                headers={**self._rate_headers(model), "retry-after": _seconds(wait)},
            )
        for kind, bucket in buckets:
            bucket.level -= costs[kind]

    def _embed(self, params: dict, texts: list[str], *, admit: Callable[[int], None] | None = None) -> dict:
        """The body of a successful embeddings response (or ApiError), counting what it bills.

        ``admit`` (the rate limiter) is called with the request's tokens once the request is found valid.
        """
        model = params["model"]
        native = self.models[model]
        dimensions = params.get("dimensions")
        if dimensions is not None:
            if model in FIXED_DIMENSIONS:
                raise ApiError(400, "This model does not support specifying dimensions.")
            if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= native:
                raise ApiError(
                    400,
                    f"Invalid value for 'dimensions' = {dimensions}. Must be an integer from 1 to {native}.",
                    param="dimensions",
                )
        encoding_format = params.get("encoding_format") or "float"
        if encoding_format not in ("float", "base64"):
            raise ApiError(
                400,
                f"Invalid value for 'encoding_format': '{encoding_format}'. Supported values are: 'float' and "
                "'base64'.",
                param="encoding_format",
                code="invalid_value",
            )
        counts = [token_count(text) for text in texts]
        for count in counts:
            if count > MAX_TOKENS_PER_INPUT:
                raise ApiError(
                    400,
                    f"This model's maximum context length is {MAX_TOKENS_PER_INPUT} tokens, however you requested "
                    f"{count} tokens ({count} in your prompt; 0 for the completion). Please reduce your prompt; or "
                    "completion length.",
                )
        if sum(counts) > MAX_TOKENS_PER_REQUEST:
            raise ApiError(
                400,
                f"Requested {sum(counts)} tokens, max {MAX_TOKENS_PER_REQUEST} tokens per request",
                type_="max_tokens_per_request",
                code="max_tokens_per_request",
            )
        if admit is not None:
            admit(sum(counts))
        size = native if dimensions is None else dimensions
        data = []
        for index, text in enumerate(texts):
            vector = _vector(model, text, size)
            embedding: object
            if encoding_format == "base64":
                embedding = base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
            else:
                embedding = vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        self._inputs_by_text.update(texts)
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": sum(counts), "total_tokens": sum(counts)},
        }

    def _get_model(self, model: str, **_: object) -> _Response:
        if model not in self.models:
            raise ApiError(404, f"The model '{model}' does not exist", param="model", code="model_not_found")
        return _json(200, {"id": model, "object": "model", "created": 1_705_953_180, "owned_by": "system"})


_Handler = Callable[..., _Response]
_ROUTES: list[tuple[str, re.Pattern[str], _Handler]] = [
    (method, re.compile(pattern), handler)
    for method, pattern, handler in (
        ("POST", r"/v1/files", FakeOpenAI._upload),
        ("GET", r"/v1/files", FakeOpenAI._list_files),
        ("GET", r"/v1/files/([^/]+)", FakeOpenAI._get_file),
        ("DELETE", r"/v1/files/([^/]+)", FakeOpenAI._delete_file),
        ("GET", r"/v1/files/([^/]+)/content", FakeOpenAI._file_content),
        ("POST", r"/v1/batches", FakeOpenAI._create_batch),
        ("GET", r"/v1/batches", FakeOpenAI._list_batches),
        ("GET", r"/v1/batches/([^/]+)", FakeOpenAI._get_batch),
        ("POST", r"/v1/batches/([^/]+)/cancel", FakeOpenAI._cancel_batch),
        ("POST", r"/v1/embeddings", FakeOpenAI._embeddings),
        ("GET", r"/v1/models/([^/]+)", FakeOpenAI._get_model),
    )
]


# --------------------------------------------------------------------------------------------------- rate limits


def _milliseconds(seconds: float) -> int:
    """``seconds`` rounded up to a whole millisecond (float noise below a nanosecond ignored)."""
    return max(math.ceil(round(seconds * 1000, 6)), 0)


def _duration(seconds: float) -> str:
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


def _seconds(seconds: float) -> str:
    """A ``retry-after`` value: seconds rounded up to the millisecond, like ``"1.234"``, ``"0.006"``, ``"2"``."""
    return f"{_milliseconds(seconds) / 1000:.3f}".rstrip("0").rstrip(".")


# --------------------------------------------------------------------------------------------------- batch helpers


def _take(faults: list[_ConnectionFault], method: str, path: str) -> _ConnectionFault | None:
    """The first fault of ``faults`` left for ``method path``, used up once (None if none matches)."""
    for fault in faults:
        if fault.times > 0 and fault.method == method and fault.path.search(path):
            fault.times -= 1
            return fault
    return None


def _next_event(batch: dict) -> float | None:
    status = batch["status"]
    if status in ("validating", "in_progress"):
        return min(_phase_end(batch), batch["_expires"])
    if status == "finalizing":
        return batch["_finalizing_at"] + batch["_finalizing_s"]
    if status == "cancelling":
        return batch["_cancelling_at"] + batch["_cancelling_s"]
    return None


def _phase_end(batch: dict) -> float:
    if batch["status"] == "validating":
        return batch["_created"] + batch["_validating_s"]
    return batch["_in_progress_at"] + batch["_in_progress_s"]


def _lines_done(total: int, elapsed: float, duration: float) -> int:
    """Lines of ``total`` finished ``elapsed`` seconds into an in_progress phase of ``duration``."""
    if duration <= 0:
        return total
    return min(total, math.floor(total * max(elapsed, 0.0) / duration + 1e-9))


def _succeeded(result: dict) -> bool:
    response = result["response"]
    return result["error"] is None and response is not None and 200 <= response["status_code"] < 300


def _usage(tokens: int) -> dict:
    return {
        "input_tokens": tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": tokens,
    }


def _batch_view(batch: dict) -> dict:
    return json.loads(json.dumps({key: batch[key] for key in BATCH_FIELDS}))


def _page(items: list[dict], query: dict[str, str], *, default: int, maximum: int) -> dict:
    try:
        limit = int(query.get("limit", default))
    except ValueError:
        raise ApiError(400, f"Invalid 'limit': expected an integer, got '{query['limit']}'.", param="limit") from None
    if not 1 <= limit <= maximum:
        raise ApiError(
            400,
            f"Invalid 'limit': {limit}. Expected a value between 1 and {maximum}.",
            param="limit",
            code="invalid_value",
        )
    after = query.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


def _check_metadata(metadata: object) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise ApiError(400, "Invalid type for 'metadata': expected an object.", param="metadata", code="invalid_type")
    if len(metadata) > 16:
        raise ApiError(
            400,
            "Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got an "
            f"object with {len(metadata)} properties instead.",
            param="metadata",
            code="object_above_max_properties",
        )
    for key, value in metadata.items():
        if len(key) > 64:
            raise ApiError(
                400,
                f"Invalid 'metadata': key '{key[:20]}...' is too long. Expected at most 64 characters, but got "
                f"{len(key)} characters instead.",
                param="metadata",
                code="string_above_max_length",
            )
        if not isinstance(value, str):
            raise ApiError(
                400,
                f"Invalid type for 'metadata.{key}': expected a string, but got {type(value).__name__} instead.",
                param=f"metadata.{key}",
                code="invalid_type",
            )
        if len(value) > 512:
            raise ApiError(
                400,
                f"Invalid 'metadata.{key}': string too long. Expected a string with maximum length 512, but got a "
                f"string with length {len(value)} instead.",
                param=f"metadata.{key}",
                code="string_above_max_length",
            )


def _texts(value: object) -> list[str]:
    """The inputs of an embeddings body, or the 400 OpenAI answers for an invalid one."""
    texts = [value] if isinstance(value, str) else value
    if (
        not isinstance(texts, list)
        or not 1 <= len(texts) <= MAX_INPUTS_PER_REQUEST
        or not all(isinstance(text, str) and text and _is_unicode(text) for text in texts)
    ):
        raise ApiError(400, INVALID_INPUT)
    return texts


def _is_unicode(text: str) -> bool:
    # JSON can carry an escaped lone surrogate (\ud800): it is not text and has no UTF-8 form.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_input(content: bytes, endpoint: str, models: dict[str, int], max_lines: int, max_inputs: int) -> _Parsed:
    """Validate a batch input file as the Batch API does while the batch is ``validating``."""
    errors: list[dict] = []

    def fail(code: str, message: str, line: int | None, param: str | None = None) -> None:
        errors.append({"code": code, "message": message, "param": param, "line": line})

    lines = content.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    requests: list[_Request] = []
    seen: set[str] = set()
    model: str | None = None
    inputs = 0
    tokens = 0
    if not lines:
        fail("empty_file", "The batch input file is empty.", None)
    if len(lines) > max_lines:
        fail("batch_too_large", f"The batch input file has {len(lines)} requests; the maximum is {max_lines}.", None)
    for number, raw in enumerate(lines, 1):
        try:
            line = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            fail("invalid_json_line", "This line is not parseable as valid JSON.", number)
            continue
        if not isinstance(line, dict):
            fail("invalid_json_line", "This line is not parseable as valid JSON.", number)
            continue
        missing = [key for key in ("custom_id", "method", "url", "body") if key not in line]
        if missing:
            fail("missing_required_parameter", f"Missing required parameter: '{missing[0]}'.", number, missing[0])
            continue
        custom_id, body = line["custom_id"], line["body"]
        if not isinstance(custom_id, str) or not custom_id:
            fail("invalid_custom_id", "Invalid 'custom_id': expected a non-empty string.", number, "custom_id")
            continue
        if line["method"] != "POST":
            fail("invalid_method", f"Invalid method '{line['method']}': only 'POST' is supported.", number, "method")
            continue
        if line["url"] != endpoint:
            fail(
                "invalid_url",
                f"The URL provided for this request ('{line['url']}') does not match the batch endpoint '{endpoint}'.",
                number,
                "url",
            )
            continue
        if custom_id in seen:
            fail(
                "duplicate_custom_id",
                f"The custom_id '{custom_id}' is duplicated: custom_id must be unique within a batch.",
                number,
                "custom_id",
            )
            continue
        seen.add(custom_id)
        if not isinstance(body, dict) or "model" not in body:
            fail("missing_required_parameter", "Missing required parameter: 'body.model'.", number, "body.model")
            continue
        line_model = body["model"]
        if not isinstance(line_model, str) or line_model not in models:
            fail(
                "model_not_found",
                f"The provided model '{line_model}' is not supported by the Batch API.",
                number,
                "body.model",
            )
            continue
        if model is None:
            model = line_model
        elif line_model != model:
            fail(
                "mismatched_model",
                f"The provided model '{line_model}' does not match the model '{model}' of the other requests in "
                "this batch. A batch must use one model.",
                number,
                "body.model",
            )
            continue
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts if isinstance(texts, list) else []
        inputs += len(texts)
        tokens += sum(token_count(text) for text in texts if isinstance(text, str))
        requests.append(_Request(number, custom_id, body))
    if inputs > max_inputs:
        fail(
            "batch_too_large", f"The batch input file has {inputs} embedding inputs; the maximum is {max_inputs}.", None
        )
    return _Parsed(requests, errors, model, tokens)


# --------------------------------------------------------------------------------------------------- HTTP plumbing


def _json_body(body: bytes) -> dict:
    try:
        params = json.loads(body)
    except ValueError:
        raise ApiError(400, INVALID_JSON_BODY) from None
    if not isinstance(params, dict):
        raise ApiError(400, INVALID_JSON_BODY)
    return params


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``{field name: (filename, bytes)}`` of a multipart/form-data body, parsed by the email package."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(400, "Invalid Content-Type header: expected multipart/form-data.")
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ApiError(400, "Could not parse multipart form.")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            fields[name] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins every handler thread
    block_on_close = True

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (a DNS lookup); loopback needs none.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def drop_connections(self) -> None:
        """Shut idle keep-alive connections so their handler threads end."""
        with self.connections_lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up mid-response is not a server bug.
        pass


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Without it Nagle's algorithm and the client's delayed ACK add ~40 ms to every exchange.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except ConnectionResetError:
            # The client reset the connection (say after a timeout, before a late answer): just close it.
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        body = self._read_body()
        headers = {key.lower(): value for key, value in self.headers.items()}
        started = time.perf_counter()
        response = self.server.fake.handle(method, self.path, headers, body)
        if response.drop or (response.delay > 0 and self.server.stopping.wait(response.delay)):
            # Closed unanswered: drop_connections(), or stop() during a delay_responses() wait.
            self.close_connection = True
            return
        try:
            self._send(response, started)
        except (BrokenPipeError, ConnectionResetError):
            # The client hung up (a timeout during a delay, a cut download): nobody is left to answer.
            self.close_connection = True

    def _send(self, response: _Response, started: float) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("x-request-id", "req_" + uuid.uuid4().hex)
        self.send_header("openai-organization", ORGANIZATION)
        self.send_header("openai-version", "2020-10-01")
        self.send_header("openai-processing-ms", str(int((time.perf_counter() - started) * 1000)))
        for key, value in response.headers.items():
            self.send_header(key, value)
        payload = response.body
        if response.cut:
            payload = payload[: len(payload) // 2]
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline(65_537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65_537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65_537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""
