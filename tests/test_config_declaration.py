"""The ``Settings`` declaration is the one source of each setting's env var, flag, range and help.

``ENV_VARS``, ``SECRET_FIELDS``, the range checks and the CLI's options are derived from the field
metadata that ``setting()`` writes; these tests check that nothing else names a setting differently.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click
import pytest

from embedsql.cli import cli
from embedsql.config import ENV_VARS, SECRET_FIELDS, SETTINGS, Settings
from embedsql.errors import ConfigError

from helpers import REPO, load

FIELDS = [f for f in dataclasses.fields(Settings) if f.name != "sources"]


def options() -> list[tuple[str, click.Option]]:
    """Every option of every command, with the command's name."""
    return [
        (name, param)
        for name, command in cli.commands.items()
        for param in command.params
        if isinstance(param, click.Option)
    ]


def test_every_setting_is_declared_with_an_env_var_except_the_file_only_prices() -> None:
    undeclared = [f.name for f in FIELDS if "env" not in f.metadata]
    file_only = [f.name for f in FIELDS if f.metadata.get("env") is None]

    assert undeclared == []
    assert file_only == ["prices"]
    assert list(SETTINGS) == [f.name for f in FIELDS]


def test_env_vars_are_the_declared_ones_and_no_others() -> None:
    declared = {f.name: f.metadata["env"] for f in FIELDS if f.metadata["env"]}

    assert declared == ENV_VARS
    assert list(ENV_VARS) == list(declared)
    assert len(set(ENV_VARS.values())) == len(ENV_VARS)
    assert all(re.fullmatch(r"(EMBEDSQL|OPENAI)_[A-Z_]+", var) for var in ENV_VARS.values())


def test_secrets_are_the_declared_ones_and_never_in_repr() -> None:
    assert {f.name for f in FIELDS if f.metadata["secret"]} == SECRET_FIELDS == {"openai_api_key"}
    assert all(not f.repr for f in FIELDS if f.name in SECRET_FIELDS)


@pytest.mark.parametrize("name", [s.name for s in SETTINGS.values() if s.flag])
def test_every_declared_flag_is_an_option_of_embedsql_run(name: str) -> None:
    flag = SETTINGS[name].flag
    run = cli.commands["run"]

    matches = [p for p in run.params if isinstance(p, click.Option) and flag in p.opts]

    assert len(matches) == 1, f"embedsql run has no {flag}"
    assert matches[0].name == name


def test_every_option_that_sets_a_setting_uses_its_declared_flag() -> None:
    for command, option in options():
        if option.name in SETTINGS:
            assert option.opts == [SETTINGS[option.name].flag], f"embedsql {command} {option.opts}"


def test_a_setting_without_a_flag_has_no_option_of_that_name() -> None:
    flagless = {s.name for s in SETTINGS.values() if s.flag is None}
    invented = {f"--{name.replace('_', '-')}" for name in flagless}

    assert [(c, o.opts) for c, o in options() if o.name in flagless or set(o.opts) & invented] == []


@pytest.mark.parametrize("name", [s.name for s in SETTINGS.values() if s.least is not None])
def test_a_range_error_names_only_flags_the_cli_has(tmp_path: Path, name: str) -> None:
    declared = SETTINGS[name]
    known = {opt for _, option in options() for opt in option.opts}

    with pytest.raises(ConfigError) as excinfo:
        load(tmp_path, overrides={name: declared.kind(declared.least) - 1})

    message = str(excinfo.value)
    assert message.startswith(f"{name} must be at least {declared.least}, got ")
    assert set(re.findall(r"--[a-z-]+", message)) <= known
    assert declared.env is not None
    assert declared.env in message
    if declared.flag is None:
        assert message.endswith(f"Fix {declared.env} or {name} in the config file.")


@pytest.mark.parametrize(
    ("flag", "help_text"),
    [
        ("--concurrency", "Requests the sync runner sends at once.  [env: EMBEDSQL_CONCURRENCY; default: 4]"),
        (
            "--runner",
            "local (in process), batch (OpenAI Batch API) or sync (/v1/embeddings of OpenAI or any compatible "
            "server).  [env: EMBEDSQL_RUNNER; default: by model]",
        ),
        ("--base-url", "The API's address, e.g. http://localhost:11434/v1 for Ollama.  [env: OPENAI_BASE_URL]"),
        ("--keep-files", "Keep shard and result files after the job completes.  [env: EMBEDSQL_KEEP_FILES]"),
        (
            "--db",
            "DuckDB database.  [env: EMBEDSQL_DB; default: the dbt profile's with --dbt-project, else "
            "warehouse.duckdb]",
        ),
    ],
)
def test_a_flag_help_ends_with_its_declared_env_var_and_default(flag: str, help_text: str) -> None:
    (option,) = (o for c, o in options() if c == "run" and flag in o.opts)

    assert option.help == help_text


def test_whole_number_flags_take_the_declared_smallest_value() -> None:
    for _, option in options():
        declared = SETTINGS.get(option.name or "")
        if declared is not None and declared.kind is int:
            assert isinstance(option.type, click.IntRange)
            assert option.type.min == declared.least


def test_the_readme_configuration_table_names_every_setting_and_its_variable() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Configuration") : readme.index("## Command reference")]

    assert [name for name in SETTINGS if f"`{name}`" not in table] == []
    assert [var for var in ENV_VARS.values() if f"`{var}`" not in table] == []
