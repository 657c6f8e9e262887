"""Settings: one dataclass that declares every setting, and the one loader that fills it.

Each field of ``Settings`` is declared once, with ``setting()``: its default, its environment variable,
the smallest value it takes, its command-line flag where it has one, and a line of help. The loader,
its checks, the messages and the CLI's ``--help`` are derived from that declaration (``SETTINGS``);
the type a raw value becomes is the field's annotation.

Precedence, highest first: values passed by the caller (the CLI passes only flags the user typed),
the process environment, ``./.env`` (read without touching ``os.environ``), ``embedsql.toml`` or
``[tool.embedsql]`` in ``pyproject.toml``, then the defaults below. Secrets are accepted from the
environment and ``.env`` only: a config file is usually committed, so a key in it is refused.
"""

from __future__ import annotations

import codecs
import dataclasses
import difflib
import io
import math
import os
import re
import tomllib
import types
import typing
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from .errors import ConfigError

# setting() returns a dataclasses.field(), which RUF009 does not recognise as one.
# ruff: noqa: RUF009

__all__ = [
    "ENV_VARS",
    "ON_LONG",
    "RUNNERS",
    "SECRET_FIELDS",
    "SETTINGS",
    "Setting",
    "Settings",
    "convert_setting",
    "convert_value",
    "decode_text",
    "load_settings",
    "setting",
    "size_bytes",
    "user_path",
]

ON_LONG = ("truncate", "skip", "error")
RUNNERS = ("local", "batch", "sync")
_DEFAULT_DB = Path("warehouse.duckdb")


def setting(
    default: Any = None,
    *,
    env: str | None,
    help: str,
    least: float | None = None,
    flag: str | None = None,
    choices: tuple[str, ...] = (),
    secret: bool = False,
    default_text: str | None = None,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A field of ``Settings``, with what the rest of embedsql derives from it as its metadata.

    ``env``: its environment variable (None: config file only). ``help``: one line, the flag's
    ``--help``. ``least``: the smallest value allowed. ``flag``: its command-line flag, where it has
    one. ``choices``: the only values allowed. ``secret``: never shown, and refused in config files.
    ``default_text``: the default in words, where the value alone would not say it.
    """
    metadata = {
        "env": env,
        "help": help,
        "least": least,
        "flag": flag,
        "choices": choices,
        "secret": secret,
        "default_text": default_text,
    }
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, repr=not secret, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    """Everything a job can be configured with, and its default."""

    # The database holds the data, the ledger (schema `embedsql`) and the targets.
    db: Path = setting(
        _DEFAULT_DB,
        env="EMBEDSQL_DB",
        flag="--db",
        help="DuckDB database",
        default_text=f"the dbt profile's with --dbt-project, else {_DEFAULT_DB}",
    )
    # The manifest of the dbt project resolves {{ ref() }} and {{ source() }}.
    dbt_project: Path | None = setting(
        env="EMBEDSQL_DBT_PROJECT",
        flag="--dbt-project",
        help="dbt project: resolves {{ ref() }}/{{ source() }} in queries; its profile's DuckDB file is the "
        "default --db",
    )
    dbt_target: str | None = setting(
        env="EMBEDSQL_DBT_TARGET",
        flag="--dbt-target",
        help="Output of the dbt profile to use",
        default_text="DBT_TARGET, else the profile's",
    )
    # None picks text-embedding-3-small when an OpenAI key is configured, otherwise the bundled
    # offline model.
    model: str | None = setting(env="EMBEDSQL_MODEL", flag="--model", help="Embedding model")
    # None: the model's own size.
    dimensions: int | None = setting(
        env="EMBEDSQL_DIMENSIONS", least=1, flag="--dimensions", help="Shorter vectors (text-embedding-3-*)"
    )
    work_dir: Path | None = setting(
        env="EMBEDSQL_WORK_DIR",
        help="Where shards and result files live while a job runs",
        default_text=".embedsql/ beside the database",
    )
    # Shard and result files are deleted once a job completes, unless kept.
    keep_files: bool = setting(
        False,
        env="EMBEDSQL_KEEP_FILES",
        flag="--keep-files",
        help="Keep shard and result files after the job completes",
    )
    # The Batch API takes at most 50,000 request lines and 200 MB per input file.
    max_shard_lines: int = setting(50_000, env="EMBEDSQL_MAX_SHARD_LINES", least=1, help="Request lines per shard")
    max_shard_bytes: int = setting(200_000_000, env="EMBEDSQL_MAX_SHARD_BYTES", least=1024, help="Bytes per shard")
    # None: local for the bundled model, batch for OpenAI's.
    runner: str | None = setting(
        env="EMBEDSQL_RUNNER",
        flag="--runner",
        choices=RUNNERS,
        help="local (in process), batch (OpenAI Batch API) or sync (/v1/embeddings of OpenAI or any compatible server)",
        default_text="by model",
    )
    concurrency: int = setting(
        4, env="EMBEDSQL_CONCURRENCY", least=1, flag="--concurrency", help="Requests the sync runner sends at once"
    )
    # Lower it for servers that take fewer than OpenAI's 2,048.
    max_inputs_per_request: int = setting(
        2048,
        env="EMBEDSQL_MAX_INPUTS_PER_REQUEST",
        least=1,
        flag="--max-inputs-per-request",
        help="Inputs in one sync request",
    )
    # None: the model's own limit (8,192 for a model embedsql does not know). A server's refusal of a
    # longer input says its limit, and the error line says to set it.
    max_input_tokens: int | None = setting(
        env="EMBEDSQL_MAX_INPUT_TOKENS",
        least=1,
        flag="--max-input-tokens",
        help="Tokens one input may hold, for a model embedsql does not know (what --on-long applies)",
        default_text="the model's, else 8192",
    )
    # truncate is token-accurate.
    on_long: str = setting(
        "truncate",
        env="EMBEDSQL_ON_LONG",
        flag="--on-long",
        choices=ON_LONG,
        help="Texts over the model's token limit: cut them, skip them, or stop",
    )
    # Lines that fail for a transient reason (5xx, expiry, cancel, lost) are sent again in new shards
    # until this many attempts have been made.
    max_attempts: int = setting(
        3,
        env="EMBEDSQL_MAX_ATTEMPTS",
        least=1,
        flag="--max-attempts",
        help="Attempts per text for transient failures",
    )
    # The organisation's enqueued-token limit at the Batch API.
    max_enqueued_tokens: int | None = setting(
        env="EMBEDSQL_MAX_ENQUEUED_TOKENS",
        least=1,
        flag="--max-enqueued-tokens",
        help="Tokens in flight at the Batch API at once",
        default_text="the model's tier-1 limit",
    )
    # The wait grows up to max_poll_interval while nothing changes.
    poll_interval: float = setting(
        5.0, env="EMBEDSQL_POLL_INTERVAL", least=0, help="Seconds between polls of running batches"
    )
    max_poll_interval: float = setting(
        120.0, env="EMBEDSQL_MAX_POLL_INTERVAL", least=0, help="Most seconds between polls of running batches"
    )
    lock_wait: float = setting(
        30.0,
        env="EMBEDSQL_LOCK_WAIT",
        least=0,
        help="Seconds to wait for the database while another process writes it, before giving up",
    )
    # Past it, DuckDB spills to a temporary folder beside the database. Queries of `embedsql sql`
    # and `search` keep DuckDB's own default.
    memory_limit: str = setting(
        "512MB",
        env="EMBEDSQL_MEMORY_LIMIT",
        help="Memory DuckDB may use while embedsql prepares and loads a job (a DuckDB size: 512MB, 2GB)",
    )
    # By model: {"text-embedding-3-small": {"batch": 0.01, "standard": 0.02}}; overrides the
    # built-in table.
    prices: Mapping[str, Mapping[str, float]] = setting(
        env=None,
        help="US dollars per million tokens for --dry-run's estimate",
        default_factory=dict,
    )
    # The OpenAI connection is read by the SDK's runner only.
    openai_api_key: str | None = setting(env="OPENAI_API_KEY", secret=True, help="OpenAI API key")
    openai_base_url: str | None = setting(
        env="OPENAI_BASE_URL", flag="--base-url", help="The API's address, e.g. http://localhost:11434/v1 for Ollama"
    )
    openai_org_id: str | None = setting(env="OPENAI_ORG_ID", help="OpenAI organization")
    openai_project_id: str | None = setting(env="OPENAI_PROJECT_ID", help="OpenAI project")
    openai_timeout: float = setting(
        120.0, env="EMBEDSQL_OPENAI_TIMEOUT", least=0.001, help="Seconds before one request to OpenAI counts as failed"
    )
    openai_max_retries: int = setting(
        4,
        env="EMBEDSQL_OPENAI_MAX_RETRIES",
        least=0,
        help="Retries of a request to OpenAI that may be repeated (never a batch creation)",
    )
    # Where each value came from ("default", "flag", "environment", ".env", a config file path).
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Setting:
    """One field of ``Settings`` as declared, with the type a raw value becomes."""

    name: str
    kind: type  # str, int, float, bool, Path or Mapping: the annotation without None
    default: Any
    env: str | None
    help: str
    least: float | None
    flag: str | None
    choices: tuple[str, ...]
    secret: bool
    default_text: str | None

    @property
    def fix(self) -> str:
        """Where a user sets it, for messages: the flag if there is one, else the config file."""
        if self.flag:
            return f"{self.flag} / {self.env}"
        return f"{self.env} or {self.name} in the config file"


def _kind(hint: Any) -> type:
    """``Path | None`` -> Path, ``int`` -> int, ``Mapping[str, ...]`` -> Mapping."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (hint,) = (arg for arg in typing.get_args(hint) if arg is not type(None))
    return typing.get_origin(hint) or hint


def _declared() -> dict[str, Setting]:
    hints = typing.get_type_hints(Settings)
    defaults = Settings()
    return {
        f.name: Setting(
            name=f.name,
            kind=_kind(hints[f.name]),
            default=getattr(defaults, f.name),
            **f.metadata,
        )
        for f in dataclasses.fields(Settings)
        if f.name != "sources"
    }


# Every setting by name, in declaration order.
SETTINGS: dict[str, Setting] = _declared()
# The environment variable of each setting that has one.
ENV_VARS: dict[str, str] = {s.name: s.env for s in SETTINGS.values() if s.env}
SECRET_FIELDS = frozenset(s.name for s in SETTINGS.values() if s.secret)
# Names under which a config file might hold a secret, in any case.
_SECRET_NAMES = frozenset({"api_key", *SECRET_FIELDS, *(ENV_VARS[f].lower() for f in SECRET_FIELDS)})
# A DuckDB memory size: a number and a unit.
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)", re.IGNORECASE)
# Bytes in each unit of a DuckDB size, and the most memory a size may name (DuckDB refuses more).
_UNITS = {
    "B": 1,
    **{f"{u}B": 1000 ** (i + 1) for i, u in enumerate("KMGT")},
    **{f"{u}IB": 1024 ** (i + 1) for i, u in enumerate("KMGT")},
}
_MAX_MEMORY = 2**60
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    flags: bool = False,
) -> Settings:
    """Merge defaults, config file, ``.env``, environment and ``overrides`` into ``Settings``.

    ``environ`` defaults to ``os.environ`` and ``cwd`` to the current directory; tests pass their
    own. ``overrides`` holds values the user gave explicitly (None values are ignored): keyword
    arguments of the Python API, or, with ``flags``, the command line's flags (which messages then
    name). They are converted and checked as the same setting from the environment is.
    """
    cwd = Path.cwd() if cwd is None else cwd
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = dict.fromkeys(SETTINGS, "default")

    file_values, file_name = _read_config_file(cwd)
    for name, raw in file_values.items():
        where = f"{name} in {file_name}"
        values[name] = _prices(raw, file_name) if name == "prices" else convert_setting(name, raw, where)
        sources[name] = file_name

    dotenv = _read_dotenv(cwd / ".env")
    for layer, label in ((dotenv, ".env"), (environ, "environment")):
        for name, var in ENV_VARS.items():
            if var in layer:
                values[name] = convert_setting(name, layer[var], f"{var} in {label}")
                sources[name] = label

    for name, value in (overrides or {}).items():
        if name not in SETTINGS:
            raise ConfigError(f"unknown setting {name!r}{_suggest(name)}")
        if value is not None:
            flag = SETTINGS[name].flag
            if name == "prices":
                example = 'prices={"text-embedding-3-small": {"batch": 0.01, "standard": 0.02}}'
                values[name] = _prices(value, "the arguments", example=example)
            else:
                values[name] = convert_setting(name, value, flag if flags and flag else f"argument {name}")
            sources[name] = "flag"

    if values.get("dbt_project") is not None and sources["db"] == "default":
        from .dbt_project import profile_database

        values["db"], sources["db"] = profile_database(
            values["dbt_project"], values.get("dbt_target"), environ=environ, cwd=cwd
        )
    settings = Settings(**values, sources=sources)
    _validate(settings)
    return settings


def decode_text(raw: bytes, *, name: str, fix: str) -> str:
    """``raw``, a text file's bytes, as text: UTF-8 (a BOM allowed), or UTF-16 that starts with its BOM.

    Other bytes are refused with where they are, rather than guessed at: a value read wrong (a key,
    a path, a string in a query) would fail later and far from its cause. ``name`` names the file in
    the message and ``fix`` ends it.
    """
    utf16 = {codecs.BOM_UTF16_LE: "utf-16-le", codecs.BOM_UTF16_BE: "utf-16-be"}.get(raw[:2])
    skip = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 2 if utf16 else 0
    try:
        text = raw[skip:].decode(utf16 or "utf-8")
    except UnicodeDecodeError as e:
        start = skip + e.start
        line = _line_of(raw[:start].decode(utf16 or "utf-8", errors="replace"))
        what = "UTF-16 text (it starts with a UTF-16 byte order mark)" if utf16 else "UTF-8 text"
        raise ConfigError(
            f"{name} is not {what}: byte 0x{raw[start]:02x} on line {line} cannot be decoded "
            f"(Latin-1 or another legacy encoding?). {fix}"
        ) from None
    if "\0" in text:
        line = _line_of(text[: text.index("\0")])
        raise ConfigError(f"{name} holds a NUL byte on line {line}, which no text can contain: remove it.")
    return text


def _line_of(before: str) -> int:
    """The number of the line that follows the text ``before``."""
    return before.count("\n") + 1


def _read_dotenv(path: Path) -> dict[str, str]:
    """The variables of ``.env`` at ``path`` (none when it is missing)."""
    if not path.is_file():
        return {}
    text = decode_text(
        path.read_bytes(),
        name=str(path),
        fix="Save .env as UTF-8 (iconv -f latin1 -t utf-8), or set the variable in the environment instead.",
    )
    # python-dotenv skips a line it cannot parse with a logged warning, and would leave its variable
    # unset without a word: a quote left open around a key, a name with a space.
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            # Only the name is shown: the rest of the line may be a secret (a key whose quote was left open).
            statement = binding.original.string
            name, equals, _ = statement.partition("=")
            starts = f"the line of {name.strip()!r}" if equals and len(name.strip()) <= 64 else "a line with no NAME="
            # dotenv counts the blank lines before a statement as its start.
            line = binding.original.line + statement[: len(statement) - len(statement.lstrip())].count("\n")
            raise ConfigError(
                f"{path} line {line} cannot be read ({starts}). Write it as NAME=value, quoting a "
                'value that holds spaces, quotes or # (NAME="a value"), or start it with # to make it a comment.'
            )
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    return {k: v for k, v in values.items() if v is not None}


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
            if key not in SETTINGS:
                raise ConfigError(f"unknown setting {key!r} in {label}{_suggest(key)}")
        if data or name == "embedsql.toml":
            return data, label
    return {}, ""


def convert_setting(name: str, raw: Any, where: str) -> Any:
    """Turn a raw value (from a file, the environment, a flag or an argument) into the field's type, or explain."""
    return convert_value(SETTINGS[name].kind, raw, where)


def convert_value(kind: type, raw: Any, where: str) -> Any:
    """``raw`` as a ``kind`` (str, int, float, bool or Path), by the rules of environment variables:
    a number may be written as text ("5"), a boolean as one of the words true/false, yes/no, on/off,
    1/0; anything else is refused with ``where`` (the variable, the flag or the argument) named."""
    if kind is Path:
        return user_path(raw, where)
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
            seconds = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number of seconds, got {raw!r}") from None
        # float() reads "nan" and "inf" (TOML has them too): no wait or timeout can be either.
        if not math.isfinite(seconds):
            raise ConfigError(f"{where} must be a number of seconds, got {raw!r}")
        return seconds
    if kind is bool:
        text = str(raw).strip().lower()
        if isinstance(raw, bool) or text in _TRUE | _FALSE:
            return raw if isinstance(raw, bool) else text in _TRUE
        raise ConfigError(f"{where} must be true or false, got {raw!r}")
    if not isinstance(raw, str):
        raise ConfigError(f"{where} must be a string, got {raw!r}")
    return raw or None


def user_path(raw: Any, where: str) -> Path:
    """``raw``, a path the user gave (a flag, a variable, a config file, an argument of the Python API,
    a dbt profile), as a ``Path`` with ``~`` and ``~user`` expanded: the one place that makes one, so
    that every path is refused alike when no file can have it, naming ``where`` it came from."""
    if isinstance(raw, os.PathLike):
        raw = os.fspath(raw)
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"{where} must be a path, got {raw!r}")
    if "\0" in raw:
        raise ConfigError(f"{where} holds a NUL byte ({raw!r}), which no path can contain: remove it.")
    try:
        return Path(raw).expanduser()
    except RuntimeError:  # ~user of a user this machine does not have, or ~ without a home folder
        user = raw[1:].split("/")[0]
        if user:
            raise ConfigError(
                f"{where} starts with ~{user}, but there is no user {user!r} on this machine: write the folder "
                "out, or start it with ~/ for your own home."
            ) from None
        raise ConfigError(
            f"{where} starts with ~, but your home folder is unknown (HOME is not set): write the folder out."
        ) from None


def _prices(
    raw: Any, where: str, *, example: str = '[prices]\n"text-embedding-3-small" = { batch = 0.01, standard = 0.02 }'
) -> dict[str, dict[str, float]]:
    """The ``prices`` table of a config file (or argument), checked: model -> {"batch": $, "standard": $}."""
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
    for s in SETTINGS.values():
        value = getattr(settings, s.name)
        if value is None:
            continue
        where = settings.sources.get(s.name, "default")
        # Values from files and the environment were checked by convert_setting; these come from the caller.
        if s.kind is float and not math.isfinite(value):
            raise ConfigError(f"{s.name} must be a number of seconds, got {value!r} (from {where}). Fix {s.fix}.")
        if s.least is not None and value < s.least:
            raise ConfigError(f"{s.name} must be at least {s.least}, got {value} (from {where}). Fix {s.fix}.")
        if s.choices and value not in s.choices:
            raise ConfigError(
                f"{s.name} must be one of {', '.join(s.choices)}, got {value!r} (from {where}). Fix {s.fix}."
            )
    key = settings.openai_api_key
    if key is not None and (key != key.strip() or not key.isascii() or not key.isprintable() or " " in key):
        # Never echo any of it: a malformed key is still most of a secret.
        raise ConfigError(
            f"{ENV_VARS['openai_api_key']} (from {settings.sources.get('openai_api_key')}) is malformed: it holds "
            "spaces, line breaks or non-ASCII characters. Copy the key again from the OpenAI dashboard."
        )
    url = settings.openai_base_url
    problem = _url_problem(url) if url else None
    if problem:
        raise ConfigError(
            f"openai_base_url must be the API's address, like http://localhost:8000/v1; got {url!r} "
            f"(from {settings.sources.get('openai_base_url', 'default')}): {problem}. "
            f"Fix {SETTINGS['openai_base_url'].fix}."
        )
    size = size_bytes(settings.memory_limit or "")  # an empty value reads as None
    if size is None or size >= _MAX_MEMORY:
        raise ConfigError(
            f"memory_limit must be a size like 512MB or 2GB, got {settings.memory_limit or ''!r} "
            f"(from {settings.sources.get('memory_limit', 'default')}). Fix {SETTINGS['memory_limit'].fix}."
        )


def _url_problem(url: str) -> str | None:
    """What keeps ``url`` from being an address requests can go to; None when nothing does."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (reading it checks the port)
    except ValueError as e:
        return str(e)
    if parts.scheme not in ("http", "https"):
        return "it does not begin with http:// or https://"
    if not parts.hostname:
        return "it names no host"
    return None


def size_bytes(size: str) -> int | None:
    """The bytes a DuckDB size like "512MB" or "2GiB" names; None when it is not one."""
    match = _SIZE.fullmatch(size)
    return None if match is None else int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, list(SETTINGS), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known settings: {', '.join(SETTINGS)}"
