""".env with a line python-dotenv cannot parse: one error naming the file and the line, for every command
and the Python API, instead of dotenv's logged warning and a variable silently left unset. The line's
value is never shown: it may be most of a key.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from hostile import QUERY, contents, docs_db

import embedsql
from embedsql.cli import cli
from embedsql.config import load_settings
from embedsql.errors import ConfigError

COMMANDS = [
    ["config"],
    ["run", QUERY],
    ["run", QUERY, "--dry-run"],
    ["resume", "20260101-000000-abcd"],
    ["cancel", "20260101-000000-abcd"],
    ["jobs"],
    ["status"],
    ["sql", "select 1"],
    ["search", "alpha", "--table", "docs_embeddings"],
]
SECRET = "sk-proj-abc123DEF456"
# (id, .env text, line, what the message says the line is)
BROKEN = [
    ("space in a name", "EMBEDSQL_LOCK_WAIT=1\nEMBEDSQL MODEL=x\n", 2, "the line of 'EMBEDSQL MODEL'"),
    ("key with an open quote", f'EMBEDSQL_LOCK_WAIT=1\nOPENAI_API_KEY="{SECRET}\n', 2, "the line of 'OPENAI_API_KEY'"),
    ("single quote open", f"OPENAI_API_KEY='{SECRET}\nEMBEDSQL_LOCK_WAIT=1\n", 1, "the line of 'OPENAI_API_KEY'"),
    ("text after a quoted value", 'EMBEDSQL_MODEL="a" b\n', 1, "the line of 'EMBEDSQL_MODEL'"),
    ("no name", "=value\n", 1, "the line of ''"),
    ("a pasted key alone", f"# keys\n\n{SECRET} and more\n", 3, "a line with no NAME="),
    ("windows line ends", "A=1\r\nB x=2\r\n", 2, "the line of 'B x'"),
    ("after a comment", "# settings\nEMBEDSQL_DB=d.duckdb\nEMBEDSQL_MODEL='x'y\n", 3, "the line of 'EMBEDSQL_MODEL'"),
]


def message(path: Path, line: int, what: str) -> str:
    return (
        f"{path} line {line} cannot be read ({what}). Write it as NAME=value, quoting a value that holds spaces, "
        'quotes or # (NAME="a value"), or start it with # to make it a comment.'
    )


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c[:1] + c[2:3]) for c in COMMANDS])
@pytest.mark.parametrize(("text", "line", "what"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_a_dotenv_line_that_cannot_be_parsed_is_one_error_for_every_command(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str, line: int, what: str, command: list[str]
) -> None:
    db = docs_db(tmp_path / "warehouse.duckdb")
    before = contents(db)
    (tmp_path / ".env").write_bytes(text.encode())

    with caplog.at_level(logging.WARNING):
        result = CliRunner().invoke(cli, command)

    assert (result.exit_code, result.stdout) == (1, ""), result.output
    assert result.stderr == f"Error: {message(tmp_path / '.env', line, what)}\n"
    assert SECRET not in result.output
    assert caplog.records == []  # no "python-dotenv could not parse" warning besides
    assert contents(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "warehouse.duckdb"]


@pytest.mark.parametrize(("text", "line", "what"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_the_python_api_raises_the_same_error(tmp_path: Path, text: str, line: int, what: str) -> None:
    db = docs_db(tmp_path / "d.duckdb")
    (tmp_path / ".env").write_bytes(text.encode())

    for call in (
        lambda: load_settings(),
        lambda: embedsql.run(QUERY, db=db),
        lambda: embedsql.sql("select 1", db=db),
        lambda: embedsql.connect(db),
    ):
        with pytest.raises(ConfigError) as raised:
            call()
        assert str(raised.value) == message(tmp_path / ".env", line, what)


@pytest.mark.parametrize(
    "text",
    ["A=1 # a comment\n", "export EMBEDSQL_MODEL=x\n", "  EMBEDSQL_MODEL = x\n", "EMBEDSQL_MODEL=\n", "FLAG\n",
     "EMBEDSQL_MODEL='has # and spaces'\n", 'EMBEDSQL_MODEL="two\nlines"\n', "\n\n# only comments\n"],
)  # fmt: skip
def test_lines_dotenv_can_parse_are_read_as_before(tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str) -> None:
    (tmp_path / ".env").write_text(text, encoding="utf-8")

    with caplog.at_level(logging.WARNING):
        result = CliRunner().invoke(cli, ["config"])

    assert result.exit_code == 0, result.output
    assert caplog.records == []
