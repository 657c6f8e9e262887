"""Search latency: `embedsql.search` top-10 over N x D vectors, against DuckDB's own brute force.

    python -m bench.search                      # 1M x 384 and 100k x 1536
    python -m bench.search --rows 200000 --dims 384

Builds a database of random unit vectors recorded as an embedsql target (and the query text's
vector in the cache, so no model or network is involved), warms up, then times the median of
several searches: one shot (open the database, search, close: what the CLI does, so the table is
read cold each time) and on a connection kept open. The baseline is the same top-10 query run
directly on an open DuckDB connection: the warm ratio is what embedsql adds to DuckDB.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

import embedsql
from embedsql import ledger
from embedsql.cache import ensure_cache, store_vectors
from embedsql.embed import text_hash

from .common import Goal, StageResult, markdown

MODELS = {384: "all-MiniLM-L6-v2", 1536: "text-embedding-3-small"}
QUERY = "space adventure for kids"


def build(db: Path, rows: int, dims: int, seed: int = 0) -> np.ndarray:
    """A target table `vectors(id BIGINT, embedding FLOAT[dims])` of random unit vectors."""
    rng = np.random.default_rng(seed)
    con = ledger.connect(db) if db.exists() else None
    if con is None:
        duckdb.connect(str(db)).close()
        con = ledger.connect(db)
    try:
        con.execute(f"CREATE TABLE vectors (id BIGINT, embedding FLOAT[{dims}])")
        step = 100_000
        for start in range(0, rows, step):
            n = min(step, rows - start)
            block = rng.standard_normal((n, dims), dtype=np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            flat = pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1)), dims)
            con.register("block", pa.table({"id": pa.array(np.arange(start, start + n)), "embedding": flat}))
            con.execute("INSERT INTO vectors SELECT * FROM block")
            con.unregister("block")
        model = MODELS[dims]
        con.execute(
            "INSERT INTO embedsql.targets VALUES ('\"vectors\"', ?, ?, ['id'], ['BIGINT'], 'bench', now())",
            [model, dims],
        )
        # What embedsql writes on a table it wrote, by which it knows it as its own.
        con.execute(f"COMMENT ON TABLE vectors IS 'embedsql: {dims}-d vectors of {model}, job bench'")
        query = rng.standard_normal(dims).astype(np.float32)
        query /= np.linalg.norm(query)
        table = ensure_cache(con, model, dims)
        store_vectors(con, table, pa.array([text_hash(QUERY)]), query[np.newaxis, :])
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return query


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up: the buffer pool reads the table once
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(rows: int, dims: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        db = Path(scratch) / "bench.duckdb"
        started = time.perf_counter()
        query = build(db, rows, dims)
        built = time.perf_counter() - started

        def one_shot() -> None:  # what `embedsql search` does: open the database, search, close
            hits = embedsql.search(QUERY, table="vectors", k=10, db=db)
            assert hits.num_rows == 10

        mine = timed(one_shot, repeat)
        warm_con = embedsql.connect(db)

        def warm() -> None:  # a connection kept open (a notebook, a service)
            hits = embedsql.search(QUERY, table="vectors", k=10, db=db, con=warm_con)
            assert hits.num_rows == 10

        try:
            warm_s = timed(warm, repeat)
        finally:
            warm_con.close()
        con = duckdb.connect(str(db), read_only=True)

        def baseline() -> None:
            con.sql(
                f"SELECT id, array_cosine_similarity(embedding, $v::FLOAT[{dims}]) AS s FROM vectors "
                "ORDER BY s DESC LIMIT 10",
                params={"v": query.tolist()},
            ).fetchall()

        try:
            base = timed(baseline, repeat)
        finally:
            con.close()
    return {"build_s": built, "one_shot_s": mine, "warm_s": warm_s, "duckdb_s": base}


HEADER = ["vectors", "search, one shot (CLI)", "search, open connection", "DuckDB brute force, warm", "warm ratio"]


def run_stage(cases: list[tuple[int, int]], *, repeat: int = 5, echo: bool = True) -> StageResult:
    """Measure each (rows, dims) case: the stage's table and summary lines, for ``python -m bench``."""
    result = StageResult("6. Search: top-10 latency after warm-up")
    rows = []
    for n, dims in cases:
        r = measure(n, dims, repeat)
        rows.append(
            [
                f"{n:,} x {dims}",
                f"{r['one_shot_s'] * 1000:.0f} ms",
                f"{r['warm_s'] * 1000:.0f} ms",
                f"{r['duckdb_s'] * 1000:.0f} ms",
                f"{r['warm_s'] / r['duckdb_s']:.2f}x",
            ]
        )
        if echo:
            print(f"  search {n:,} x {dims}: {r['warm_s'] * 1000:.0f} ms warm", flush=True)
        result.goals.append(
            Goal(
                "6 search",
                f"{n:,} x {dims}: {r['warm_s'] * 1000:.0f} ms warm ({r['one_shot_s'] * 1000:.0f} ms one shot)",
                f"DuckDB {r['duckdb_s'] * 1000:.0f} ms",
                r["warm_s"] / r["duckdb_s"],
                "—",
                None,
            )
        )
    result.lines += markdown(HEADER, rows)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="rows (repeat with --dims for several cases)")
    parser.add_argument("--dims", type=int, action="append", choices=sorted(MODELS))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cases = list(zip(args.rows, args.dims, strict=True)) if args.rows else [(1_000_000, 384), (100_000, 1536)]
    print("\n".join(run_stage(cases, repeat=args.repeat, echo=False).lines), flush=True)


if __name__ == "__main__":
    main()
