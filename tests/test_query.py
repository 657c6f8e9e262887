"""The query side: embed() in SQL, search, the Python connection, output formats."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

import embedsql
from embedsql.cli import cli
from embedsql.formats import render
from embedsql.local_model import LocalModel

from fake_openai import FakeOpenAI, expected_vector
from helpers import FakeTime, fetch

MODEL = "text-embedding-3-small"
TEXTS = {1: "red apples", 2: "green pears", 3: "red apples", 4: "ripe bananas", 5: "sour lemons", 6: "dark plums"}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture
def fruit(tmp_path: Path, fake_time: FakeTime) -> Path:
    db = tmp_path / "f.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE fruit (id INTEGER, name VARCHAR, colour VARCHAR)")
    con.executemany("INSERT INTO fruit VALUES (?, ?, ?)", [(k, v, v.split()[0]) for k, v in TEXTS.items()])
    con.close()
    embedsql.run("select id, name from fruit", db=db, **fake_time)
    return db


def expected_ranking(query: str, k: int) -> list[tuple[int, float]]:
    q = expected_vector(MODEL, query, 1536)
    scores = {key: cosine(expected_vector(MODEL, text, 1536), q) for key, text in TEXTS.items()}
    return sorted(scores.items(), key=lambda kv: (-round(kv[1], 6), kv[0]))[:k]


def test_search_returns_the_exact_nearest_rows_with_ties_in_key_order(fruit: Path, openai_server: FakeOpenAI) -> None:
    hits = embedsql.search("red apples", table="fruit_embeddings", k=4, db=fruit)

    expected = expected_ranking("red apples", 4)
    assert hits.column_names == ["id", "score"]
    assert hits["id"].to_pylist() == [key for key, _ in expected]
    assert hits["id"].to_pylist()[:2] == [1, 3]  # the same text twice: equal scores, key order
    np.testing.assert_allclose(hits["score"].to_numpy(), [s for _, s in expected], atol=1e-6)  # float32 maths


def test_search_shows_columns_and_filters_before_ranking(fruit: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "search",
            "red apples",
            "--table",
            "fruit_embeddings",
            "--db",
            str(fruit),
            "--show",
            "select name, colour from fruit",
            "--where",
            "colour <> 'red'",
            "-k",
            "2",
            "--format",
            "csv",
        ],
    )

    assert result.exit_code == 0, result.output
    expected = [(k, s) for k, s in expected_ranking("red apples", 6) if not TEXTS[k].startswith("red")][:2]
    lines = result.stdout.splitlines()
    assert lines[0] == "id,name,colour,score"
    assert [int(line.split(",")[0]) for line in lines[1:]] == [k for k, _ in expected]
    assert lines[1].startswith(f"{expected[0][0]},{TEXTS[expected[0][0]]},{TEXTS[expected[0][0]].split()[0]},")


def test_search_with_columns_of_the_source_table(fruit: Path) -> None:
    hits = embedsql.search("sour lemons", table="fruit_embeddings", columns=["colour"], k=1, db=fruit)

    assert hits.to_pylist()[0]["id"] == 5
    assert hits.column_names == ["id", "colour", "score"]
    assert hits.to_pylist()[0]["colour"] == "sour"


def test_search_text_is_cached_and_never_paid_twice(fruit: Path, openai_server: FakeOpenAI) -> None:
    before = Counter(openai_server.inputs_by_text)
    embedsql.search("a bowl of cherries", table="fruit_embeddings", db=fruit)
    embedsql.search("a bowl of cherries", table="fruit_embeddings", db=fruit)

    assert openai_server.inputs_by_text - before == Counter({"a bowl of cherries": 1})


def test_a_model_other_than_the_tables_is_an_error_naming_both(fruit: Path) -> None:
    result = CliRunner().invoke(
        cli, ["search", "apples", "--table", "fruit_embeddings", "--db", str(fruit), "--model", "all-MiniLM-L6-v2"]
    )

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: table fruit_embeddings holds 1536-d vectors of text-embedding-3-small, but --model asks for "
        "all-MiniLM-L6-v2: vectors of different models cannot be compared. Drop --model, or pass --model "
        "text-embedding-3-small.\n"
    )


def test_zero_vectors_never_come_back_as_nan(fruit: Path) -> None:
    con = duckdb.connect(str(fruit))
    con.execute("INSERT INTO fruit_embeddings SELECT 99, list_transform(range(1536), lambda x: 0.0)::FLOAT[1536]")
    con.close()

    hits = embedsql.search("red apples", table="fruit_embeddings", k=10, db=fruit)

    assert 99 not in hits["id"].to_pylist()
    assert not np.isnan(hits["score"].to_numpy()).any()


def test_embed_over_a_column_is_batched_and_cached(tmp_path: Path, openai_server: FakeOpenAI, fruit: Path) -> None:
    con = duckdb.connect(str(fruit))
    con.execute("CREATE TABLE many AS SELECT range AS id, 'phrase ' || (range % 3000) AS body FROM range(5000)")
    con.close()
    requests = lambda: sum(1 for r in openai_server.requests if r[:2] == ("POST", "/v1/embeddings"))  # noqa: E731
    before = requests()

    first = CliRunner().invoke(cli, ["sql", "select count(embed(body)) from many", "--db", str(fruit)])
    after_first = requests()
    second = CliRunner().invoke(cli, ["sql", "select count(embed(body)) from many", "--db", str(fruit)])

    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[-1].strip() == "5000"
    assert 2 <= after_first - before <= 3  # 3,000 distinct texts in chunks of 2,048 rows: not one call per row
    assert requests() == after_first  # all from the cache the second time
    assert second.exit_code == 0
    assert sum(openai_server.inputs_by_text[f"phrase {i}"] for i in range(3000)) == 3000


def test_connect_gives_a_duckdb_connection_with_embed(fruit: Path) -> None:
    con = embedsql.connect(fruit)
    try:
        ((vector,),) = con.sql("SELECT embed('sour lemons')").fetchall()
        ((best,),) = con.sql(
            "SELECT id FROM fruit_embeddings ORDER BY array_cosine_similarity(embedding, embed('ripe bananas')) "
            "DESC LIMIT 1"
        ).fetchall()
        (nulls,) = con.sql("SELECT embed(NULL) IS NULL, embed('  ') IS NULL").fetchall()
    finally:
        con.close()
    np.testing.assert_array_equal(np.array(vector, np.float32), expected_vector(MODEL, "sour lemons", 1536))
    assert best == 4
    assert nulls == (True, True)


def test_the_local_model_in_sql(tmp_path: Path, movies_db: Path, model: LocalModel) -> None:
    embedsql.run("select movieId, title from movies where movieId <= 50", into="titles")

    result = CliRunner().invoke(
        cli,
        [
            "sql",
            "select movieId, title from movies join titles using (movieId) "
            "order by array_cosine_similarity(embedding, embed('toy story')) desc, movieId limit 1",
            "--format",
            "json",
        ],
    )

    assert result.exit_code == 0, result.output
    assert result.stdout == '[{"movieId": 1, "title": "Toy Story (1995)"}]\n'
    (stored,) = fetch(
        movies_db,
        f"SELECT embedding FROM embedsql.cache_all_minilm_l6_v2_384 WHERE text_hash = "
        f"'{embedsql.embed.text_hash('toy story')}'",
    )[0]  # type: ignore[attr-defined]
    np.testing.assert_array_equal(np.array(stored, np.float32), model.embed(["toy story"])[0])


def test_sql_errors_are_one_line(fruit: Path) -> None:
    result = CliRunner().invoke(cli, ["sql", "select nope from fruit", "--db", str(fruit)])

    assert result.exit_code == 1
    assert result.stderr == (
        'Error: Binder Error: Referenced column "nope" not found in FROM clause! Candidate bindings: "name". '
        "Check the SQL of the query.\n"
    )


ROWS = pa.table(
    {
        "id": pa.array([1, 22], pa.int32()),
        "name": ["plain", 'with, comma "and" | pipe'],
        "score": pa.array([0.5, None], pa.float64()),
        "vec": pa.array([[1.0, 2.0], [0.25, -1.5, 3.0, 4.0]], pa.list_(pa.float32())),
    }
)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (
            "table",
            "id  name                      score  vec\n"
            "--  ------------------------  -----  -----------------------------\n"
            " 1  plain                       0.5  [1.0, 2.0]\n"
            '22  with, comma "and" | pipe   NULL  [0.25, -1.5, 3.0, … 4 values]\n',
        ),
        (
            "csv",
            'id,name,score,vec\n1,plain,0.5,"[1.0, 2.0]"\n22,"with, comma ""and"" | pipe",,"[0.25, -1.5, 3.0, 4.0]"\n',
        ),
        (
            "json",
            '[{"id": 1, "name": "plain", "score": 0.5, "vec": [1.0, 2.0]}, '
            '{"id": 22, "name": "with, comma \\"and\\" | pipe", "score": null, "vec": [0.25, -1.5, 3.0, 4.0]}]\n',
        ),
        (
            "jsonl",
            '{"id": 1, "name": "plain", "score": 0.5, "vec": [1.0, 2.0]}\n'
            '{"id": 22, "name": "with, comma \\"and\\" | pipe", "score": null, "vec": [0.25, -1.5, 3.0, 4.0]}\n',
        ),
        (
            "markdown",
            "| id | name | score | vec |\n|---|---|---|---|\n| 1 | plain | 0.5 | [1.0, 2.0] |\n"
            '| 22 | with, comma "and" \\| pipe | NULL | [0.25, -1.5, 3.0, … 4 values] |\n',
        ),
    ],
)
def test_formats_byte_for_byte(fmt: str, expected: str) -> None:
    assert render(ROWS, fmt) == expected


def test_search_on_an_open_connection_gives_the_same_hits(fruit: Path) -> None:
    con = embedsql.connect(fruit)
    try:
        reused = [embedsql.search("ripe bananas", table="fruit_embeddings", k=3, con=con, db=fruit) for _ in range(2)]
    finally:
        con.close()
    fresh = embedsql.search("ripe bananas", table="fruit_embeddings", k=3, db=fruit)

    assert reused[0].equals(fresh)
    assert reused[1].equals(fresh)
    assert fresh["id"].to_pylist()[0] == 4
