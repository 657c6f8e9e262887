"""The embedding models embedsql knows, and how a job picks one.

A model's facts (size, token limit, tokenizer, price) decide how shards are cut and what a job
costs, so they live in one table here rather than spread over the runners.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .config import Settings
from .errors import ConfigError

__all__ = [
    "DEFAULT_OPENAI_MODEL",
    "LOCAL_MODEL",
    "MODELS",
    "ModelChoice",
    "ModelInfo",
    "choose_model",
    "compatible_model",
    "estimate_cost",
    "recorded_choice",
]


@dataclass(frozen=True)
class ModelInfo:
    """What embedsql must know about a model to plan, run and price a job."""

    name: str
    # "local": the bundled model, run in process; "openai": the OpenAI API.
    provider: str
    # Size of the vectors the model returns when no `dimensions` is asked for.
    dimensions: int
    # Most tokens one input may hold; longer inputs are truncated.
    max_tokens: int
    # Tokenizer the limit is counted in: "cl100k_base" (OpenAI) or "wordpiece" (the local model).
    tokenizer: str
    # Whether the API accepts `dimensions` to return shorter vectors.
    reducible: bool = False
    # US dollars per million input tokens, on the standard API and on the Batch API.
    price_standard: float = 0.0
    price_batch: float = 0.0
    # The Batch API's enqueued-token limit for the model at usage tier 1 (the safe default budget).
    enqueued_tokens: int = 3_000_000


# The bundled offline model (embedsql.local_model runs it); 256 tokens is sentence-transformers'
# max_seq_length for it.
LOCAL_MODEL = ModelInfo(
    name="all-MiniLM-L6-v2", provider="local", dimensions=384, max_tokens=256, tokenizer="wordpiece"
)
DEFAULT_OPENAI_MODEL = "text-embedding-3-small"
MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        LOCAL_MODEL,
        ModelInfo("text-embedding-3-small", "openai", 1536, 8192, "cl100k_base", True, 0.02, 0.01),
        ModelInfo("text-embedding-3-large", "openai", 3072, 8192, "cl100k_base", True, 0.13, 0.065),
        ModelInfo("text-embedding-ada-002", "openai", 1536, 8192, "cl100k_base", False, 0.10, 0.05),
    )
}


@dataclass(frozen=True)
class ModelChoice:
    """The model a job uses, the vector size it produces, and why it was chosen."""

    model: ModelInfo
    dimensions: int
    reason: str


def choose_model(settings: Settings) -> ModelChoice:
    """Pick the model and vector size from ``settings``, or explain what is wrong with them."""
    if settings.model is not None:
        info = MODELS.get(settings.model)
        if info is None and settings.runner == "sync":
            # Another server's model (Ollama, vLLM, TEI...): its size comes from its first answer.
            info = compatible_model(settings.model, max_tokens=settings.max_input_tokens)
            return ModelChoice(info, settings.dimensions or 0, "set by --model")
        if info is None:
            raise ConfigError(
                f"unknown model {settings.model!r}. Known models: {', '.join(MODELS)}. Check --model / EMBEDSQL_MODEL."
            )
        reason = f"set by {_origin(settings, 'model', '--model', 'EMBEDSQL_MODEL')}"
    elif settings.openai_api_key:
        info = MODELS[DEFAULT_OPENAI_MODEL]
        reason = "OPENAI_API_KEY is configured, so the OpenAI default"
    else:
        info = LOCAL_MODEL
        reason = (
            "no OPENAI_API_KEY configured, so the offline default "
            f"(set OPENAI_API_KEY or pass --model {DEFAULT_OPENAI_MODEL} to use OpenAI)"
        )
    return ModelChoice(info, _dimensions(info, settings.dimensions), reason)


def recorded_choice(model: str, dimensions: int, reason: str = "recorded in the job") -> ModelChoice:
    """The model that a job or a table recorded by name and vector size: one embedsql knows, or one
    that an OpenAI-compatible server served at that size."""
    info = MODELS.get(model) or dataclasses.replace(compatible_model(model), dimensions=int(dimensions))
    return ModelChoice(info, int(dimensions), reason)


def compatible_model(name: str, *, max_tokens: int | None = None) -> ModelInfo:
    """A model this embedsql does not know, served by an OpenAI-compatible server (sync runner), taking
    ``max_tokens`` per input (``--max-input-tokens``; unknown: OpenAI's 8,192)."""
    return MODELS.get(name) or ModelInfo(
        name=name,
        provider="compatible",
        dimensions=0,
        max_tokens=max_tokens or 8192,
        tokenizer="cl100k_base",
        reducible=True,
    )


def _dimensions(info: ModelInfo, asked: int | None) -> int:
    if asked is None or asked == info.dimensions:
        return info.dimensions
    if not info.reducible:
        raise ConfigError(
            f"model {info.name} always returns {info.dimensions} dimensions; it cannot give {asked}. "
            "Drop --dimensions / EMBEDSQL_DIMENSIONS, or use a text-embedding-3 model."
        )
    if asked > info.dimensions:
        raise ConfigError(
            f"--dimensions {asked} is more than model {info.name} returns ({info.dimensions}). "
            f"Pick a value from 1 to {info.dimensions}."
        )
    return asked


def _origin(settings: Settings, name: str, flag: str, env: str) -> str:
    source = settings.sources.get(name, "flag")
    return {"flag": flag, "environment": env, ".env": f"{env} in .env"}.get(source, source)


def estimate_cost(model: ModelInfo, tokens: int, settings: Settings) -> tuple[float, float] | None:
    """US dollars for ``tokens`` on the Batch API and on the standard API (None: the model is free).

    ``settings.prices`` overrides the built-in table, for new prices or negotiated ones.
    """
    override = settings.prices.get(model.name, {})
    batch = override.get("batch", model.price_batch)
    standard = override.get("standard", model.price_standard)
    if model.provider != "openai" and not override:
        return None
    return tokens / 1e6 * batch, tokens / 1e6 * standard
