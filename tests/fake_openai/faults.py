"""The fault switches: a test arms one for the next ``times`` occurrences, the server takes it when due.

Request faults match ``method`` and a regex searched in the path without query. What each does to the
client is told in the package docstring; here they are only stored and used up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from .base import ServerBase
from .wire import Response, dumps, error_body, json_response

# How servers built on FastAPI (vLLM, infinity-emb) answer a path or method they do not serve.
NOT_SERVED = {404: {"detail": "Not Found"}, 405: {"detail": "Method Not Allowed"}}

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


@dataclass
class RequestFault:
    """An HTTP error answered instead of (fail_requests) or after (lose_responses) a matching request."""

    method: str
    path: re.Pattern[str]
    status: int
    times: int
    retry_after: float | None
    body: dict | None  # the whole JSON body to answer, instead of the status's default error


@dataclass
class ConnectionFault:
    """A matching request answered with no answer (drop_connections) or a late one (delay_responses)."""

    method: str
    path: re.Pattern[str]
    times: int
    seconds: float = 0.0  # real seconds of delay


@dataclass
class Outage:
    """Matching requests answered ``status`` (0: the connection closed unanswered) until fake time ``until``."""

    method: str
    path: re.Pattern[str]
    status: int
    until: float


@dataclass
class Rewrite:
    """A matching answer handed to ``rewrite`` before it is sent (see rewrite_answers)."""

    method: str
    path: re.Pattern[str]
    rewrite: Callable[[int, Any], Any]
    times: int


@dataclass
class OutputRewrite:
    """The output lines of the next completed batches handed to ``rewrite`` (see rewrite_output_lines)."""

    rewrite: Callable[[list[dict]], list[Any]]
    times: int


F = TypeVar("F", RequestFault, ConnectionFault, Rewrite)


@dataclass
class Corruption:
    line: int  # 1-based, in the shuffled output file
    times: int


@dataclass
class LineFault:
    """The error-file line a batch line holding a given text gets instead of its embeddings."""

    status: int
    code: str | None
    message: str
    times: int


def take(faults: list[F], method: str, path: str) -> F | None:
    """The first fault of ``faults`` left for ``method path``, used up once (None if none matches)."""
    for fault in faults:
        if fault.times > 0 and fault.method == method and fault.path.search(path):
            fault.times -= 1
            return fault
    return None


def default_error(status: int, message: str = "Error.") -> tuple[str, str | None, str]:
    """``(type, code, message)`` of an injected ``status``."""
    return FAULTS.get(status, ("server_error", None, message))


class FaultSwitches(ServerBase):
    """The public fault switches of :class:`FakeOpenAI`, and the ``_take_*`` methods the server calls."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._request_faults: list[RequestFault] = []
        self._lost_responses: list[RequestFault] = []
        self._drops: list[ConnectionFault] = []
        self._delays: list[ConnectionFault] = []
        self._corruptions: list[Corruption] = []
        self._line_faults: dict[str, LineFault] = {}
        self._cuts = 0
        self._omissions = 0
        self._outages: list[Outage] = []
        self._rewrites: list[Rewrite] = []
        self._output_rewrites: list[OutputRewrite] = []

    # ---------------------------------------------------------------------------------------------- switches

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
                RequestFault(method.upper(), re.compile(path), status, times, retry_after, body)
            )

    def remove_endpoint(self, method: str, path: str, *, status: int = 404) -> None:
        """From now on, answer every request of ``method`` whose path matches regex ``path`` as a server that
        does not serve it (``{"detail": "Not Found"}`` or ``"Method Not Allowed"``, as vLLM and infinity-emb
        answer), before auth: a server with no Batch API, or no ``GET /v1/files``."""
        self.fail_requests(method, path, status, times=1 << 62, body=NOT_SERVED.get(status, NOT_SERVED[404]))

    def outage(self, method: str, path: str, seconds: float, *, status: int = 503) -> None:
        """Answer every matching request with ``status`` and the OpenAI error body (``status=0``: close the
        connection unanswered) for the next ``seconds`` of fake time: an outage of minutes or hours, which a
        client that waits with ``sleep=server.advance`` rides out only by waiting. ``method`` ``"*"`` and
        ``path`` ``""`` match every request."""
        with self._lock:
            self._outages.append(Outage(method.upper(), re.compile(path), status, self._clock + seconds))

    def rewrite_answers(self, method: str, path: str, rewrite: Callable[[int, Any], Any], *, times: int = 1) -> None:
        """Hand the next ``times`` answers to matching requests (after they took effect) to ``rewrite(status,
        body)``, ``body`` the parsed JSON (None if it is not JSON); what it returns is sent instead: a
        :class:`~fake_openai.wire.Response` as it is (an HTML page, a cut body), anything else as JSON with the
        same status. For malformed answers: items missing or extra, short or null vectors, no ``index``, an
        error inside a 200, a file object without ``status``."""
        with self._lock:
            self._rewrites.append(Rewrite(method.upper(), re.compile(path), rewrite, times))

    def rewrite_output_lines(self, rewrite: Callable[[list[dict]], list[Any]], *, times: int = 1) -> None:
        """Hand the output lines (parsed, in file order) of the next ``times`` batches that complete with an
        output file to ``rewrite``; the lines it returns are written instead (a str as it is, anything else as
        JSON): a vector of the wrong length, a line twice, a line for a request nobody sent. ``request_counts``
        and billing are unchanged."""
        with self._lock:
            self._output_rewrites.append(OutputRewrite(rewrite, times))

    def lose_responses(self, method: str, path: str, *, status: int = 500, times: int = 1) -> None:
        """Carry out the next ``times`` matching requests, then answer ``status`` as if they had failed:
        the client cannot tell whether a batch was created (why a create must never be blindly retried)."""
        with self._lock:
            self._lost_responses.append(RequestFault(method.upper(), re.compile(path), status, times, None, None))

    def drop_connections(self, method: str, path: str, *, times: int = 1) -> None:
        """Read the next ``times`` matching requests, then close the connection without any answer.

        The request has no effect (nothing is created or billed); the SDK sees the server disconnect and
        raises ``openai.APIConnectionError`` (or retries). ``requests`` lists it with status 0.
        """
        with self._lock:
            self._drops.append(ConnectionFault(method.upper(), re.compile(path), times))

    def delay_responses(self, method: str, path: str, seconds: float, *, times: int = 1) -> None:
        """Answer the next ``times`` matching requests normally, but only after ``seconds`` of real time.

        The request takes effect at once (a ``POST /v1/batches`` creates its batch, as the real API may
        for a client that timed out) and ``requests`` lists it then; only the answer waits. If the client
        hung up meanwhile the answer is dropped quietly. ``stop()`` ends the wait early (nothing is sent).
        """
        if seconds < 0:
            raise ValueError(f"delay must not be negative ({seconds} s)")
        with self._lock:
            self._delays.append(ConnectionFault(method.upper(), re.compile(path), times, seconds))

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
                self._line_faults[text] = LineFault(status, code, message, times)

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
            self._corruptions.append(Corruption(line, times))

    # ---------------------------------------------------------------------------------------------- taking them

    def _take_drop(self, method: str, path: str) -> bool:
        """Whether this request's connection is to be closed unanswered (see drop_connections)."""
        return take(self._drops, method, path) is not None

    def _take_delay(self, method: str, path: str) -> float | None:
        """The real seconds this answer is to wait (see delay_responses), or None."""
        fault = take(self._delays, method, path)
        return None if fault is None else fault.seconds

    def _take_failed_request(self, method: str, path: str) -> Response | None:
        """The error answered instead of the request (see fail_requests), or None."""
        fault = take(self._request_faults, method, path)
        if fault is None:
            return None
        headers = {}
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        if fault.body is not None:
            return json_response(fault.status, fault.body, headers)
        type_, code, message = default_error(fault.status)
        return json_response(fault.status, {"error": error_body(message, type_, None, code)}, headers)

    def _take_outage(self, method: str, path: str) -> Response | None:
        """The answer of an outage under way for this request (see outage), or None."""
        for outage in self._outages:
            if self._clock < outage.until and outage.method in ("*", method) and outage.path.search(path):
                if outage.status == 0:
                    return Response(0, b"", drop=True)
                type_, code, message = default_error(outage.status)
                return json_response(outage.status, {"error": error_body(message, type_, None, code)})
        return None

    def _rewritten(self, method: str, path: str, response: Response) -> Response:
        """``response`` as a rewrite_answers() switch armed for this request makes it."""
        fault = take(self._rewrites, method, path)
        if fault is None or response.drop:
            return response
        try:
            body = json.loads(response.body)
        except ValueError:
            body = None
        answer = fault.rewrite(response.status, body)
        if isinstance(answer, Response):
            return answer
        return Response(response.status, dumps(answer).encode(), headers=response.headers)

    def _rewritten_output(self, lines: list[dict]) -> list[str]:
        """The output lines of a completing batch as a rewrite_output_lines() switch makes them, as text."""
        for fault in self._output_rewrites:
            if fault.times > 0:
                fault.times -= 1
                return [line if isinstance(line, str) else dumps(line) for line in fault.rewrite(lines)]
        return [dumps(line) for line in lines]

    def _take_lost_response(self, method: str, path: str) -> Response | None:
        """The error answered after the request took effect (see lose_responses), or None."""
        fault = take(self._lost_responses, method, path)
        if fault is None:
            return None
        type_, code, message = default_error(fault.status)
        return json_response(fault.status, {"error": error_body(message, type_, None, code)})

    def _take_cut(self) -> bool:
        """Whether this download is to be cut (see cut_downloads)."""
        if self._cuts > 0:
            self._cuts -= 1
            return True
        return False

    def _take_omission(self) -> bool:
        """Whether this completed batch loses its output file (see omit_output_file)."""
        if self._omissions > 0:
            self._omissions -= 1
            return True
        return False

    def _take_corruption(self, lines: int) -> int | None:
        """The line to corrupt in an output file of ``lines`` lines (see corrupt_output), or None."""
        for corruption in self._corruptions:
            if corruption.times > 0 and corruption.line <= lines:
                corruption.times -= 1
                return corruption.line
        return None

    def _take_line_fault(self, texts: list[str]) -> LineFault | None:
        """The fault of a batch line holding ``texts`` (see fail_lines); each armed text used up once."""
        fault = None
        for text in texts:
            if (candidate := self._line_faults.get(text)) is not None and candidate.times > 0:
                candidate.times -= 1
                fault = fault or candidate
        return fault
