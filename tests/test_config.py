"""Tests of ``embedsql.config.load_settings`` and the ``embedsql config`` command.

Every test passes its own ``environ`` and ``cwd`` (a ``tmp_path``), so the developer's environment,
``.env`` and ``pyproject.toml`` never leak in; messages are compared in full.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from embedsql.cli import cli
from embedsql.config import ENV_VARS, Settings, load_settings
from embedsql.errors import ConfigError

DEFAULT_SOURCES = {**dict.fromkeys(ENV_VARS, "default"), "prices": "default"}
SECRET_REFUSED = (
    "{label} sets {key!r}: secrets do not belong in a file that is usually committed. "
    "Set OPENAI_API_KEY in the environment or in .env instead."
)


def load(cwd: Path, environ: dict[str, str] | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    return load_settings(overrides, environ={} if environ is None else environ, cwd=cwd)


def write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text).strip() + "\n", encoding="utf-8")


def raises_exactly(message: str) -> pytest.RaisesExc[ConfigError]:
    return pytest.raises(ConfigError, match=f"^{re.escape(message)}$")


def sources_with(**changed: str) -> dict[str, str]:
    return {**DEFAULT_SOURCES, **changed}


# Defaults and conversion


def test_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path)

    assert settings.db == Path("warehouse.duckdb")
    assert settings.model is None
    assert settings.dimensions is None
    assert settings.work_dir is None
    assert settings.keep_files is False
    assert settings.max_shard_lines == 50_000
    assert settings.max_shard_bytes == 200_000_000
    assert settings.openai_api_key is None
    assert settings.openai_base_url is None
    assert settings.openai_org_id is None
    assert settings.openai_project_id is None
    assert dict(settings.sources) == DEFAULT_SOURCES
    assert settings == Settings()


def test_every_environment_variable_is_read_and_converted(tmp_path: Path) -> None:
    environ = {
        "EMBEDSQL_DB": "data/films.duckdb",
        "EMBEDSQL_DBT_PROJECT": "analytics",
        "EMBEDSQL_DBT_TARGET": "prod",
        "EMBEDSQL_MODEL": "text-embedding-3-large",
        "EMBEDSQL_DIMENSIONS": "256",
        "EMBEDSQL_WORK_DIR": "/var/tmp/embedsql",
        "EMBEDSQL_KEEP_FILES": "true",
        "EMBEDSQL_MAX_SHARD_LINES": "1000",
        "EMBEDSQL_MAX_SHARD_BYTES": "1048576",
        "EMBEDSQL_RUNNER": "sync",
        "EMBEDSQL_CONCURRENCY": "8",
        "EMBEDSQL_MAX_INPUTS_PER_REQUEST": "64",
        "EMBEDSQL_ON_LONG": "skip",
        "EMBEDSQL_MAX_ATTEMPTS": "5",
        "EMBEDSQL_MAX_ENQUEUED_TOKENS": "20000000",
        "EMBEDSQL_POLL_INTERVAL": "0.5",
        "EMBEDSQL_MAX_POLL_INTERVAL": "30",
        "EMBEDSQL_LOCK_WAIT": "2.5",
        "EMBEDSQL_MEMORY_LIMIT": "2GB",
        "EMBEDSQL_OPENAI_TIMEOUT": "30",
        "EMBEDSQL_OPENAI_MAX_RETRIES": "1",
        "OPENAI_API_KEY": "sk-test-abc",
        "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1",
        "OPENAI_ORG_ID": "org-1",
        "OPENAI_PROJECT_ID": "proj-1",
    }

    settings = load(tmp_path, environ)

    assert settings == Settings(
        db=Path("data/films.duckdb"),
        dbt_project=Path("analytics"),
        dbt_target="prod",
        model="text-embedding-3-large",
        dimensions=256,
        work_dir=Path("/var/tmp/embedsql"),
        keep_files=True,
        max_shard_lines=1000,
        max_shard_bytes=1_048_576,
        runner="sync",
        concurrency=8,
        max_inputs_per_request=64,
        on_long="skip",
        max_attempts=5,
        max_enqueued_tokens=20_000_000,
        poll_interval=0.5,
        max_poll_interval=30.0,
        lock_wait=2.5,
        memory_limit="2GB",
        openai_api_key="sk-test-abc",
        openai_base_url="http://127.0.0.1:8000/v1",
        openai_org_id="org-1",
        openai_project_id="proj-1",
        openai_timeout=30.0,
        openai_max_retries=1,
    )
    assert dict(settings.sources) == {**dict.fromkeys(ENV_VARS, "environment"), "prices": "default"}


def test_paths_expand_the_home_directory(tmp_path: Path) -> None:
    settings = load(tmp_path, {"EMBEDSQL_DB": "~/films.duckdb"})

    assert settings.db == Path.home() / "films.duckdb"


def test_an_empty_string_setting_means_not_set(tmp_path: Path) -> None:
    write(tmp_path / "embedsql.toml", 'model = "text-embedding-3-small"')

    settings = load(tmp_path, {"EMBEDSQL_MODEL": ""})

    assert settings.model is None
    assert dict(settings.sources) == sources_with(model="environment")


def test_an_empty_path_is_refused(tmp_path: Path) -> None:
    with raises_exactly("EMBEDSQL_DB in environment must be a path, got ''"):
        load(tmp_path, {"EMBEDSQL_DB": ""})


def test_config_file_values_keep_their_types(tmp_path: Path) -> None:
    write(
        tmp_path / "embedsql.toml",
        """
        db = "films.duckdb"
        dimensions = 512
        keep_files = true
        max_shard_lines = 10
        """,
    )

    settings = load(tmp_path)

    assert settings.db == Path("films.duckdb")
    assert settings.dimensions == 512
    assert settings.keep_files is True
    assert settings.max_shard_lines == 10
    assert dict(settings.sources) == sources_with(
        db="embedsql.toml", dimensions="embedsql.toml", keep_files="embedsql.toml", max_shard_lines="embedsql.toml"
    )


# Precedence


def test_each_layer_overrides_the_ones_below(tmp_path: Path) -> None:
    def model_and_source(**kwargs: Any) -> tuple[str | None, str]:
        settings = load(tmp_path, **kwargs)
        return settings.model, settings.sources["model"]

    assert model_and_source() == (None, "default")

    write(tmp_path / "pyproject.toml", '[tool.embedsql]\nmodel = "from-pyproject"')
    assert model_and_source() == ("from-pyproject", "[tool.embedsql] in pyproject.toml")

    write(tmp_path / "embedsql.toml", 'model = "from-embedsql-toml"')
    assert model_and_source() == ("from-embedsql-toml", "embedsql.toml")

    write(tmp_path / ".env", "EMBEDSQL_MODEL=from-dotenv")
    assert model_and_source() == ("from-dotenv", ".env")

    environ = {"EMBEDSQL_MODEL": "from-environment"}
    assert model_and_source(environ=environ) == ("from-environment", "environment")

    assert model_and_source(environ=environ, overrides={"model": "from-flag"}) == ("from-flag", "flag")


def test_layers_merge_setting_by_setting(tmp_path: Path) -> None:
    write(tmp_path / "embedsql.toml", 'model = "text-embedding-3-large"\ndimensions = 1024\nkeep_files = true')
    write(tmp_path / ".env", "EMBEDSQL_DIMENSIONS=512\nEMBEDSQL_KEEP_FILES=false")
    environ = {"EMBEDSQL_KEEP_FILES": "1", "EMBEDSQL_MAX_SHARD_LINES": "100"}

    settings = load(tmp_path, environ, overrides={"max_shard_lines": 7, "db": Path("flag.duckdb")})

    assert (settings.model, settings.dimensions, settings.keep_files) == ("text-embedding-3-large", 512, True)
    assert (settings.max_shard_lines, settings.db) == (7, Path("flag.duckdb"))
    assert dict(settings.sources) == sources_with(
        model="embedsql.toml", dimensions=".env", keep_files="environment", max_shard_lines="flag", db="flag"
    )


def test_embedsql_toml_wins_over_pyproject_as_a_whole(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.embedsql]\nmodel = "from-pyproject"\ndimensions = 64')
    write(tmp_path / "embedsql.toml", 'model = "from-embedsql-toml"')

    settings = load(tmp_path)

    # The two files are not merged: pyproject's dimensions are not read at all.
    assert (settings.model, settings.dimensions) == ("from-embedsql-toml", None)
    assert dict(settings.sources) == sources_with(model="embedsql.toml")


def test_an_empty_embedsql_toml_still_hides_pyproject(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.embedsql]\nmodel = "from-pyproject"')
    write(tmp_path / "embedsql.toml", "")

    settings = load(tmp_path)

    assert settings.model is None
    assert dict(settings.sources) == DEFAULT_SOURCES


def test_pyproject_without_a_tool_embedsql_table_is_ignored(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "films"\n[tool.ruff]\nline-length = 99')

    settings = load(tmp_path)

    assert settings == Settings()
    assert dict(settings.sources) == DEFAULT_SOURCES


def test_tool_embedsql_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool]\nembedsql = 3")

    with raises_exactly("[tool.embedsql] in pyproject.toml must be a table of settings, not int"):
        load(tmp_path)


def test_none_overrides_are_ignored(tmp_path: Path) -> None:
    settings = load(tmp_path, {"EMBEDSQL_MODEL": "from-environment"}, overrides={"model": None, "dimensions": None})

    assert (settings.model, settings.dimensions) == ("from-environment", None)
    assert dict(settings.sources) == sources_with(model="environment")


def test_an_unknown_override_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    with raises_exactly("unknown setting 'modle'; did you mean 'model'?"):
        load(tmp_path, overrides={"modle": "x"})


# .env


def test_dotenv_is_read_without_touching_os_environ(tmp_path: Path) -> None:
    write(
        tmp_path / ".env",
        """
        # a comment
        EMBEDSQL_MODEL=text-embedding-3-small
        export EMBEDSQL_DIMENSIONS=128
        OPENAI_API_KEY="sk-test-from-dotenv"
        UNRELATED=1
        """,
    )
    before = dict(os.environ)

    settings = load_settings(cwd=tmp_path)  # the real os.environ, as the CLI uses it

    assert dict(os.environ) == before
    assert "EMBEDSQL_MODEL" not in os.environ
    assert "OPENAI_API_KEY" not in os.environ
    assert (settings.model, settings.dimensions) == ("text-embedding-3-small", 128)
    assert settings.openai_api_key == "sk-test-from-dotenv"
    assert dict(settings.sources) == sources_with(model=".env", dimensions=".env", openai_api_key=".env")


def test_dotenv_is_read_from_cwd_only(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / ".env", "EMBEDSQL_MODEL=from-parent")

    assert load(tmp_path / "sub").model is None


def test_a_dotenv_key_without_a_value_is_ignored(tmp_path: Path) -> None:
    write(tmp_path / "embedsql.toml", 'model = "from-file"')
    write(tmp_path / ".env", "EMBEDSQL_MODEL")

    settings = load(tmp_path)

    assert settings.model == "from-file"
    assert dict(settings.sources) == sources_with(model="embedsql.toml")


# Secrets


@pytest.mark.parametrize("key", ["openai_api_key", "api_key"])
def test_a_secret_in_embedsql_toml_is_refused(tmp_path: Path, key: str) -> None:
    write(tmp_path / "embedsql.toml", f'{key} = "sk-test-committed"')

    with raises_exactly(SECRET_REFUSED.format(label="embedsql.toml", key=key)) as excinfo:
        load(tmp_path)

    assert "sk-test-committed" not in str(excinfo.value)


@pytest.mark.parametrize("key", ["openai_api_key", "api_key"])
def test_a_secret_in_pyproject_is_refused(tmp_path: Path, key: str) -> None:
    write(tmp_path / "pyproject.toml", f'[tool.embedsql]\nmodel = "m"\n{key} = "sk-test-committed"')

    with raises_exactly(SECRET_REFUSED.format(label="[tool.embedsql] in pyproject.toml", key=key)):
        load(tmp_path)


def test_the_secret_is_refused_even_when_the_environment_sets_it(tmp_path: Path) -> None:
    write(tmp_path / "embedsql.toml", 'openai_api_key = "sk-test-committed"')

    with raises_exactly(SECRET_REFUSED.format(label="embedsql.toml", key="openai_api_key")):
        load(tmp_path, {"OPENAI_API_KEY": "sk-test-env"})


def test_repr_never_shows_the_key(tmp_path: Path) -> None:
    settings = load(tmp_path, {"OPENAI_API_KEY": "sk-test-SECRET123", "EMBEDSQL_MODEL": "text-embedding-3-small"})

    assert settings.openai_api_key == "sk-test-SECRET123"
    assert "SECRET123" not in repr(settings)
    assert "SECRET123" not in str(settings)
    assert "openai_api_key" not in repr(settings)
    assert "model='text-embedding-3-small'" in repr(settings)


# Unknown keys and bad values


@pytest.mark.parametrize(
    ("file_name", "text", "message"),
    [
        (
            "embedsql.toml",
            'modle = "text-embedding-3-small"',
            "unknown setting 'modle' in embedsql.toml; did you mean 'model'?",
        ),
        (
            "pyproject.toml",
            "[tool.embedsql]\ndimension = 256",
            "unknown setting 'dimension' in [tool.embedsql] in pyproject.toml; did you mean 'dimensions'?",
        ),
        (
            "embedsql.toml",
            'colour = "blue"',
            "unknown setting 'colour' in embedsql.toml; known settings: db, dbt_project, dbt_target, model, "
            "dimensions, work_dir, keep_files, max_shard_lines, max_shard_bytes, runner, concurrency, "
            "max_inputs_per_request, on_long, max_attempts, max_enqueued_tokens, poll_interval, max_poll_interval, "
            "lock_wait, memory_limit, prices, openai_api_key, openai_base_url, openai_org_id, openai_project_id, "
            "openai_timeout, openai_max_retries",
        ),
    ],
    ids=["did-you-mean", "did-you-mean-pyproject", "no-close-match"],
)
def test_an_unknown_key_in_a_config_file_is_refused(tmp_path: Path, file_name: str, text: str, message: str) -> None:
    write(tmp_path / file_name, text)

    with raises_exactly(message):
        load(tmp_path)


@pytest.mark.parametrize(
    ("environ", "dotenv", "message"),
    [
        ({"EMBEDSQL_DIMENSIONS": "abc"}, "", "EMBEDSQL_DIMENSIONS in environment must be a whole number, got 'abc'"),
        ({"EMBEDSQL_DIMENSIONS": "2.5"}, "", "EMBEDSQL_DIMENSIONS in environment must be a whole number, got '2.5'"),
        ({}, "EMBEDSQL_MAX_SHARD_LINES=lots", "EMBEDSQL_MAX_SHARD_LINES in .env must be a whole number, got 'lots'"),
    ],
)
def test_a_bad_whole_number_is_refused(tmp_path: Path, environ: dict[str, str], dotenv: str, message: str) -> None:
    write(tmp_path / ".env", dotenv)

    with raises_exactly(message):
        load(tmp_path, environ)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dimensions = true", "dimensions in embedsql.toml must be a whole number, got True"),
        ('dimensions = "many"', "dimensions in embedsql.toml must be a whole number, got 'many'"),
        ("model = 3", "model in embedsql.toml must be a string, got 3"),
        ("db = 3", "db in embedsql.toml must be a path, got 3"),
        ('keep_files = "sometimes"', "keep_files in embedsql.toml must be true or false, got 'sometimes'"),
    ],
)
def test_a_value_of_the_wrong_type_in_a_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path / "embedsql.toml", text)

    with raises_exactly(message):
        load(tmp_path)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("yes", True), ("1", True), ("TRUE", True), (" on ", True), ("0", False), ("no", False), ("Off", False)],
)
def test_keep_files_accepts_common_booleans(tmp_path: Path, raw: str, expected: bool) -> None:
    settings = load(tmp_path, {"EMBEDSQL_KEEP_FILES": raw})

    assert settings.keep_files is expected
    assert settings.sources["keep_files"] == "environment"


def test_keep_files_refuses_other_words(tmp_path: Path) -> None:
    with raises_exactly("EMBEDSQL_KEEP_FILES in environment must be true or false, got 'maybe'"):
        load(tmp_path, {"EMBEDSQL_KEEP_FILES": "maybe"})


@pytest.mark.parametrize(
    ("file_name", "text", "message"),
    [
        (
            "embedsql.toml",
            "model = ?",
            "embedsql.toml is not valid TOML: Invalid value (at line 1, column 9). Fix the file or remove it.",
        ),
        (
            "pyproject.toml",
            "[tool.embedsql\nmodel = 'm'",
            "pyproject.toml is not valid TOML: Expected ']' at the end of a table declaration "
            "(at line 1, column 15). Fix the file or remove it.",
        ),
    ],
    ids=["embedsql.toml", "pyproject.toml"],
)
def test_invalid_toml_is_refused(tmp_path: Path, file_name: str, text: str, message: str) -> None:
    write(tmp_path / file_name, text)

    with raises_exactly(message):
        load(tmp_path)


@pytest.mark.parametrize(
    ("environ", "overrides", "message"),
    [
        (
            {"EMBEDSQL_DIMENSIONS": "0"},
            None,
            "dimensions must be at least 1, got 0 (from environment). Fix --dimensions / EMBEDSQL_DIMENSIONS.",
        ),
        (
            {},
            {"dimensions": 0},
            "dimensions must be at least 1, got 0 (from flag). Fix --dimensions / EMBEDSQL_DIMENSIONS.",
        ),
        (
            {"EMBEDSQL_DIMENSIONS": "-3"},
            None,
            "dimensions must be at least 1, got -3 (from environment). Fix --dimensions / EMBEDSQL_DIMENSIONS.",
        ),
        (
            {"EMBEDSQL_MAX_SHARD_LINES": "0"},
            None,
            "max_shard_lines must be at least 1, got 0 (from environment). "
            "Fix EMBEDSQL_MAX_SHARD_LINES or max_shard_lines in the config file.",
        ),
        (
            {"EMBEDSQL_MAX_SHARD_BYTES": "1023"},
            None,
            "max_shard_bytes must be at least 1024, got 1023 (from environment). "
            "Fix EMBEDSQL_MAX_SHARD_BYTES or max_shard_bytes in the config file.",
        ),
    ],
)
def test_out_of_range_numbers_are_refused(
    tmp_path: Path, environ: dict[str, str], overrides: dict[str, Any] | None, message: str
) -> None:
    with raises_exactly(message):
        load(tmp_path, environ, overrides)


@pytest.mark.parametrize("value", ["512", "lots", "1.5 XB", "-1GB", "512MB; DROP TABLE x"])
def test_a_memory_limit_that_is_not_a_size_is_refused(tmp_path: Path, value: str) -> None:
    with raises_exactly(
        f"memory_limit must be a size like 512MB or 2GB, got {value!r} (from environment). "
        "Fix EMBEDSQL_MEMORY_LIMIT or memory_limit in the config file."
    ):
        load(tmp_path, {"EMBEDSQL_MEMORY_LIMIT": value})


@pytest.mark.parametrize("value", ["512MB", "2GB", "1.5GiB", "300 mb", "4TB"])
def test_memory_limits_in_duckdb_units_are_accepted(tmp_path: Path, value: str) -> None:
    assert load(tmp_path, {"EMBEDSQL_MEMORY_LIMIT": value}).memory_limit == value


def test_the_smallest_allowed_numbers_are_accepted(tmp_path: Path) -> None:
    environ = {"EMBEDSQL_DIMENSIONS": "1", "EMBEDSQL_MAX_SHARD_LINES": "1", "EMBEDSQL_MAX_SHARD_BYTES": "1024"}

    settings = load(tmp_path, environ)

    assert (settings.dimensions, settings.max_shard_lines, settings.max_shard_bytes) == (1, 1, 1024)


# The `embedsql config` command


def test_config_command_shows_each_value_and_its_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET123")
    write(tmp_path / ".env", "EMBEDSQL_MODEL=text-embedding-3-small")
    write(tmp_path / "pyproject.toml", "[tool.embedsql]\ndimensions = 256\nkeep_files = true")

    result = CliRunner().invoke(cli, ["config"])

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "SECRET123" not in result.output
    lines = result.stdout.splitlines()
    assert "openai_api_key          ********  [environment; env OPENAI_API_KEY]" in lines
    assert "model                   text-embedding-3-small  [.env; env EMBEDSQL_MODEL]" in lines
    assert "dimensions              256  [[tool.embedsql] in pyproject.toml; env EMBEDSQL_DIMENSIONS]" in lines
    assert result.stdout == (
        "db                      warehouse.duckdb  [default; env EMBEDSQL_DB]\n"
        "dbt_project             (not set)  [default; env EMBEDSQL_DBT_PROJECT]\n"
        "dbt_target              (not set)  [default; env EMBEDSQL_DBT_TARGET]\n"
        "model                   text-embedding-3-small  [.env; env EMBEDSQL_MODEL]\n"
        "dimensions              256  [[tool.embedsql] in pyproject.toml; env EMBEDSQL_DIMENSIONS]\n"
        "work_dir                (not set)  [default; env EMBEDSQL_WORK_DIR]\n"
        "keep_files              True  [[tool.embedsql] in pyproject.toml; env EMBEDSQL_KEEP_FILES]\n"
        "max_shard_lines         50000  [default; env EMBEDSQL_MAX_SHARD_LINES]\n"
        "max_shard_bytes         200000000  [default; env EMBEDSQL_MAX_SHARD_BYTES]\n"
        "runner                  (not set)  [default; env EMBEDSQL_RUNNER]\n"
        "concurrency             4  [default; env EMBEDSQL_CONCURRENCY]\n"
        "max_inputs_per_request  2048  [default; env EMBEDSQL_MAX_INPUTS_PER_REQUEST]\n"
        "on_long                 truncate  [default; env EMBEDSQL_ON_LONG]\n"
        "max_attempts            3  [default; env EMBEDSQL_MAX_ATTEMPTS]\n"
        "max_enqueued_tokens     (not set)  [default; env EMBEDSQL_MAX_ENQUEUED_TOKENS]\n"
        "poll_interval           5.0  [default; env EMBEDSQL_POLL_INTERVAL]\n"
        "max_poll_interval       120.0  [default; env EMBEDSQL_MAX_POLL_INTERVAL]\n"
        "lock_wait               30.0  [default; env EMBEDSQL_LOCK_WAIT]\n"
        "memory_limit            512MB  [default; env EMBEDSQL_MEMORY_LIMIT]\n"
        "openai_api_key          ********  [environment; env OPENAI_API_KEY]\n"
        "openai_base_url         (not set)  [default; env OPENAI_BASE_URL]\n"
        "openai_org_id           (not set)  [default; env OPENAI_ORG_ID]\n"
        "openai_project_id       (not set)  [default; env OPENAI_PROJECT_ID]\n"
        "openai_timeout          120.0  [default; env EMBEDSQL_OPENAI_TIMEOUT]\n"
        "openai_max_retries      4  [default; env EMBEDSQL_OPENAI_MAX_RETRIES]\n"
    )


def test_config_command_without_a_key_says_not_set(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["config"])

    assert result.exit_code == 0, result.output
    assert "openai_api_key          (not set)  [default; env OPENAI_API_KEY]" in result.stdout.splitlines()


def test_config_command_reports_a_bad_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EMBEDSQL_DIMENSIONS", "abc")

    result = CliRunner().invoke(cli, ["config"])

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "Error: EMBEDSQL_DIMENSIONS in environment must be a whole number, got 'abc'\n"


def test_config_command_refuses_a_committed_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET123")
    write(tmp_path / "embedsql.toml", 'api_key = "sk-test-SECRET456"')

    result = CliRunner().invoke(cli, ["config"])

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "Error: " + SECRET_REFUSED.format(label="embedsql.toml", key="api_key") + "\n"
    assert "SECRET" not in result.output
