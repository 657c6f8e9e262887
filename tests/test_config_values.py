"""``load_settings``: defaults, how raw values become typed ones, and the values it refuses.

Every test passes its own ``environ`` and ``cwd`` (a ``tmp_path``); messages are compared in full.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from embedsql.config import ENV_VARS, Settings, convert_setting
from embedsql.errors import ConfigError

from helpers import DEFAULT_SOURCES, load, raises_exactly, sources_with, write

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
        "EMBEDSQL_MAX_INPUT_TOKENS": "512",
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
        max_input_tokens=512,
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


# Bad values


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


# Ranges


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


@pytest.mark.parametrize(
    "value", ["512", "lots", "1.5 XB", "-1GB", "512MB; DROP TABLE x", "", "99999999999999999999TB", "2000000TiB"]
)
def test_a_memory_limit_that_is_not_a_size_is_refused(tmp_path: Path, value: str) -> None:
    with raises_exactly(
        f"memory_limit must be a size like 512MB or 2GB, got {value!r} (from environment). "
        "Fix EMBEDSQL_MEMORY_LIMIT or memory_limit in the config file."
    ):
        load(tmp_path, {"EMBEDSQL_MEMORY_LIMIT": value})


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://[::1]:8000x/v1", "Port could not be cast to integer value as '8000x'"),
        ("https://h:70000/v1", "Port out of range 0-65535"),
        ("::bad", "it does not begin with http:// or https://"),
        ("localhost:8000/v1", "it does not begin with http:// or https://"),
        ("127.0.0.1:8000", "it does not begin with http:// or https://"),
        ("ftp://files.example/v1", "it does not begin with http:// or https://"),
        ("HTTP//host/v1", "it does not begin with http:// or https://"),
        ("http://", "it names no host"),
        ("https:///v1", "it names no host"),
    ],
)
@pytest.mark.parametrize("where", ["environment", ".env"])
def test_an_api_address_requests_cannot_go_to_is_refused(tmp_path: Path, value: str, problem: str, where: str) -> None:
    environ = {"OPENAI_BASE_URL": value} if where == "environment" else {}
    if where == ".env":
        (tmp_path / ".env").write_text(f"OPENAI_BASE_URL={value}\n", encoding="utf-8")
    with raises_exactly(
        f"openai_base_url must be the API's address, like http://localhost:8000/v1; got {value!r} (from {where}): "
        f"{problem}. Fix --base-url / OPENAI_BASE_URL."
    ):
        load(tmp_path, environ)


@pytest.mark.parametrize(
    "value", ["http://localhost:8000/v1", "HTTPS://API.example.com/v1/", "http://[::1]:8000/v1", "http://10.0.0.7"]
)
def test_api_addresses_of_any_http_server_are_accepted(tmp_path: Path, value: str) -> None:
    assert load(tmp_path, {"OPENAI_BASE_URL": value}).openai_base_url == value


@pytest.mark.parametrize("value", ["512MB", "2GB", "1.5GiB", "300 mb", "4TB", "1000000TB"])
def test_memory_limits_in_duckdb_units_are_accepted(tmp_path: Path, value: str) -> None:
    assert load(tmp_path, {"EMBEDSQL_MEMORY_LIMIT": value}).memory_limit == value


@pytest.mark.parametrize("where", ["environment", ".env", "embedsql.toml"])
def test_an_empty_memory_limit_is_refused_wherever_it_is_set(tmp_path: Path, where: str) -> None:
    environ = {"EMBEDSQL_MEMORY_LIMIT": ""} if where == "environment" else {}
    if where == ".env":
        (tmp_path / ".env").write_text("EMBEDSQL_MEMORY_LIMIT=\n", encoding="utf-8")
    if where == "embedsql.toml":
        (tmp_path / "embedsql.toml").write_text('memory_limit = ""\n', encoding="utf-8")
    with raises_exactly(
        f"memory_limit must be a size like 512MB or 2GB, got '' (from {where}). "
        "Fix EMBEDSQL_MEMORY_LIMIT or memory_limit in the config file."
    ):
        load(tmp_path, environ)


def test_the_smallest_allowed_numbers_are_accepted(tmp_path: Path) -> None:
    environ = {"EMBEDSQL_DIMENSIONS": "1", "EMBEDSQL_MAX_SHARD_LINES": "1", "EMBEDSQL_MAX_SHARD_BYTES": "1024"}

    settings = load(tmp_path, environ)

    assert (settings.dimensions, settings.max_shard_lines, settings.max_shard_bytes) == (1, 1, 1024)


@pytest.mark.parametrize(
    ("environ", "overrides", "message"),
    [
        (
            {"EMBEDSQL_LOCK_WAIT": "-1"},
            None,
            "lock_wait must be at least 0, got -1.0 (from environment). "
            "Fix EMBEDSQL_LOCK_WAIT or lock_wait in the config file.",
        ),
        (
            {"EMBEDSQL_POLL_INTERVAL": "-0.5"},
            None,
            "poll_interval must be at least 0, got -0.5 (from environment). "
            "Fix EMBEDSQL_POLL_INTERVAL or poll_interval in the config file.",
        ),
        (
            {"EMBEDSQL_OPENAI_TIMEOUT": "0"},
            None,
            "openai_timeout must be at least 0.001, got 0.0 (from environment). "
            "Fix EMBEDSQL_OPENAI_TIMEOUT or openai_timeout in the config file.",
        ),
        (
            {},
            {"openai_max_retries": -1},
            "openai_max_retries must be at least 0, got -1 (from flag). "
            "Fix EMBEDSQL_OPENAI_MAX_RETRIES or openai_max_retries in the config file.",
        ),
        (
            {"EMBEDSQL_MAX_ATTEMPTS": "0"},
            None,
            "max_attempts must be at least 1, got 0 (from environment). Fix --max-attempts / EMBEDSQL_MAX_ATTEMPTS.",
        ),
        (
            {},
            {"max_enqueued_tokens": 0},
            "max_enqueued_tokens must be at least 1, got 0 (from flag). "
            "Fix --max-enqueued-tokens / EMBEDSQL_MAX_ENQUEUED_TOKENS.",
        ),
        (
            {"EMBEDSQL_RUNNER": "fast"},
            None,
            "runner must be one of local, batch, sync, got 'fast' (from environment). Fix --runner / EMBEDSQL_RUNNER.",
        ),
        (
            {"EMBEDSQL_ON_LONG": "cut"},
            None,
            "on_long must be one of truncate, skip, error, got 'cut' (from environment). "
            "Fix --on-long / EMBEDSQL_ON_LONG.",
        ),
    ],
    ids=[
        "lock_wait",
        "poll_interval",
        "openai_timeout",
        "openai_max_retries",
        "max_attempts",
        "max_enqueued_tokens",
        "runner",
        "on_long",
    ],
)
def test_a_refused_value_names_the_flag_only_where_there_is_one(
    tmp_path: Path, environ: dict[str, str], overrides: dict[str, Any] | None, message: str
) -> None:
    with raises_exactly(message):
        load(tmp_path, environ, overrides)


# Not-a-number and infinity: float() and TOML read them, but no number of seconds is either.

NON_FINITE = ["nan", "NaN", "inf", "-inf", "Infinity"]


@pytest.mark.parametrize("raw", NON_FINITE)
@pytest.mark.parametrize(
    "var", ["EMBEDSQL_POLL_INTERVAL", "EMBEDSQL_MAX_POLL_INTERVAL", "EMBEDSQL_LOCK_WAIT", "EMBEDSQL_OPENAI_TIMEOUT"]
)
def test_a_non_finite_number_of_seconds_in_the_environment_is_refused(tmp_path: Path, var: str, raw: str) -> None:
    with raises_exactly(f"{var} in environment must be a number of seconds, got {raw!r}"):
        load(tmp_path, {var: raw})


@pytest.mark.parametrize("raw", NON_FINITE)
def test_a_non_finite_number_of_seconds_in_dotenv_is_refused(tmp_path: Path, raw: str) -> None:
    write(tmp_path / ".env", f"EMBEDSQL_LOCK_WAIT={raw}")

    with raises_exactly(f"EMBEDSQL_LOCK_WAIT in .env must be a number of seconds, got {raw!r}"):
        load(tmp_path)


@pytest.mark.parametrize(
    ("file_name", "text", "message"),
    [
        ("embedsql.toml", "lock_wait = nan", "lock_wait in embedsql.toml must be a number of seconds, got nan"),
        ("embedsql.toml", "poll_interval = inf", "poll_interval in embedsql.toml must be a number of seconds, got inf"),
        (
            "embedsql.toml",
            "openai_timeout = -inf",
            "openai_timeout in embedsql.toml must be a number of seconds, got -inf",
        ),
        (
            "embedsql.toml",
            'lock_wait = "NaN"',
            "lock_wait in embedsql.toml must be a number of seconds, got 'NaN'",
        ),
        (
            "pyproject.toml",
            "[tool.embedsql]\nmax_poll_interval = +inf",
            "max_poll_interval in [tool.embedsql] in pyproject.toml must be a number of seconds, got inf",
        ),
    ],
    ids=["nan", "inf", "-inf", "nan-string", "pyproject"],
)
def test_a_non_finite_number_of_seconds_in_a_file_is_refused(
    tmp_path: Path, file_name: str, text: str, message: str
) -> None:
    write(tmp_path / file_name, text)

    with raises_exactly(message):
        load(tmp_path)


@pytest.mark.parametrize(
    ("value", "shown"), [(float("nan"), "nan"), (float("inf"), "inf"), (float("-inf"), "-inf")], ids=str
)
def test_a_non_finite_number_of_seconds_from_the_python_api_is_refused(
    tmp_path: Path, value: float, shown: str
) -> None:
    with raises_exactly(f"argument lock_wait must be a number of seconds, got {shown}"):
        load(tmp_path, overrides={"lock_wait": value})


def test_a_non_finite_number_of_seconds_is_refused_wherever_it_is_converted() -> None:
    # The dbt plugin converts its profile's values with convert_setting too.
    with pytest.raises(ConfigError, match=r"^openai_timeout in profiles\.yml must be a number of seconds, got nan$"):
        convert_setting("openai_timeout", float("nan"), "openai_timeout in profiles.yml")


def test_finite_numbers_of_seconds_in_any_spelling_are_accepted(tmp_path: Path) -> None:
    write(tmp_path / "embedsql.toml", "poll_interval = 0\nmax_poll_interval = 1e2")
    environ = {"EMBEDSQL_LOCK_WAIT": " 2.5 ", "EMBEDSQL_OPENAI_TIMEOUT": "1e-3"}

    settings = load(tmp_path, environ)

    assert (settings.poll_interval, settings.max_poll_interval) == (0, 100.0)
    assert (settings.lock_wait, settings.openai_timeout) == (2.5, 0.001)
