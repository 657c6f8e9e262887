"""A dbt-duckdb plugin that registers ``embed(text)`` in dbt's DuckDB connections.

In ``profiles.yml``, on a dbt-duckdb output::

    plugins:
      - module: embedsql.dbt_plugin
        config:                  # optional; any of PLUGIN_SETTINGS
          model: all-MiniLM-L6-v2

A model can then call ``embed('space adventure')`` as ``embedsql sql`` can: the same model choice
(the model of the database's embeddings unless ``model`` is set) and the same cache, so texts that
``embedsql run`` embedded are not embedded again. The API key comes from the environment
(``OPENAI_API_KEY``), never from the profile. Only dbt-duckdb imports this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from . import ledger
from .config import SECRET_FIELDS, Settings, convert_setting, load_settings
from .embed import Embedder, query_model, register
from .errors import ConfigError

__all__ = ["PLUGIN_SETTINGS", "Plugin", "plugin_settings"]

# What embed() needs; the rest of embedsql's settings are about jobs.
PLUGIN_SETTINGS = (
    "model",
    "dimensions",
    "openai_base_url",
    "openai_org_id",
    "openai_project_id",
    "openai_timeout",
    "openai_max_retries",
)


class Plugin(BasePlugin):
    """Registers ``embed()`` on the connection dbt-duckdb opens; its cursors inherit it."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        # dbt-duckdb hands every plugin the profile's DuckDB `settings:` too, under its own config.
        duckdb_settings = set(getattr(self.creds, "settings", None) or {})
        self.settings = plugin_settings({k: v for k, v in plugin_config.items() if k not in duckdb_settings})

    def configure_connection(self, conn: Any) -> None:
        path = Path(self.creds.path) if self.creds is not None and self.creds.path else Path(":memory:")
        # A ledger already there is checked (and brought up to date); none is started: dbt's database gets
        # embedsql's tables from `embedsql run` only, and embed() there caches nothing until then.
        if ledger.has_ledger(conn):
            ledger.ensure_schema(conn, path)
        register(conn, Embedder(conn, query_model(conn, self.settings), self.settings))


def plugin_settings(config: dict[str, Any]) -> Settings:
    """Settings from the plugin's ``config:`` over the environment and embedsql.toml, checked."""
    where = "the embedsql plugin's config in profiles.yml"
    overrides = {}
    for name, raw in (config or {}).items():
        if name in SECRET_FIELDS or "key" in name.lower():
            raise ConfigError(
                f"{where} sets {name!r}: secrets do not belong in profiles.yml. Set OPENAI_API_KEY in the "
                "environment of dbt instead."
            )
        if name not in PLUGIN_SETTINGS:
            raise ConfigError(f"{where} sets {name!r}, which it does not take; it takes: {', '.join(PLUGIN_SETTINGS)}.")
        overrides[name] = convert_setting(name, raw, f"{name} in {where}")
    return load_settings(overrides)
