"""`embedsql search`'s own column and the names in its SQL never collide with the user's columns.

The similarity column is ``score``, or ``score_1`` (``score_2``, ...) when a key or shown column is
already called ``score`` in any letter case, as DuckDB names a repeated column; ``--where`` sees the
columns under the names printed. Each case names a key or a shown column like one of search's own
names (the output column, the aliases and the vector column of its SQL, DuckDB's ``rowid``) and checks
the exact hits against the same search with plain names, and that the user's tables are unchanged.
Keys of every type print as DuckDB writes them, and join to their shown columns exactly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hostile import contents

import embedsql
from embedsql.cli import cli

from helpers import fetch, make_db

MODEL = "all-MiniLM-L6-v2"
TEXTS = {1: "red apples", 2: "green pears", 3: "ripe bananas", 4: "sour lemons", 5: "dark plums", 6: "red cherries"}
QUERY_TEXT = "red apples"
# Named like search's own names: its output column in any case and its next free names, the aliases of
# its SQL (s, r, h), the target's vector column, DuckDB's rowid, its parameter and its view, other quoting.
KEY_NAMES = [
    ("score", "score_1"),
    ("SCORE", "score_1"),
    ("Score", "score_1"),
    ("score_1", "score"),
    ("s", "score"),
    ("r", "score"),
    ("h", "score"),
    ("rowid", "score"),
    ("vector", "score"),
    ("_embedsql_hits", "score"),
    ("unnamed_subquery", "score"),
    ("with space", "score"),
    ('quo"te', "score"),
]


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def csv_field(text: str) -> str:
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\r\n') else text


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs(id, body) embedded into docs_embeddings, and a copy keyed by each name of KEY_NAMES."""
    db = tmp_path_factory.mktemp("names") / "d.duckdb"
    rows = ", ".join(f"({k}, '{v}')" for k, v in TEXTS.items())
    make_db(db, f"CREATE TABLE docs AS SELECT * FROM (VALUES {rows}) AS t(id, body)")
    embedsql.run("select id, body from docs", db=db, model=MODEL)
    for n, (name, _) in enumerate(KEY_NAMES):
        make_db(db, f"CREATE TABLE k{n} AS SELECT id AS {quote(name)}, body FROM docs")
        embedsql.run(f"select {quote(name)}, body from k{n}", into=f"k{n}_embeddings", db=db, model=MODEL)
    return db


@pytest.fixture
def db(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copyfile(template, tmp_path / "d.duckdb"))


def search(db: Path, table: str, *args: str) -> list[str]:
    """The lines `embedsql search` prints in CSV (its exit status and stderr checked)."""
    result = CliRunner().invoke(
        cli, ["search", QUERY_TEXT, "--table", table, "--db", str(db), "-k", "10", "--format", "csv", *args]
    )
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    return result.stdout.splitlines()


def plain_hits(db: Path) -> list[tuple[int, str]]:
    """(id, score as printed) of every row, best first: the search with nothing named like search's names."""
    lines = search(db, "docs_embeddings")
    assert lines[0] == "id,score"
    return [(int(key), score) for key, score in (line.split(",") for line in lines[1:])]


@pytest.mark.parametrize(("name", "score"), KEY_NAMES, ids=[n for n, _ in KEY_NAMES])
def test_a_key_named_like_searchs_own_names(db: Path, name: str, score: str) -> None:
    n = [k for k, _ in KEY_NAMES].index(name)
    table = f"k{n}_embeddings"
    hits = plain_hits(db)
    before = contents(db)

    alone = search(db, table)
    shown = search(db, table, "--show", f"select {quote(name)}, body from k{n}")
    key_added = search(db, table, "--show", f"select body as {quote(name + '_text')} from k{n}")
    where = search(db, table, "--show", f"select {quote(name)}, body from k{n}", "--where", f"{quote(name)} > 2")
    where_ours = search(db, table, "--where", f"{score} > {hits[2][1]}")

    key = csv_field(name)
    assert alone == [f"{key},{score}", *(f"{k},{s}" for k, s in hits)]
    assert shown == [f"{key},body,{score}", *(f"{k},{TEXTS[k]},{s}" for k, s in hits)]
    assert key_added == [f"{key},{csv_field(name + '_text')},{score}", *(f"{k},{TEXTS[k]},{s}" for k, s in hits)]
    assert where == [f"{key},body,{score}", *(f"{k},{TEXTS[k]},{s}" for k, s in hits if k > 2)]
    assert where_ours == [f"{key},{score}", *(f"{k},{s}" for k, s in hits[:2])]
    assert contents(db) == before


# (case, --show query over docs, the header, a row of it from (id, body, score), --where, the rows it keeps)
SHOWN = [
    ("score", "select id, body as score from docs", "id,score,score_1", "{k},{b},{s}",
     "score like 'red%'", lambda k: TEXTS[k].startswith("red")),
    ("SCORE", 'select id, body as "SCORE" from docs', "id,SCORE,score_1", "{k},{b},{s}",
     "SCORE like 'red%'", lambda k: TEXTS[k].startswith("red")),
    ('"Score" and score_1', 'select id, body as "Score", id * 10 as score_1 from docs', "id,Score,score_1,score_2",
     "{k},{b},{k}0,{s}", "score_1 > 30", lambda k: k > 3),
    ("score twice", "select id, body as score, upper(body) as score from docs", "id,score,score_1,score_2",
     "{k},{b},{B},{s}", "score_1 like 'RED%'", lambda k: TEXTS[k].startswith("red")),
    ("a numeric score", "select id, id * 1.5 as score from docs", "id,score,score_1", "{k},{k15},{s}",
     "score > 4", lambda k: k * 1.5 > 4),
    ("embedding", "select id, body as embedding from docs", "id,embedding,score", "{k},{b},{s}",
     "embedding like '%s'", lambda k: TEXTS[k].endswith("s")),
    ("s, r and h", "select id, body as s, upper(body) as r, id as h from docs", "id,s,r,h,score",
     "{k},{b},{B},{k},{s}", "s like 'r%' and h <> 1", lambda k: TEXTS[k].startswith("r") and k != 1),
    ("rowid", "select id, body as rowid from docs", "id,rowid,score", "{k},{b},{s}",
     "rowid like 'r%'", lambda k: TEXTS[k].startswith("r")),
    ("id shown twice", "select id, body, id from docs", "id,body,id_1,score", "{k},{b},{k},{s}",
     "id_1 >= 5", lambda k: k >= 5),
]  # fmt: skip


@pytest.mark.parametrize(("show", "header", "row", "where", "kept"), [c[1:] for c in SHOWN], ids=[c[0] for c in SHOWN])
def test_a_shown_column_named_like_searchs_own_names(
    db: Path, show: str, header: str, row: str, where: str, kept: object
) -> None:
    hits = plain_hits(db)
    before = contents(db)

    shown = search(db, "docs_embeddings", "--show", show)
    filtered = search(db, "docs_embeddings", "--show", show, "--where", where)

    def line(k: int, s: str) -> str:
        return row.format(k=k, b=TEXTS[k], B=TEXTS[k].upper(), s=s, k15=f"{k * 1.5:.1f}")

    assert shown == [header, *(line(k, s) for k, s in hits)]
    assert filtered == [header, *(line(k, s) for k, s in hits if kept(k))]  # type: ignore[operator]
    assert contents(db) == before


def test_columns_of_the_source_table_named_score(db: Path) -> None:
    make_db(db, "CREATE TABLE rated AS SELECT id, body, id * 2 AS score FROM docs")
    embedsql.run("select id, body from rated", db=db, model=MODEL)
    hits = plain_hits(db)

    shown = search(db, "rated_embeddings", "--columns", "score,body")
    filtered = search(db, "rated_embeddings", "--columns", "score", "--where", "score > 6 and score_1 > -1")

    assert shown == ["id,score,body,score_1", *(f"{k},{k * 2},{TEXTS[k]},{s}" for k, s in hits)]
    assert filtered == ["id,score,score_1", *(f"{k},{k * 2},{s}" for k, s in hits if k > 3)]


def test_columns_the_source_table_lacks_are_one_line_before_anything_is_embedded(db: Path) -> None:
    result = CliRunner().invoke(
        cli, ["search", "a text never embedded", "--table", "docs_embeddings", "--db", str(db), "--columns", "score"]
    )

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        'Error: the search failed: Binder Error: Referenced column "score" not found in FROM clause! Candidate '
        'bindings: "body". Check --where, --show and --columns.\n'
    )
    assert fetch(db, "SELECT count(*) FROM embedsql.cache_all_minilm_l6_v2_384") == [(len(TEXTS),)]  # not embedded


def test_the_python_api_names_the_similarity_column_alike(db: Path) -> None:
    n = [k for k, _ in KEY_NAMES].index("Score")

    hits = embedsql.search(QUERY_TEXT, table=f"k{n}_embeddings", show=f"select 1 as SCORE_1, * from k{n}", db=db)

    assert hits.column_names == ["Score", "SCORE_1", "body", "score_2"]
    assert hits.column(0).to_pylist() == [k for k, _ in plain_hits(db)]


# (key type, the six keys in SQL, as DuckDB writes them; None: in the session's time zone, whatever it is)
KEY_TYPES = [
    ("UHUGEINT", [f"{2**128 - k}::UHUGEINT" for k in TEXTS], [str(2**128 - k) for k in TEXTS]),
    ("HUGEINT", [f"({-(2**127) + k})::HUGEINT" for k in TEXTS], [str(-(2**127) + k) for k in TEXTS]),
    ("DECIMAL(38,10)", [f"{k}.0000000001::DECIMAL(38,10)" for k in TEXTS], [f"{k}.0000000001" for k in TEXTS]),
    ("BLOB, not UTF-8", [f"'\\xFF\\x0{k}'::BLOB" for k in TEXTS], [f"\\xFF\\x0{k}" for k in TEXTS]),
    ("DATE, infinite and BC", ["'infinity'::DATE", "'-infinity'::DATE", "'0044-03-15 (BC)'::DATE",
     "'294247-01-10'::DATE", "'2024-02-29'::DATE", "'1970-01-01'::DATE"],
     ["infinity", "-infinity", "0044-03-15 (BC)", "294247-01-10", "2024-02-29", "1970-01-01"]),
    ("TIMESTAMP_NS", [f"'2024-01-01 12:00:00.12345678{k}'::TIMESTAMP_NS" for k in TEXTS],
     [f"2024-01-01 12:00:00.12345678{k}" for k in TEXTS]),
    ("TIMESTAMPTZ", [f"'2024-01-0{k} 12:00:00+02'::TIMESTAMPTZ" for k in TEXTS], None),
]  # fmt: skip


@pytest.mark.parametrize(("values", "printed"), [c[1:] for c in KEY_TYPES], ids=[c[0] for c in KEY_TYPES])
def test_keys_of_every_type_print_as_duckdb_writes_them_and_join_their_columns(
    db: Path, values: list[str], printed: list[str] | None
) -> None:
    rows = ", ".join(f"({v}, '{TEXTS[k]}')" for k, v in zip(TEXTS, values, strict=True))
    make_db(db, f"CREATE TABLE typed AS SELECT * FROM (VALUES {rows}) AS t(k, body)")
    embedsql.run("select k, body from typed", db=db, model=MODEL)
    hits = plain_hits(db)
    by_text = dict(fetch(db, "SELECT body, k::VARCHAR FROM typed"))
    key = {k: str(by_text[text]) for k, text in TEXTS.items()}
    assert printed is None or list(key.values()) == printed  # the expected text is DuckDB's own

    alone = search(db, "typed_embeddings")
    shown = search(db, "typed_embeddings", "--show", "select body from typed")

    assert alone == ["k,score", *(f"{csv_field(key[k])},{s}" for k, s in hits)]
    assert shown == ["k,body,score", *(f"{csv_field(key[k])},{TEXTS[k]},{s}" for k, s in hits)]
