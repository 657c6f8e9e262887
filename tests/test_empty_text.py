""" "Empty" text is NULL, empty or only Unicode whitespace (Python's ``str.isspace`` set), with one
definition for the plan's skip summary, every runner, ``embed()`` and ``search``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import embedsql
from embedsql.cli import cli
from embedsql.local_model import LocalModel
from embedsql.runners.local import _problem
from embedsql.source import _WHITESPACE, blank, blank_sql

from helpers import fetch, texts_table, vectors_by_key

WHITESPACE = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]


def test_the_whitespace_set_is_pythons() -> None:
    # embedsql writes the set out (finding it would cost every process a scan of all code points).
    assert "".join(WHITESPACE) == _WHITESPACE
    assert len(WHITESPACE) == 29
    assert {"\u3000", "\u00a0", "\u2028", "\u2029", "\u0085", "\u1680", "\u202f", "\u205f", "\x1c", "\x1f"} <= set(
        WHITESPACE
    )
    assert {chr(c) for c in range(0x2000, 0x200B)} <= set(WHITESPACE)
    # Not whitespace: a text of them is text.
    assert not {"\u200b", "\ufeff", "\u180e", "\u2060"} & set(WHITESPACE)


_texts = st.text(alphabet=st.sampled_from([*WHITESPACE, "a", "é", "\u200b", "\ufeff", "字", "\x00"]), max_size=8)


@pytest.fixture(scope="module")
def memory() -> Iterator[duckdb.DuckDBPyConnection]:
    """One in-memory DuckDB for every example (opening one costs more than the check itself)."""
    con = duckdb.connect()
    yield con
    con.close()


@settings(max_examples=300)
@given(st.one_of(st.none(), _texts))
def test_python_and_sql_agree_on_what_is_blank(memory: duckdb.DuckDBPyConnection, text: str | None) -> None:
    in_sql = memory.execute(f"SELECT {blank_sql('?')}", [text]).fetchall()[0][0]

    assert in_sql is blank(text)
    assert blank(text) is (text is None or all(c.isspace() for c in text))


@pytest.mark.parametrize("char", WHITESPACE, ids=[f"U+{ord(c):04X}" for c in WHITESPACE])
def test_each_whitespace_character_is_skipped_and_text_around_it_is_embedded(
    tmp_path: Path, model: LocalModel, char: str
) -> None:
    texts = {1: char, 2: char * 3, 3: f" {char}\n\t", 4: f"{char}apples{char}", 5: f"red{char}apples", 6: "pears"}
    db = texts_table(tmp_path / "warehouse.duckdb", texts)
    before = fetch(db, "SELECT * FROM docs ORDER BY id")

    result = embedsql.run("select id, body from docs", db=db)

    assert result.status == "complete"
    assert result.skipped == {"empty text": 3}
    assert result.failures == []
    vectors = vectors_by_key(db, "docs_embeddings")
    assert sorted(vectors) == [4, 5, 6]
    expected = model.embed([texts[4], texts[5], texts[6]])
    for key, vector in zip([4, 5, 6], expected, strict=True):
        np.testing.assert_allclose(vectors[key], vector, atol=1e-6)
    assert fetch(db, "SELECT * FROM docs ORDER BY id") == before


def test_null_and_empty_are_told_apart_in_the_summary(tmp_path: Path) -> None:
    db = texts_table(tmp_path / "warehouse.duckdb", {1: "\u3000\u2003", 2: "", 3: "pears"})
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO docs VALUES (4, NULL)")
    con.close()

    result = embedsql.run("select id, body from docs", db=db)

    assert result.skipped == {"NULL text": 1, "empty text": 2}
    assert fetch(db, "SELECT id FROM docs_embeddings") == [(3,)]


@pytest.mark.parametrize(
    "char", ["\u3000", "\u00a0", "\u2028", "\x1f", "\u0085"], ids=["3000", "00A0", "2028", "1F", "0085"]
)
def test_embed_gives_null_for_blank_text(movies_db: Path, char: str) -> None:
    table = embedsql.sql(
        f"select t, embed(t) is null as missing from (values ('{char}'), ('{char}x{char}'), (NULL)) v(t) order by t",
        db=movies_db,
    )

    assert dict(zip(table["t"].to_pylist(), table["missing"].to_pylist(), strict=True)) == {
        char: True,
        f"{char}x{char}": False,
        None: True,
    }


@pytest.mark.parametrize("text", ["\u3000", "\u2003\u2028", " \t\n", "\u00a0"])
def test_search_refuses_a_blank_search_text(movies_db: Path, text: str) -> None:
    result = CliRunner().invoke(cli, ["search", text, "--table", "movies_embeddings"])

    assert result.exit_code == 1
    assert result.stderr == "Error: the search text is empty; pass the words to search for.\n"


@pytest.mark.parametrize("text", ["\u3000", "", "\u2029\x1c"])
def test_the_local_runner_refuses_a_blank_input_like_the_api(text: str) -> None:
    request = {"url": "/v1/embeddings", "body": {"model": "all-MiniLM-L6-v2", "input": text}}

    assert _problem(request) == (400, "invalid_input", "'input' must be a non-empty string.")
