"""Bench data: the movies table, and generated tables of short or long texts of any size.

    python -m bench.data out.duckdb --rows 1000000 --kind long     # docs(id BIGINT, body VARCHAR)

The generator runs inside DuckDB (a table of 10M short texts takes seconds) and is deterministic:
row ``i`` always gets the same text. Every text is distinct (it carries its row number), so that
deduplication does not flatter the pipeline; the movies table is the case with many duplicates
(62,423 rows, 1,639 distinct genre strings).

- ``short``: genre-like, 2-4 words joined by ``|`` and a number, e.g. ``Comedy|Drama|Western 8123``
  (about 30 bytes, 10 tokens).
- ``long``: about 200 words of English-like prose (about 1.3 kB, 210 tokens).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb

__all__ = ["KINDS", "MOVIES_CSV", "connect", "make_movies", "make_texts"]

REPO = Path(__file__).resolve().parents[1]
MOVIES_CSV = REPO / "data" / "movies.csv"
KINDS = ("short", "long")

GENRES = (  # noqa: SIM905  (a word list reads better as one string)
    "Action Adventure Animation Children Comedy Crime Documentary Drama Fantasy Film-Noir Horror IMAX "
    "Musical Mystery Romance Sci-Fi Thriller War Western"
).split()
# Common English words: the long texts tokenise like prose (mostly one token per word).
WORDS = (  # noqa: SIM905  (a word list reads better as one string)
    "the of and to in is was for that with as on by at from his her an which this be are were had have "
    "not but it its their they one all new first two also after more when who time year years into film "
    "story city house family world life people war school river music game team season company over under "
    "between during while where there here about only most many some other such each small large great "
    "early late long short high low old young good best major local public national north south east west "
    "water light night day morning evening summer winter spring autumn road station market garden church "
    "castle island mountain valley forest village county state country king queen prince army ship train "
    "station bridge tower street field stone wood iron gold silver red blue green white black dark bright "
    "quiet loud fast slow warm cold open closed free strong began became found made took gave came went "
    "said told built played wrote moved lived worked known called named based held used seen left right "
    "led won lost returned released published"
).split()


def connect(path: str = ":memory:", *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that draws no progress bar on stdout, where the benchmarks' tables go."""
    con = duckdb.connect(path, read_only=read_only)
    con.execute("SET enable_progress_bar = false")
    return con


def make_texts(db: Path, rows: int, *, kind: str = "short", table: str = "docs") -> Path:
    """Create ``table(id BIGINT, body VARCHAR)`` of ``rows`` distinct texts in the DuckDB file ``db``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    con = connect(str(db))
    try:
        if kind == "short":
            genres = _list(GENRES)
            n = len(GENRES)
            # 2-4 genre words picked by hashes of the row number, then the number itself.
            text = (
                f"array_to_string(list_transform(range(2 + (hash(i) % 3)::INTEGER), "
                f"lambda k: {genres}[1 + (hash(i, k) % {n})::INTEGER]), '|') || ' ' || i"
            )
        else:
            words = _list(WORDS)
            n = len(WORDS)
            text = (
                f"'Entry ' || i || ': ' || array_to_string(list_transform(range(200), "
                f"lambda k: {words}[1 + (hash(i, k) % {n})::INTEGER]), ' ') || '.'"
            )
        con.execute(
            f"CREATE OR REPLACE TABLE {table} AS SELECT i::BIGINT AS id, {text} AS body FROM range({rows}) t(i)"
        )
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return db


def make_movies(db: Path) -> Path:
    """Create ``movies(movieId INTEGER, title VARCHAR, genres VARCHAR)`` from data/movies.csv in ``db``."""
    con = connect(str(db))
    try:
        con.execute("SET file_search_path = ?", [str(REPO)])
        con.execute((REPO / "sql" / "warehouse.sql").read_text(encoding="utf-8"))
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return db


def _list(words: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join("'" + w.replace("'", "''") + "'" for w in words) + "]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("db", type=Path)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--kind", choices=KINDS, default="short")
    parser.add_argument("--table", default="docs")
    args = parser.parse_args()
    make_texts(args.db, args.rows, kind=args.kind, table=args.table)
    con = connect(str(args.db), read_only=True)
    try:
        for row in con.execute(
            f"SELECT count(*), avg(strlen(body))::INTEGER, any_value(body) FROM {args.table}"
        ).fetchall():
            print(f"{row[0]:,} rows, {row[1]} bytes a text on average, e.g. {row[2][:80]!r}")
    finally:
        con.close()


if __name__ == "__main__":
    main()
