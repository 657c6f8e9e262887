"""``load_settings``: where values come from (flag, environment, .env, config files) and which wins.

Every test passes its own ``environ`` and ``cwd`` (a ``tmp_path``), so the developer's environment,
``.env`` and ``pyproject.toml`` never leak in; messages are compared in full.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from embedsql.config import Settings, load_settings

from helpers import DEFAULT_SOURCES, SECRET_REFUSED, load, raises_exactly, sources_with, write

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


# Config files


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
            "max_inputs_per_request, max_input_tokens, on_long, max_attempts, max_enqueued_tokens, poll_interval, "
            "max_poll_interval, "
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
