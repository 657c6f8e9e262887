"""Cost: billed tokens of the movies quickstart, against the notebook's one request per row.

    python -m bench.cost

``embedsql run "select movieId, genres from movies" --model text-embedding-3-small`` runs twice
against the local OpenAI server (tests/fake_openai/, in this process, on its fake clock); the
tokens billed are what the server's batches report in ``usage``. The first run sends each distinct
genre string once; the re-run finds every text in the cache and sends nothing. The notebook sends
one request per row: its tokens are counted with ``embedsql.tokens`` over all 62,423 rows (and
priced at the standard API's rate, since it calls /v1/embeddings; embedsql pays the Batch API's).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import embedsql
from embedsql.models import MODELS
from embedsql.tokens import count_tokens

from .common import Goal, StageResult, fmt_n, markdown
from .data import connect, make_movies
from .prepare import MODEL, MOVIES_SQL, settings_for

__all__ = ["run_stage"]

TESTS = Path(__file__).resolve().parents[1] / "tests"


def billed(server: object) -> int:
    return sum(b["usage"]["input_tokens"] for b in server.batches.values())  # type: ignore[attr-defined]


def run_stage(*, echo: bool = True) -> StageResult:
    sys.path.insert(0, str(TESTS))
    from fake_openai import FakeOpenAI

    result = StageResult("7. Cost: billed tokens, movies quickstart (genres, text-embedding-3-small)")
    model = MODELS[MODEL]
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp, FakeOpenAI() as server:
        db = make_movies(Path(tmp) / "bench.duckdb")
        con = connect(str(db), read_only=True)
        try:
            genres = [r[0] for r in con.execute("SELECT genres FROM movies").fetchall()]
        finally:
            con.close()
        settings = settings_for(db, openai_api_key=server.api_key, openai_base_url=server.base_url)
        runs = []
        for _ in range(2):
            before = billed(server)
            run = embedsql.run(MOVIES_SQL, settings=settings, sleep=server.advance, clock=server.now)
            runs.append((run, billed(server) - before))
    notebook = int(count_tokens(model, genres).sum())
    distinct = int(count_tokens(model, sorted(set(genres))).sum())
    (first, first_tokens), (again, again_tokens) = runs
    if echo:
        print(f"  cost: {fmt_n(first_tokens)} tokens, re-run {fmt_n(again_tokens)}; notebook {fmt_n(notebook)}")

    def dollars(tokens: int, price: float) -> str:
        return f"${tokens / 1e6 * price:.6f}"

    result.lines += markdown(
        ["run", "requests (texts sent)", "billed tokens", "price", "vs notebook"],
        [
            [
                "notebook: one request per row",
                fmt_n(len(genres)),
                fmt_n(notebook),
                dollars(notebook, model.price_standard),
                "1.00x",
            ],
            [
                "embedsql run (distinct texts only)",
                fmt_n(first.sent_texts),
                fmt_n(first_tokens),
                dollars(first_tokens, model.price_batch),
                f"{first_tokens / notebook:.4f}x",
            ],
            [
                "embedsql run again (all cached)",
                fmt_n(again.sent_texts),
                fmt_n(again_tokens),
                dollars(again_tokens, model.price_batch),
                f"{again_tokens / notebook:.4f}x",
            ],
        ],
    )
    result.lines += [
        "",
        f"Tokens of the {len(set(genres)):,} distinct genre strings by embedsql.tokens: {fmt_n(distinct)}. "
        "Prices: the notebook at the standard API's rate, embedsql at the Batch API's.",
    ]
    result.goals += [
        Goal(
            "7 cost",
            f"first run {fmt_n(first_tokens)} tokens",
            f"notebook {fmt_n(notebook)} tokens",
            notebook / first_tokens if first_tokens else None,
            f"distinct texts only (= {fmt_n(distinct)})",
            first_tokens == distinct,
        ),
        Goal("7 cost", f"re-run {fmt_n(again_tokens)} tokens", "—", None, "0 tokens", again_tokens == 0),
    ]
    return result


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    print(run_stage().text())


if __name__ == "__main__":
    main()
