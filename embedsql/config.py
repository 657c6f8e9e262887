"""Settings: one dataclass of defaults, and the one loader that fills it.

Precedence, highest first: values passed by the caller (the CLI passes only flags the user typed),
the process environment, ``./.env`` (read without touching ``os.environ``), ``embedsql.toml`` or
``[tool.embedsql]`` in ``pyproject.toml``, then the defaults below. Secrets are accepted from the
environment and ``.env`` only: a config file is usually committed, so a key in it is refused.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from .errors import ConfigError

__all__ = ["ENV_VARS", "ON_LONG", "RUNNERS", "SECRET_FIELDS", "Settings", "convert_setting", "load_settings"]


@dataclass(frozen=True)
class Settings:
    """Everything a job can be configured with, and its default."""

    # The DuckDB database that holds the data, the ledger (schema `embedsql`) and the targets.
    db: Path = Path("warehouse.duckdb")
    # A dbt project whose manifest resolves {{ ref() }} and {{ source() }} in queries; its profile's
    # DuckDB file is the database unless db is set. dbt_target picks the profile's output (default:
    # DBT_TARGET, else the profile's own target).
    dbt_project: Path | None = None
    dbt_target: str | None = None
    # Embedding model; None picks text-embedding-3-small when an OpenAI key is configured,
    # otherwise the bundled offline model.
    model: str | None = None
    # Shorter vectors, for models that support it (text-embedding-3-*); None: the model's own size.
    dimensions: int | None = None
    # Where shards and result files live while a job runs; None: `.embedsql/` beside the database.
    work_dir: Path | None = None
    # Keep shard and result files once a job completes (they are deleted by default).
    keep_files: bool = False
    # Shard limits. The Batch API takes at most 50,000 request lines and 200 MB per input file.
    max_shard_lines: int = 50_000
    max_shard_bytes: int = 200_000_000
    # How texts reach the model: "local" (in process), "batch" (the OpenAI Batch API) or "sync" (the
    # /v1/embeddings API of OpenAI or any compatible server); None: local or batch, by model.
    runner: str | None = None
    # Requests the sync runner sends at once, and the most inputs in one (lower it for servers that
    # take fewer than OpenAI's 2,048).
    concurrency: int = 4
    max_inputs_per_request: int = 2048
    # Texts over the model's token limit: "truncate" (token-accurate), "skip" them, or "error".
    on_long: str = "truncate"
    # Attempts per text: lines that fail for a transient reason (5xx, expiry, cancel, lost) are sent
    # again in new shards until this many attempts have been made.
    max_attempts: int = 3
    # Tokens the Batch API may hold for this job at once (the organisation's enqueued-token limit);
    # None: the tier-1 limit of the model.
    max_enqueued_tokens: int | None = None
    # Seconds between polls of running batches; the wait grows up to max_poll_interval while
    # nothing changes.
    poll_interval: float = 5.0
    max_poll_interval: float = 120.0
    # Seconds to wait for the database while another process writes it, before giving up.
    lock_wait: float = 30.0
    # Memory DuckDB may use while embedsql prepares and loads a job (a DuckDB size: 512MB, 2GB); past
    # it, DuckDB spills to a temporary folder beside the database. Queries of `embedsql sql` and
    # `search` keep DuckDB's own default.
    memory_limit: str = "512MB"
    # Prices in US dollars per million tokens, by model: {"text-embedding-3-small": {"batch": 0.01,
    # "standard": 0.02}}; overrides the built-in table for --dry-run's estimate (config file only).
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # OpenAI connection; read by the SDK's runner only. The key is never printed or stored.
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    openai_org_id: str | None = None
    openai_project_id: str | None = None
    # Seconds before one request to OpenAI counts as failed, and how often the SDK retries a request
    # that may be repeated (never a batch creation).
    openai_timeout: float = 120.0
    openai_max_retries: int = 4
    # Where each value came from ("default", "flag", "environment", ".env", a config file path).
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)


# The environment variable of each setting (flags are named after the field, with dashes).
ENV_VARS: dict[str, str] = {
    "db": "EMBEDSQL_DB",
    "dbt_project": "EMBEDSQL_DBT_PROJECT",
    "dbt_target": "EMBEDSQL_DBT_TARGET",
    "model": "EMBEDSQL_MODEL",
    "dimensions": "EMBEDSQL_DIMENSIONS",
    "work_dir": "EMBEDSQL_WORK_DIR",
    "keep_files": "EMBEDSQL_KEEP_FILES",
    "max_shard_lines": "EMBEDSQL_MAX_SHARD_LINES",
    "max_shard_bytes": "EMBEDSQL_MAX_SHARD_BYTES",
    "runner": "EMBEDSQL_RUNNER",
    "concurrency": "EMBEDSQL_CONCURRENCY",
    "max_inputs_per_request": "EMBEDSQL_MAX_INPUTS_PER_REQUEST",
    "on_long": "EMBEDSQL_ON_LONG",
    "max_attempts": "EMBEDSQL_MAX_ATTEMPTS",
    "max_enqueued_tokens": "EMBEDSQL_MAX_ENQUEUED_TOKENS",
    "poll_interval": "EMBEDSQL_POLL_INTERVAL",
    "max_poll_interval": "EMBEDSQL_MAX_POLL_INTERVAL",
    "lock_wait": "EMBEDSQL_LOCK_WAIT",
    "memory_limit": "EMBEDSQL_MEMORY_LIMIT",
    "openai_api_key": "OPENAI_API_KEY",
    "openai_base_url": "OPENAI_BASE_URL",
    "openai_org_id": "OPENAI_ORG_ID",
    "openai_project_id": "OPENAI_PROJECT_ID",
    "openai_timeout": "EMBEDSQL_OPENAI_TIMEOUT",
    "openai_max_retries": "EMBEDSQL_OPENAI_MAX_RETRIES",
}
SECRET_FIELDS = frozenset({"openai_api_key"})
# Names under which a config file might hold a secret, in any case.
_SECRET_NAMES = frozenset({"api_key", *SECRET_FIELDS, *(ENV_VARS[f].lower() for f in SECRET_FIELDS)})
_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "sources"}
# Fields that are not plain strings, and what a raw value must become.
_KINDS: dict[str, type] = {
    "db": Path,
    "dbt_project": Path,
    "work_dir": Path,
    "dimensions": int,
    "max_shard_lines": int,
    "max_shard_bytes": int,
    "max_attempts": int,
    "concurrency": int,
    "max_inputs_per_request": int,
    "max_enqueued_tokens": int,
    "poll_interval": float,
    "max_poll_interval": float,
    "lock_wait": float,
    "openai_timeout": float,
    "openai_max_retries": int,
    "keep_files": bool,
}
ON_LONG = ("truncate", "skip", "error")
# A DuckDB memory size: a number and a unit.
_SIZE = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B|B)", re.IGNORECASE)
RUNNERS = ("local", "batch", "sync")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Merge defaults, config file, ``.env``, environment and ``overrides`` into ``Settings``.

    ``environ`` defaults to ``os.environ`` and ``cwd`` to the current directory; tests pass their
    own. ``overrides`` holds values the user gave explicitly (None values are ignored).
    """
    cwd = Path.cwd() if cwd is None else cwd
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {name: "default" for name in _FIELDS}

    file_values, file_name = _read_config_file(cwd)
    for name, raw in file_values.items():
        where = f"{name} in {file_name}"
        values[name] = _prices(raw, file_name) if name == "prices" else convert_setting(name, raw, where)
        sources[name] = file_name

    dotenv_path = cwd / ".env"
    dotenv = (
        {k: v for k, v in dotenv_values(dotenv_path, interpolate=False).items() if v is not None}
        if dotenv_path.is_file()
        else {}
    )
    for layer, label in ((dotenv, ".env"), (environ, "environment")):
        for name, var in ENV_VARS.items():
            if var in layer:
                values[name] = convert_setting(name, layer[var], f"{var} in {label}")
                sources[name] = label

    for name, value in (overrides or {}).items():
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting {name!r}{_suggest(name)}")
        if value is not None:
            # The Python API takes paths as str or PathLike, like open() does.
            values[name] = Path(value) if _KINDS.get(name) is Path else value
            sources[name] = "flag"

    if values.get("dbt_project") is not None and sources["db"] == "default":
        from .dbt_project import profile_database

        values["db"], sources["db"] = profile_database(
            values["dbt_project"], values.get("dbt_target"), environ=environ, cwd=cwd
        )
    settings = Settings(**values, sources=sources)
    _validate(settings)
    return settings


def _read_config_file(cwd: Path) -> tuple[dict[str, Any], str]:
    """The settings table of ``embedsql.toml``, else ``[tool.embedsql]`` of ``pyproject.toml``."""
    for name, section in (("embedsql.toml", ()), ("pyproject.toml", ("tool", "embedsql"))):
        path = cwd / name
        if not path.is_file():
            continue
        try:
            data: Any = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{name} is not valid TOML: {e}. Fix the file or remove it.") from e
        for part in section:
            data = data.get(part, {}) if isinstance(data, dict) else {}
        label = name if not section else f"[tool.embedsql] in {name}"
        if not isinstance(data, dict):
            raise ConfigError(f"{label} must be a table of settings, not {type(data).__name__}")
        for key in data:
            if key.lower() in _SECRET_NAMES:
                raise ConfigError(
                    f"{label} sets {key!r}: secrets do not belong in a file that is usually committed. "
                    f"Set {ENV_VARS['openai_api_key']} in the environment or in .env instead."
                )
            if key not in _FIELDS:
                raise ConfigError(f"unknown setting {key!r} in {label}{_suggest(key)}")
        if data or name == "embedsql.toml":
            return data, label
    return {}, ""


def convert_setting(name: str, raw: Any, where: str) -> Any:
    """Turn a raw value from a file or the environment into the field's type, or explain."""
    kind = _KINDS.get(name, str)
    if kind is Path:
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"{where} must be a path, got {raw!r}")
        return Path(raw).expanduser()
    if kind is int:
        if isinstance(raw, bool | float):
            raise ConfigError(f"{where} must be a whole number, got {raw!r}")
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a whole number, got {raw!r}") from None
    if kind is float:
        if isinstance(raw, bool):
            raise ConfigError(f"{where} must be a number of seconds, got {raw!r}")
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number of seconds, got {raw!r}") from None
    if kind is bool:
        text = str(raw).strip().lower()
        if isinstance(raw, bool) or text in _TRUE | _FALSE:
            return raw if isinstance(raw, bool) else text in _TRUE
        raise ConfigError(f"{where} must be true or false, got {raw!r}")
    if not isinstance(raw, str):
        raise ConfigError(f"{where} must be a string, got {raw!r}")
    return raw or None


def _prices(raw: Any, where: str) -> dict[str, dict[str, float]]:
    """The ``prices`` table of a config file, checked: model -> {"batch": $, "standard": $}."""
    example = '[prices]\n"text-embedding-3-small" = { batch = 0.01, standard = 0.02 }'
    if not isinstance(raw, dict):
        raise ConfigError(f"prices in {where} must be a table of models, like:\n{example}")
    prices: dict[str, dict[str, float]] = {}
    for model, entry in raw.items():
        if (
            not isinstance(entry, dict)
            or not entry
            or set(entry) - {"batch", "standard"}
            or not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in entry.values())
        ):
            raise ConfigError(
                f"prices for {model!r} in {where} must give `batch` and/or `standard` in dollars per million "
                f"tokens, got {entry!r}. For example:\n{example}"
            )
        prices[model] = {k: float(v) for k, v in entry.items()}
    return prices


def _validate(settings: Settings) -> None:
    limits = (
        ("dimensions", 1),
        ("max_shard_lines", 1),
        ("max_shard_bytes", 1024),
        ("max_attempts", 1),
        ("concurrency", 1),
        ("max_inputs_per_request", 1),
        ("max_enqueued_tokens", 1),
        ("poll_interval", 0),
        ("max_poll_interval", 0),
        ("lock_wait", 0),
        ("openai_timeout", 0.001),
        ("openai_max_retries", 0),
    )
    for name, least in limits:
        value = getattr(settings, name)
        if value is not None and value < least:
            where = settings.sources.get(name, "default")
            raise ConfigError(
                f"{name} must be at least {least}, got {value} (from {where}). "
                f"Fix --{name.replace('_', '-')} / {ENV_VARS[name]}."
            )
    key = settings.openai_api_key
    if key is not None and (key != key.strip() or not key.isascii() or not key.isprintable() or " " in key):
        # Never echo any of it: a malformed key is still most of a secret.
        raise ConfigError(
            f"OPENAI_API_KEY (from {settings.sources.get('openai_api_key')}) is malformed: it holds spaces, "
            "line breaks or non-ASCII characters. Copy the key again from the OpenAI dashboard."
        )
    if settings.runner is not None and settings.runner not in RUNNERS:
        raise ConfigError(
            f"runner must be one of {', '.join(RUNNERS)}, got {settings.runner!r} "
            f"(from {settings.sources.get('runner', 'default')}). Fix --runner / EMBEDSQL_RUNNER."
        )
    if not _SIZE.fullmatch(settings.memory_limit):
        raise ConfigError(
            f"memory_limit must be a size like 512MB or 2GB, got {settings.memory_limit!r} "
            f"(from {settings.sources.get('memory_limit', 'default')}). "
            "Fix EMBEDSQL_MEMORY_LIMIT or memory_limit in the config file."
        )
    if settings.on_long not in ON_LONG:
        raise ConfigError(
            f"on_long must be one of {', '.join(ON_LONG)}, got {settings.on_long!r} "
            f"(from {settings.sources.get('on_long', 'default')}). Fix --on-long / EMBEDSQL_ON_LONG."
        )


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, list(_FIELDS), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known settings: {', '.join(_FIELDS)}"
