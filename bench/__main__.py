"""Every benchmark in one run, each beside its baselines measured in the same run, as Markdown.

    python -m bench                          # all stages at their default sizes (~50 min on 2 cores)
    python -m bench --quick                  # small sizes, under 2 minutes
    python -m bench --stage prepare --stage load --rows 100000
    python -m bench.memory --rows 1000000 --rows 10000000 --step prepare      # opt-in: 10M rows

Stages (``--stage``, repeatable; default all), each with the goal its summary line holds it to:

1. prepare  query -> planned, deduplicated shards, rows/s: a job's prepare (token estimates) and the
            exact dry run, against the notebook way (pandas + json.dumps; goal >= 1.5x) and DuckDB's COPY
2. load     Batch output files -> cache -> FLOAT[1536] table, lines/s and bytes written
            (/proc/self/io), against a pure-DuckDB pipeline of the same durability (goal >= 0.9x its
            rate, <= 2.5x the vector bytes written), the notebook way and the fastest native read
3. e2e      N distinct texts -> table through the local OpenAI server's Batch API, stage breakdown
            (1536-d vectors unless --e2e-dimensions: see bench.e2e)
4. memory   peak RSS of prepare and load in child processes, at each size (goal: the largest within
            1.2x of the smallest, under 1 GiB)
5. local    the bundled model's texts/s on 2 cores, against plain onnxruntime
6. search   top-10 latency (bench.search), against DuckDB's own query
7. cost     billed tokens of the movies quickstart and its re-run, against one request per row
8. sync     the sync runner's texts/s against a bare openai SDK client sending the same packed
            requests to a fast local server (goal >= 0.8x), at 1 and 8 connections, and its pacing
            against a rate limit (bench.sync)
9. map      `embedsql map` on the movies table and on N synthetic 384-d vectors: time (first run and
            reused), peak RSS, umap-learn on every row as the notebook way, the page's size and its
            first frame in headless Chromium (bench.map; needs the map extra)

Default sizes: prepare the movies table and 100k and 1M short and long texts; load 100k and 1M
base64 lines and 100k float lines; end to end 1M texts; memory 100k and 1M rows (reusing what
prepare and load measured); 10M rows are opt-in through ``--rows`` (see bench.memory for why).
Mind the disk: 1M lines of 1536-d vectors take ~20 GB (base64 output files, cache, table).
``--rows`` (repeatable) replaces the sizes of prepare, load (float at the smallest only), memory
and end to end (the largest). Each stage prints its tables when it ends; a summary table of every
goal (stage, figure, reference, ratio, goal, met?) comes last. A figure's ratio to its reference
matters more than the figure: both ran on the same machine a moment apart.

Needs pandas for the notebook references (``pip install pandas``). Timed assertions do not belong
in the test suite: nothing here fails on a missed goal; it prints, a reader judges.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime

import duckdb

from .common import Goal, StageResult, fmt_ratio, markdown

STAGES = ("prepare", "load", "e2e", "memory", "local", "search", "cost", "sync", "map")


def plan(args: argparse.Namespace) -> dict[str, dict]:
    """The sizes of each stage for this run."""
    if args.quick:
        sizes = args.rows or [20_000]
        return {
            "prepare": {"sizes": sizes, "kinds": ["short", "long"]},
            "load": {"cases": [(min(sizes), "base64"), (min(sizes), "float")]},
            "e2e": {"rows": max(sizes)},
            "memory": {"sizes": sorted({5_000, *sizes})},
            "local": {"short": 256, "long": 16, "rounds": 2},
            "search": {"cases": [(100_000, 384), (10_000, 1536)], "repeat": 3},
            "cost": {},
            "sync": {"texts": 5_000, "rounds": 2, "pacing_texts": 2_000, "tpm": 10_000},
            "map": {"sizes": [20_000], "notebook": False},
        }
    sizes = args.rows or [100_000, 1_000_000]
    return {
        "prepare": {"sizes": sizes, "kinds": ["short", "long"]},
        "load": {"cases": [(n, "base64") for n in sizes] + [(min(sizes), "float")]},
        "e2e": {"rows": max(sizes)},
        "memory": {"sizes": sizes},
        "local": {"short": 1639, "long": 128, "rounds": 3},
        "search": {"cases": [(1_000_000, 384), (100_000, 1536)], "repeat": 5},
        "cost": {},
        "sync": {"texts": 20_000, "rounds": 2, "pacing_texts": 6_000, "tpm": 20_000},
        "map": {"sizes": [1_000_000], "notebook": True},
    }


def run(stage: str, options: dict, args: argparse.Namespace) -> StageResult:
    if stage == "prepare":
        from . import prepare

        return prepare.run_stage(options["sizes"], options["kinds"])
    if stage == "load":
        from . import load

        return load.run_stage(options["cases"])
    if stage == "e2e":
        from . import e2e

        return e2e.run_stage(options["rows"], dimensions=args.e2e_dimensions)
    if stage == "memory":
        from . import memory

        return memory.run_stage(options["sizes"], dimensions=args.dimensions)
    if stage == "local":
        from . import local

        return local.run_stage(options["short"], options["long"], rounds=options["rounds"])
    if stage == "search":
        from . import search

        return search.run_stage(options["cases"], repeat=options["repeat"])
    if stage == "cost":
        from . import cost

        return cost.run_stage()
    if stage == "map":
        from . import map as map_stage

        return map_stage.run_stage(options["sizes"], notebook=options["notebook"])
    from . import sync

    return sync.run_stage(**options)


def summary(goals: list[Goal]) -> list[str]:
    met = {True: "yes", False: "**no**", None: "—"}
    rows = [[g.stage, g.figure, g.reference, fmt_ratio(g.ratio), g.goal, met[g.met]] for g in goals]
    return markdown(["stage", "figure", "reference", "ratio", "goal", "met?"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stage", choices=STAGES, action="append", help="stage to run (repeat); default all")
    parser.add_argument("--rows", type=int, action="append", help="table size (repeat); see above")
    parser.add_argument("--quick", action="store_true", help="small sizes: the whole run in under 2 minutes")
    parser.add_argument("--dimensions", type=int, default=1536, help="vector size of the memory stage's load case")
    parser.add_argument("--e2e-dimensions", type=int, default=1536, help="vector size of the end-to-end stage")
    args = parser.parse_args()
    sizes = plan(args)
    started = time.perf_counter()
    print(
        f"# embedsql benchmarks ({'quick' if args.quick else 'default sizes'})\n\n"
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()} with {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, duckdb {duckdb.__version__}\n",
        flush=True,
    )
    goals: list[Goal] = []
    for stage in args.stage or STAGES:
        began = time.perf_counter()
        try:
            result = run(stage, sizes[stage], args)
        except Exception as e:  # one stage that breaks (out of memory, disk full) must not lose the others
            traceback.print_exc()
            result = StageResult(f"{stage}: failed", [f"{type(e).__name__}: {e}"])
            result.goals.append(Goal(stage, f"failed: {type(e).__name__}", "—", None, "—", False))
        print(result.text() + f"\n({stage}: {time.perf_counter() - began:.0f} s)\n", flush=True)
        goals += result.goals
    print("## Summary\n")
    print("\n".join(summary(goals)))
    print(f"\n(all stages: {time.perf_counter() - started:.0f} s)", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
