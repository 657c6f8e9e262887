"""The Python API's arguments, checked as strictly as flags and the environment are.

Settings passed by name (``embedsql.run(q, db=..., lock_wait=...)``) are converted by
``config.load_settings`` with the rules of environment variables. The functions' own arguments (``key``,
``into``, ``k``, ``dry_run``, ...) are checked here, with the same rules for the same kinds of value
(``config.convert_value``): ``dry_run='no'`` is False as ``EMBEDSQL_KEEP_FILES=no`` is, ``k='5'`` is 5,
and a value of another type is a ``ConfigError`` that names the argument, rather than a traceback from
deep inside or, worse, a wrong meaning (``'no'`` taken as true).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .config import SETTINGS, Settings, convert_value, load_settings, user_path
from .errors import ConfigError

__all__ = ["call_settings", "column_names", "flag", "functions", "optional_text", "path", "text", "whole"]


def call_settings(settings: Any, overrides: Mapping[str, Any], *, function: Callable[..., Any]) -> Settings:
    """The settings of one call of ``function``: ``settings`` as given, or else loaded with the call's
    settings by name (``overrides``) over the environment and files. A name that is neither a setting nor
    a parameter of ``function`` is refused with the closest of either; so is ``settings`` together with
    settings by name (one would be ignored)."""
    parameters = [
        name
        for name, p in inspect.signature(function).parameters.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    for name in overrides:
        if name not in SETTINGS:
            # The function's own parameters first: `no_wait` is `wait`, not the setting `lock_wait`.
            close = difflib.get_close_matches(name, parameters, n=1) or difflib.get_close_matches(name, SETTINGS, n=1)
            known = (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; it takes {', '.join(parameters)}, and settings by name (db=, model=, lock_wait=, ...)"
            )
            raise ConfigError(f"{function.__name__}() got an unknown argument {name!r}{known}")
    if settings is None:
        return load_settings(overrides)
    if not isinstance(settings, Settings):
        raise ConfigError(
            f"argument settings must be an embedsql.Settings (from embedsql.load_settings()), got {settings!r}"
        )
    given = [f"{name}=" for name, value in overrides.items() if value is not None]
    if given:
        raise ConfigError(
            f"{function.__name__}() got settings= and {', '.join(given)} too; pass one or the other "
            "(embedsql.load_settings({...}) makes Settings with those values)."
        )
    return settings


def text(name: str, value: Any) -> str:
    """A string argument: a query, a table name, a job id."""
    if not isinstance(value, str):
        raise ConfigError(f"argument {name} must be a string, got {value!r}")
    return value


def optional_text(name: str, value: Any) -> str | None:
    """A string argument that may be None."""
    return None if value is None else text(name, value)


def column_names(name: str, value: Any) -> list[str]:
    """Column names: one as a string (``key="id"``, not the letters i and d), or a list or tuple of them."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"argument {name} must be a column name or a list of them, got {value!r}")


def flag(name: str, value: Any) -> bool:
    """True or False, or one of the words an environment variable may say it with (yes/no, on/off, 1/0)."""
    result: bool = convert_value(bool, value, f"argument {name}")
    return result


def whole(name: str, value: Any, *, least: int) -> int:
    """A whole number of at least ``least``, or text that reads as one ("5")."""
    number: int = convert_value(int, value, f"argument {name}")
    if number < least:
        raise ConfigError(f"argument {name} must be at least {least}, got {number}")
    return number


def path(name: str, value: Any) -> Path:
    """A path (str or PathLike), as every path the user gives is read (``config.user_path``)."""
    return user_path(value, f"argument {name}")


def functions(**named: Any) -> tuple[Any, ...]:
    """Callable arguments (``on_event``, ``sleep``, ``clock``), in the order given."""
    for name, value in named.items():
        if not callable(value):
            raise ConfigError(f"argument {name} must be a function, got {value!r}")
    return tuple(named.values())
