"""The OpenAI API (embeddings, Files, Batches), through the official SDK: the only module that imports it.

It speaks in small frozen dataclasses and ``RemoteError``s, so the batch scheduler above it never
sees an SDK object, and the SDK's own error text (which quotes part of the API key on a 401) never
reaches the user.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import numpy as np
import openai

from ..config import Settings
from ..errors import ConfigError, RemoteError, StorageError
from ..failpoints import failpoint
from ..files import commit_file, part_path
from ..models import DEFAULT_OPENAI_MODEL, ModelInfo, compatible_model
from ..tokens import count_tokens

__all__ = [
    "MAX_INPUTS_PER_REQUEST",
    "MAX_TOKENS_PER_REQUEST",
    "BatchInfo",
    "OpenAIClient",
    "RateLimits",
    "SyncAnswer",
    "UploadedFile",
    "needs_key",
    "pack",
    "utf8_lengths",
]

_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(frozen=True)
class BatchInfo:
    """What embedsql needs of a batch object."""

    id: str
    status: str
    input_file_id: str
    output_file_id: str | None
    error_file_id: str | None
    total: int
    completed: int
    failed: int
    created_at: int
    metadata: Mapping[str, str] = field(default_factory=dict)
    # (code, message) of each validation error in `errors.data`.
    errors: tuple[tuple[str | None, str | None], ...] = ()

    @property
    def terminal(self) -> bool:
        """Whether the batch will not change any more."""
        return self.status in _TERMINAL


@dataclass(frozen=True)
class UploadedFile:
    """An uploaded input file."""

    id: str
    created_at: int


class OpenAIClient:
    """The OpenAI API (or a compatible server) for one key: embeddings, and the Files and Batches
    APIs (upload, create, find, poll, cancel and download batches)."""

    def __init__(self, settings: Settings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        key = settings.openai_api_key
        if not key and not needs_key(settings.openai_base_url):
            # A server of one's own (vLLM, Ollama, TEI) usually takes any key or none; the SDK demands one.
            key = _NO_KEY
        if not key:
            raise ConfigError(
                f"model {settings.model or DEFAULT_OPENAI_MODEL} runs on the OpenAI API, which needs a key. "
                "Set OPENAI_API_KEY in the environment or in .env, or use the offline model "
                "(--model all-MiniLM-L6-v2)."
            )
        self._key = key
        self._sleep = sleep
        self._settings = settings
        self._made: tuple[openai.OpenAI, openai.OpenAI] | None = None
        self._making = threading.Lock()  # the sync runner's threads may be the first to ask

    @property
    def client(self) -> openai.OpenAI:
        """The SDK's client, made when first used: making it loads the system's certificates (~0.1 s),
        which a job that finds every shard loaded never needs."""
        return self._clients()[0]

    @property
    def _no_retries(self) -> openai.OpenAI:
        """The client without the SDK's retries, for the sync runner's requests: made once, as
        ``with_options`` copies the client each time."""
        return self._clients()[1]

    def _clients(self) -> tuple[openai.OpenAI, openai.OpenAI]:
        with self._making:
            if self._made is None:
                settings = self._settings
                client = openai.OpenAI(
                    api_key=self._key,
                    base_url=settings.openai_base_url,
                    organization=settings.openai_org_id,
                    project=settings.openai_project_id,
                    max_retries=settings.openai_max_retries,
                    timeout=settings.openai_timeout,
                )
                self._made = (client, client.with_options(max_retries=0))
            return self._made

    def embed(self, texts: list[str], *, model: str, dimensions: int | None) -> np.ndarray:
        """Vectors of ``texts`` from the synchronous embeddings API, packed under the per-request
        limits, with the SDK's retries (for a few query texts; the sync runner paces itself)."""
        vectors = [
            vector
            for start, end in pack(compatible_model(model), texts, max_inputs=MAX_INPUTS_PER_REQUEST)
            for vector in self.embed_request(texts[start:end], model=model, dimensions=dimensions, retries=True).vectors
        ]
        if len({len(v) for v in vectors}) > 1:
            raise self._malformed("answered vectors of different lengths")
        return np.stack(vectors) if vectors else np.zeros((0, dimensions or 0), np.float32)

    def embed_request(
        self, texts: list[str], *, model: str, dimensions: int | None, retries: bool = False, tried: int = 0
    ) -> SyncAnswer:
        """One synchronous embeddings request, with the rate-limit headers of the answer. SDK retries
        are off unless asked for: the sync runner paces and retries itself, on its own clock, and says how
        often it ``tried`` the same texts before (a 429 after tries is one the server kept answering)."""
        kwargs: dict[str, Any] = {"model": model, "input": texts, "encoding_format": "base64"}
        if dimensions is not None:
            kwargs["dimensions"] = dimensions
        client = self.client if retries else self._no_retries
        try:
            raw = client.embeddings.with_raw_response.create(**kwargs)
        except openai.APIError as e:
            raise self._translate("embed the texts", e, retried=tried > 0) from None
        # Parsed here rather than by the SDK, which passes odd answers on as odd objects or tracebacks.
        return self._embeddings(raw.http_response, len(texts), RateLimits.from_headers(raw.headers))

    def _embeddings(self, response: httpx2.Response, n: int, limits: RateLimits) -> SyncAnswer:
        """The answer to an embeddings request of ``n`` inputs, or the service ``RemoteError`` that says
        what is wrong with it."""
        content_type = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            page = "an HTML page" if "html" in content_type else "something"
            raise self._malformed(f"answered {page} ({content_type}), not JSON") from None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            said = self._redact(str(body["error"].get("message") or body["error"])).rstrip(".")
            raise self._malformed(f"answered {response.status_code} with an error object ({said})")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise self._malformed("answered JSON that is not an embeddings list")
        if len(data) != n:
            raise self._malformed(f"answered {len(data)} vector{'s' * (len(data) != 1)} for {n} input{'s' * (n != 1)}")
        vectors: list[np.ndarray | None] = [None] * n
        encoded: list[str | None] = [None] * n
        for item in data:
            index = item.get("index") if isinstance(item, dict) else None
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n:
                raise self._malformed(f"answered an item without a valid index ({_shown(index)})")
            if vectors[index] is not None:
                raise self._malformed(f"answered index {index} twice")
            embedding = item.get("embedding")
            vectors[index] = self._vector(embedding, index)
            if isinstance(embedding, str):
                encoded[index] = embedding
        lengths = {len(v) for v in vectors if v is not None}
        if lengths == {0}:
            raise self._malformed("answered empty vectors")
        usage = body.get("usage")
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return SyncAnswer(
            [v for v in vectors if v is not None],
            encoded,
            tokens if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0 else None,
            limits,
        )

    def _vector(self, embedding: object, index: int) -> np.ndarray:
        """One item's embedding, base64 (little-endian float32) or a list of numbers."""
        if isinstance(embedding, str):
            try:
                packed = base64.b64decode(embedding, validate=True)
            except ValueError:
                packed = b"\x00"
            if len(packed) % 4:
                raise self._malformed(f"answered a vector that is not base64 float32 (item {index})")
            # A view of the decoded bytes: a copy of 6 kB per text is what a runner can least afford.
            return np.frombuffer(packed, dtype="<f4").astype(np.float32, copy=False)
        if isinstance(embedding, list) and all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in embedding
        ):
            return np.asarray(embedding, dtype=np.float32)
        raise self._malformed(f"answered {_shown(embedding)} as the vector of item {index}")

    def _malformed(self, what: str) -> RemoteError:
        """The service failure of an answer that is not what the embeddings API answers."""
        return RemoteError(
            f"the server at {self.base_url} {what}. Check that OPENAI_BASE_URL / --base-url points at an "
            "OpenAI-compatible embeddings API."
        )

    @property
    def base_url(self) -> str:
        """The API's address, as requests go to it."""
        return str(self.client.base_url).rstrip("/")

    def upload(self, path: Path, name: str, *, wait_limit: float = 600.0) -> UploadedFile:
        """Upload a shard as a batch input file named ``name`` and wait until it is processed.

        A file object without ``status`` (the Files API of servers that do not process files) is ready
        at once; one that stays in another state for ``wait_limit`` seconds of waiting stops the run.
        """
        with open(path, "rb") as f:
            uploaded = self._call("upload the shard", self.client.files.create, file=(name, f), purpose="batch")
        # A file is not usable for a batch until it is processed; creating one earlier is refused.
        wait, waited = 0.5, 0.0
        while (getattr(uploaded, "status", None) or "processed") not in ("processed", "error"):
            if waited >= wait_limit:
                base = str(self.client.base_url).rstrip("/")
                raise RemoteError(
                    f"the file {uploaded.id} uploaded to {base} was still {uploaded.status!r} after {waited:g} s, "
                    "not 'processed'; the server does not get it ready for a batch. Try again later, or use "
                    "--runner sync.",
                    retryable=True,
                )
            self._sleep(wait)
            waited += wait
            wait = min(wait * 2, 10.0)
            uploaded = self._call("check the uploaded file", self.client.files.retrieve, uploaded.id)
        if getattr(uploaded, "status", None) == "error":
            raise RemoteError(f"OpenAI could not process the uploaded file {name}: {uploaded.status_details}")
        return UploadedFile(uploaded.id, int(uploaded.created_at))

    def close(self) -> None:
        """Close the HTTP connections (if any request was made)."""
        if self._made is not None:
            self._made[0].close()

    def __enter__(self) -> OpenAIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def find_file(self, name: str) -> UploadedFile | None:
        """A processed batch input file named ``name``, uploaded before (the newest if several)."""
        try:  # iterating the pages makes requests too
            files = [f for f in self.client.files.list(purpose="batch") if f.filename == name]
        except openai.APIStatusError as e:
            if e.status_code in (404, 405):
                return None  # a server that cannot list files: upload again (a file costs nothing; a batch would)
            raise self._translate("list files", e) from None
        except openai.APIError as e:
            raise self._translate("list files", e) from None
        ready = [f for f in files if (getattr(f, "status", None) or "processed") == "processed"]
        if not ready:
            return None
        newest = max(ready, key=lambda f: f.created_at)
        return UploadedFile(newest.id, int(newest.created_at))

    def create(self, file_id: str, metadata: Mapping[str, str]) -> BatchInfo:
        """Create a batch, with SDK retries off: a repeated create could start (and bill) a second batch."""
        client = self.client.with_options(max_retries=0)
        batch = self._call(
            "create the batch",
            client.batches.create,
            input_file_id=file_id,
            endpoint="/v1/embeddings",
            completion_window="24h",
            metadata=dict(metadata),
        )
        return _info(batch)

    def find(self, metadata: Mapping[str, str], *, since: int) -> BatchInfo | None:
        """The newest batch whose metadata includes ``metadata``, created at or after ``since``."""
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": 100}
            if after is not None:
                kwargs["after"] = after
            page = self._call("list batches", self.client.batches.list, **kwargs)
            for batch in page.data:
                if batch.created_at < since:
                    return None  # newest first: nothing older can be ours
                if all((batch.metadata or {}).get(k) == v for k, v in metadata.items()):
                    return _info(batch)
            if not page.has_more or not page.data:
                return None
            after = page.data[-1].id

    def retrieve(self, batch_id: str) -> BatchInfo:
        """The batch as it is now."""
        return _info(self._call("check the batch", self.client.batches.retrieve, batch_id))

    def cancel(self, batch_id: str) -> BatchInfo:
        """Ask for the batch to be cancelled; a batch that already finished is returned as it is."""
        try:
            # The SDK retries a 409 by default; here it means "already finished", an answer, not a fault.
            return _info(self.client.with_options(max_retries=0).batches.cancel(batch_id))
        except openai.ConflictError:
            return self.retrieve(batch_id)
        except openai.BadRequestError as e:
            # Other servers refuse to cancel a finished batch with 400 ("already in terminal status"): if it
            # finished, that is the same answer; if not, the refusal stands.
            info = self.retrieve(batch_id)
            if info.terminal:
                return info
            raise self._translate("cancel the batch", e) from None
        except openai.APIError as e:
            raise self._translate("cancel the batch", e) from None

    def download(self, file_id: str, destination: Path, *, expected_lines: int | None, tries: int = 3) -> int:
        """Stream a file to ``destination`` (written aside, then renamed); returns its complete lines.

        A download that ends early (fewer lines than ``expected_lines``, or cut inside a line) is tried
        again; after ``tries`` short ones, the complete lines are kept and the rest count as missing.
        """
        part = part_path(destination)
        lines = 0
        for attempt in range(1, tries + 1):
            try:
                with self.client.files.with_streaming_response.content(file_id) as response:
                    response.stream_to_file(part)
            except OSError as e:
                part.unlink(missing_ok=True)
                raise StorageError.writing(f"result file {destination.name}", destination.parent, e) from e
            except (openai.APIConnectionError, httpx2.HTTPError) as e:
                if attempt == tries:
                    raise RemoteError(
                        f"could not download file {file_id} after {tries} tries ({self._redact(str(e))}). "
                        "Check the network.",
                        retryable=True,
                        request=f"GET {self.client.base_url.path.rstrip('/')}/files/{file_id}/content",
                    ) from None
                self._sleep(2.0 * attempt)
                continue
            except openai.APIError as e:
                raise self._translate(f"download file {file_id}", e) from None
            failpoint("download")
            lines = _complete_lines(part)
            if expected_lines is None or lines >= expected_lines:
                break
            if attempt < tries:
                self._sleep(2.0 * attempt)
        try:
            commit_file(part, destination)
        except OSError as e:
            part.unlink(missing_ok=True)
            raise StorageError.writing(f"result file {destination.name}", destination.parent, e) from e
        return lines

    def _call(self, doing: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except openai.APIError as e:
            raise self._translate(doing, e) from None

    def _translate(self, doing: str, error: openai.APIError, *, retried: bool = False) -> RemoteError:
        """One place that turns SDK errors into messages with the fix, and never the key."""
        translated = self._describe(doing, error, retried=retried)
        request = getattr(error, "request", None)
        if request is not None:
            translated.request = f"{request.method} {request.url.path}"
        return translated

    def _describe(self, doing: str, error: openai.APIError, *, retried: bool) -> RemoteError:
        base = self.base_url
        if isinstance(error, openai.APITimeoutError):  # before its parent, APIConnectionError
            return RemoteError(
                f"the OpenAI API at {base} did not answer in time to {doing} (APITimeoutError). Check the network "
                "and OPENAI_BASE_URL, or allow more time with EMBEDSQL_OPENAI_TIMEOUT.",
                retryable=True,
            )
        if isinstance(error, openai.APIConnectionError):
            return RemoteError(
                f"could not reach the OpenAI API at {base} to {doing} ({type(error).__name__}). Check the network "
                "and OPENAI_BASE_URL.",
                retryable=True,
            )
        if isinstance(error, openai.APIResponseValidationError):
            return RemoteError(
                f"the API at {base} answered in a form the OpenAI API does not use while trying to {doing} "
                f"({error.status_code}): {self._redact(error.message)} Check that OPENAI_BASE_URL points at an "
                "OpenAI-compatible API.",
                status=error.status_code,
            )
        if not isinstance(error, openai.APIStatusError):
            return RemoteError(f"the OpenAI API failed to {doing}: {self._redact(str(error))}")
        status = error.status_code
        said = self._server_message(error)
        retry_after = _seconds(error.response.headers.get("retry-after"))

        def answered(message: str, *, retryable: bool = False) -> RemoteError:
            return RemoteError(message, retryable=retryable, status=status, retry_after=retry_after)

        if isinstance(error, openai.AuthenticationError):
            return answered(
                f"OpenAI refused the API key ({status} while trying to {doing} at {base}). Check OPENAI_API_KEY in "
                "the environment or .env: it may be mistyped, revoked, or for another project (OPENAI_PROJECT_ID)."
            )
        if isinstance(error, openai.PermissionDeniedError):
            return answered(
                f"OpenAI denied access ({status} while trying to {doing} at {base}): {said} "
                "Check that the key's project may use the Batch API and this model."
            )
        request = getattr(error, "request", None)
        if isinstance(error, openai.RateLimitError):
            # The SDK numbers its tries in a header: "kept answering" only when it really asked again.
            retried = retried or (
                request is not None and request.headers.get("x-stainless-retry-count", "0") not in ("", "0")
            )
            return answered(
                f"OpenAI {'kept answering' if retried else 'answered'} {status} (rate limit) while trying to {doing} "
                f"at {base}: "
                f"{said} Wait a while before going on.",
                retryable=True,
            )
        if (
            status in (404, 405)
            and request is not None
            and request.url.path.rstrip("/").endswith(("/files", "/batches"))
        ):
            return answered(
                f"{base} has no Batch API ({status} on {request.method} {request.url.path}): it serves no "
                "Files or Batches endpoint. Use --runner sync to embed through its /v1/embeddings."
            )
        if isinstance(error, openai.NotFoundError) or status == 405:
            return answered(
                f"{base} has no such endpoint or model ({status} while trying to {doing}): {said} "
                "Check OPENAI_BASE_URL and --model / EMBEDSQL_MODEL."
            )
        if isinstance(error, openai.BadRequestError | openai.UnprocessableEntityError):
            return answered(f"OpenAI refused the request ({status} while trying to {doing} at {base}): {said}")
        if isinstance(error, openai.ConflictError):
            return answered(
                f"OpenAI answered {status} (conflict) while trying to {doing} at {base}: {said}", retryable=True
            )
        if isinstance(error, openai.InternalServerError):
            return answered(
                f"OpenAI had a server error ({status} while trying to {doing} at {base}): {said}", retryable=True
            )
        return answered(
            f"OpenAI answered {status} while trying to {doing} at {base}: {said}",
            retryable=status >= 500 or status in (408, 409),
        )

    def _server_message(self, error: openai.APIStatusError) -> str:
        body = error.body if isinstance(error.body, dict) else {}
        # OpenAI says it in "message"; FastAPI servers (vLLM, infinity-emb) in "detail".
        detail = body.get("detail") if isinstance(body.get("detail"), str) else None
        message = body.get("message") or detail or error.message
        return self._redact(str(message)).rstrip(".") + "."

    def _redact(self, text: str) -> str:
        if self._key != _NO_KEY:
            text = text.replace(self._key, "***")
        # The API quotes keys masked in the middle (sk-abc***wxyz): keep no part of any.
        return re.sub(r"\bsk-[A-Za-z0-9_\-*]+", "sk-***", text)


# Sent to a server of one's own that needs no key: the SDK will not go without one.
_NO_KEY = "no-key"


def needs_key(base_url: str | None) -> bool:
    """Whether the API at ``base_url`` (None: OpenAI's) needs a key: OpenAI's does, another may not."""
    if not base_url:
        return True
    host = urlsplit(base_url).hostname or ""  # an http(s) URL with a host (``config``)
    return host == "openai.com" or host.endswith(".openai.com")


def _shown(value: object) -> str:
    """``value`` as a message shows it: short."""
    text = json.dumps(value) if not isinstance(value, np.ndarray) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _info(batch: Any) -> BatchInfo:
    counts = batch.request_counts
    errors = tuple((e.code, e.message) for e in (batch.errors.data or [])) if batch.errors else ()
    return BatchInfo(
        id=batch.id,
        status=batch.status,
        input_file_id=batch.input_file_id,
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        total=counts.total if counts else 0,
        completed=counts.completed if counts else 0,
        failed=counts.failed if counts else 0,
        created_at=int(batch.created_at),
        metadata=dict(batch.metadata or {}),
        errors=errors,
    )


# Per-request limits of /v1/embeddings.
MAX_INPUTS_PER_REQUEST = 2048
MAX_TOKENS_PER_REQUEST = 300_000


def pack(
    model: ModelInfo, texts: Sequence[str], *, max_inputs: int, max_tokens: int = MAX_TOKENS_PER_REQUEST
) -> list[tuple[int, int]]:
    """``(start, end)`` of consecutive ``texts`` so that each request holds at most ``max_inputs``
    inputs and ``max_tokens`` tokens in ``model``'s tokenizer (a text alone is always a request): each
    request as long as the exact token counts allow.

    Exact, but counted only where it must be: a cl100k token is at least one byte, so a run of texts
    whose UTF-8 bytes stay within ``max_tokens`` fits without counting; only a request whose bytes
    would exceed it has its texts counted (each text at most once).
    """
    n = len(texts)
    if model.tokenizer != "cl100k_base":  # no bound known for other tokenizers: count everything
        counts = count_tokens(model, texts)
        sizes = counts
    else:
        counts = np.full(n, -1, dtype=np.int64)
        sizes = utf8_lengths(texts)
    # ends[i]: the bytes (or tokens) of texts[:i]
    ends = np.concatenate(([0], np.cumsum(sizes)))
    bounds = []
    start = 0
    while start < n:
        end = min(n, start + max_inputs)
        if ends[end] - ends[start] > max_tokens:
            uncounted = start + np.flatnonzero(counts[start:end] < 0)
            if len(uncounted):
                counts[uncounted] = count_tokens(model, [texts[int(i)] for i in uncounted])
            fits = int(np.searchsorted(np.cumsum(counts[start:end]), max_tokens, side="right"))
            end = start + max(fits, 1)
        bounds.append((start, end))
        start = end
    return bounds


def utf8_lengths(texts: Sequence[str]) -> np.ndarray:
    """The UTF-8 bytes of each text (int64 array); an ASCII text's length is its bytes, without encoding it."""
    return np.fromiter((len(t) if t.isascii() else len(t.encode("utf-8")) for t in texts), np.int64, len(texts))


@dataclass(frozen=True)
class RateLimits:
    """What the x-ratelimit-* headers of an answer say is left, and in how many seconds it refills."""

    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests: float | None = None
    reset_tokens: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimits:
        """Read the headers (absent ones stay None)."""

        def number(name: str) -> int | None:
            value = headers.get(name)
            return int(float(value)) if value else None

        return cls(
            limit_requests=number("x-ratelimit-limit-requests"),
            limit_tokens=number("x-ratelimit-limit-tokens"),
            remaining_requests=number("x-ratelimit-remaining-requests"),
            remaining_tokens=number("x-ratelimit-remaining-tokens"),
            reset_requests=_seconds(headers.get("x-ratelimit-reset-requests")),
            reset_tokens=_seconds(headers.get("x-ratelimit-reset-tokens")),
        )


@dataclass(frozen=True)
class SyncAnswer:
    """Vectors of one synchronous request, in input order, with its tokens and the limits left."""

    # One per input; all of one length unless the server gave some input a vector of another.
    vectors: list[np.ndarray]
    # Each vector's base64 text as the server wrote it (None where it answered a list of numbers), so
    # that a runner writing base64 need not encode it again.
    encoded: list[str | None]
    # The request's prompt tokens as the server billed them; None when it did not say.
    tokens: int | None
    limits: RateLimits


def _seconds(value: str | None) -> float | None:
    """A duration as OpenAI writes it ("6ms", "1.2s", "1m3s", or plain seconds "20") in seconds."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value)
    if not parts:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[unit] for n, unit in parts)


def _complete_lines(path: Path) -> int:
    """Make ``path`` end at a complete line and count its lines.

    A last line without a newline is kept when it is whole JSON (a server may omit the final
    newline) and dropped when it was cut short: a half line would spoil the whole file.
    """
    with open(path, "rb+") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        size = f.tell()
        tail_start = size
        while tail_start > 0:
            step = min(1 << 16, tail_start)
            f.seek(tail_start - step)
            newline = f.read(step).rfind(b"\n")
            if newline >= 0:
                tail_start = tail_start - step + newline + 1
                break
            tail_start -= step
        if tail_start == size:
            return lines
        f.seek(tail_start)
        tail = f.read()
        try:
            json.loads(tail)
        except ValueError:
            f.truncate(tail_start)
            return lines
        f.write(b"\n")
        return lines + 1
