"""The server: :class:`FakeOpenAI` joins the API's parts, routes each request and serves them over HTTP."""

from __future__ import annotations

import collections
import re
import threading
import traceback
from collections.abc import Callable
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from .base import API_KEY
from .batch_lifecycle import BatchLifecycle
from .batches import BatchRecord
from .files import FileRecord
from .http_server import HTTPServer
from .wire import ApiError, Response, error_body, json_response

NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth "
    "(i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the "
    "API from your browser and are prompted for a username and password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)


def mask_key(key: str) -> str:
    """The key as OpenAI echoes it in a 401: first 8 characters, one ``*`` per hidden one, last 4."""
    if len(key) <= 12:
        return key[:2] + "*" * max(len(key) - 2, 0)
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


class FakeOpenAI(BatchLifecycle):
    """A loopback OpenAI API for the Files, Batches and Embeddings endpoints, on a fake clock.

    Use as a context manager (``with FakeOpenAI() as server: ...``); ``base_url`` is then
    ``http://127.0.0.1:<port>/v1``. Tune the public attributes (timings in fake seconds, limits,
    ``shuffle_output``, ``models``, ``tokens_per_minute``, ``requests_per_minute``) and the fault switches
    from the test; read ``batches``, ``files``, ``inputs_by_text``, ``requests``, ``embedding_requests`` and
    ``rate_limited`` to assert what happened.

    Its parts, each a base class in a module of its own: the fault switches (:mod:`.faults`), files
    (:mod:`.files`), embeddings and their rate limits (:mod:`.embeddings`), batches (:mod:`.batches`) and
    how they move on (:mod:`.batch_lifecycle`).
    """

    def __init__(
        self,
        *,
        api_key: str | None = API_KEY,
        seed: int = 0,
        tokens_per_minute: int | None = None,
        requests_per_minute: int | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            seed=seed,
            tokens_per_minute=tokens_per_minute,
            requests_per_minute=requests_per_minute,
        )
        self._requests: list[tuple[str, str, int]] = []
        self._headers: list[tuple[str, str, dict[str, str]]] = []
        self.unexpected_errors: list[str] = []  # tracebacks of server bugs (answered with a 500)
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------------------------- lifecycle

    def start(self) -> FakeOpenAI:
        """Bind 127.0.0.1 on a free port and serve in a background thread."""
        if self._httpd is not None:
            raise RuntimeError("FakeOpenAI is already running")
        self._httpd = HTTPServer(self)
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

    # ---------------------------------------------------------------------------------------------- introspection

    @property
    def batches(self) -> dict[str, BatchRecord]:
        """Batch records by id, brought up to the current clock (``batch["status"]`` reads the API field)."""
        with self._lock:
            self._sync()
            return self._batches

    @property
    def files(self) -> dict[str, FileRecord]:
        """File records by id, with ``content`` and ``deleted`` beside the API fields."""
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
            return self._batches[batch_id].tokens

    # ---------------------------------------------------------------------------------------------- HTTP entry

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """Answer one request (called by the HTTP handler threads)."""
        path = urlsplit(target).path
        query = {k: v[-1] for k, v in parse_qs(urlsplit(target).query).items()}
        with self._lock:
            self._headers.append((method, path, dict(headers)))
            if self._take_drop(method, path):
                self._requests.append((method, path, 0))
                return Response(0, b"", drop=True)
            if (outage := self._take_outage(method, path)) is not None:
                self._requests.append((method, path, outage.status))
                return outage
            try:
                response = self._take_failed_request(method, path) or self._route(method, path, query, headers, body)
                response = self._take_lost_response(method, path) or response
                response = self._rewritten(method, path, response)
            except ApiError as e:
                response = json_response(e.status, e.body, e.headers)
            except Exception:
                self.unexpected_errors.append(traceback.format_exc())
                response = json_response(
                    500, {"error": error_body("fake server bug", "server_error", None, "server_error")}
                )
            if (delay := self._take_delay(method, path)) is not None:
                response.delay = delay
            self._requests.append((method, path, response.status))
            return response

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Response:
        self._authenticate(headers.get("authorization"))
        self._sync()
        for route_method, pattern, handler in ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                # Looked up on the instance, so that a subclass's override serves the route.
                serve = getattr(self, handler.__name__)
                return serve(*match.groups(), query=query, headers=headers, body=body)
        raise ApiError(404, f"Invalid URL ({method} {path})")

    def _authenticate(self, authorization: str | None) -> None:
        if self.api_key is None:  # a server that needs no key (a local vLLM, Ollama, infinity-emb) takes any
            return
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


Handler = Callable[..., Response]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
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
