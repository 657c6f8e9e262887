"""The ``embedsql config`` command: each value, where it came from, the key redacted."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from embedsql.cli import cli

from helpers import SECRET_REFUSED, write


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
        "max_input_tokens        (not set)  [default; env EMBEDSQL_MAX_INPUT_TOKENS]\n"
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
