"""The embeddings themselves: ``POST /v1/embeddings`` (rate limited), ``GET /v1/models/{id}``, and the
embedding of one request body that a batch line goes through too."""

from __future__ import annotations

import base64
import collections
import functools
from collections.abc import Callable
from typing import Any

from . import rate_limits
from .base import ServerBase
from .rate_limits import RateLimiter
from .vectors import token_count, vector
from .wire import ApiError, Response, json_body, json_response

NATIVE_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
# Models that refuse the `dimensions` parameter.
FIXED_DIMENSIONS = frozenset({"text-embedding-ada-002"})
MAX_INPUTS_PER_REQUEST = 2_048
MAX_TOKENS_PER_INPUT = 8_192
MAX_TOKENS_PER_REQUEST = 300_000
INVALID_INPUT = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."


def texts_of(value: object) -> list[str]:
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


class EmbeddingsAPI(ServerBase):
    """The models, the sync endpoint and its rate limits, and the count of every text billed."""

    def __init__(
        self, *, tokens_per_minute: int | None = None, requests_per_minute: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        # Rate limits of POST /v1/embeddings, per model (None: unlimited). Changing one refills its buckets.
        self.tokens_per_minute = tokens_per_minute
        self.requests_per_minute = requests_per_minute
        self.rate_limited = 0  # requests of POST /v1/embeddings the rate limiter answered with a 429
        self.models: dict[str, int] = dict(NATIVE_DIMENSIONS)  # model -> native dimensions
        # Models that take fewer tokens per input than OpenAI's 8,192, refused as vLLM refuses them.
        self.input_token_limits: dict[str, int] = {}
        self._limiter = RateLimiter()
        self._inputs_by_text: collections.Counter[str] = collections.Counter()
        self._embedding_requests: list[tuple[float, int, int]] = []  # (fake time, inputs, tokens)

    def _embeddings(self, *, body: bytes, **_: object) -> Response:
        params = json_body(body)
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
            texts = texts_of(params["input"])
            result = self._embed(params, texts, admit=functools.partial(self._admit, model))
        except ApiError as e:
            e.headers = {**self._rate_headers(model), **e.headers}
            raise
        self._embedding_requests.append((self._clock, len(texts), result["usage"]["prompt_tokens"]))
        return json_response(200, result, self._rate_headers(model))

    def _limits(self) -> list[tuple[str, int]]:
        return rate_limits.limits(self.requests_per_minute, self.tokens_per_minute)

    def _rate_headers(self, model: str) -> dict[str, str]:
        return self._limiter.headers(model, self._limits(), self._clock)

    def _admit(self, model: str, tokens: int) -> None:
        try:
            self._limiter.admit(model, tokens, self._limits(), self._clock)
        except ApiError:
            self.rate_limited += 1
            raise

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
        limit = self.input_token_limits.get(model)
        for count in counts:
            if limit is not None and count > limit:
                raise ApiError(
                    400,
                    f"This model's maximum context length is {limit} tokens. However, you requested {count} "
                    "tokens in the input for embedding generation. Please reduce the length of the input.",
                    type_="BadRequestError",
                )
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
            unit = vector(model, text, size)
            embedding: object
            if encoding_format == "base64":
                embedding = base64.b64encode(unit.astype("<f4").tobytes()).decode("ascii")
            else:
                embedding = unit
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        self._inputs_by_text.update(texts)
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": sum(counts), "total_tokens": sum(counts)},
        }

    def _get_model(self, model: str, **_: object) -> Response:
        if model not in self.models:
            raise ApiError(404, f"The model '{model}' does not exist", param="model", code="model_not_found")
        return json_response(200, {"id": model, "object": "model", "created": 1_705_953_180, "owned_by": "system"})
