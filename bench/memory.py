"""Memory: peak RSS of prepare and of load, each in a fresh child process, at several sizes.

    python -m bench.memory                                  # 100k and 1M rows
    python -m bench.memory --rows 1000000 --rows 10000000 --step prepare   # the issue's sizes (see below)

Prepare is a real run's (``bench.prepare.prepare_job``: tokens estimated, the job committed) and
the dry run's (``embedsql.run(..., dry_run=True)``: every text counted), each over a table of
distinct short texts; load is
``embedsql.load.load_shards`` of a job over that many texts whose base64 output files are in place,
then ``embedsql.resume`` of it for the target table (both as in ``bench.prepare`` and ``bench.load``,
whose measurements this stage reuses when they ran in the same run). The peak is the child's
high-water mark (``VmHWM``, else ``ru_maxrss``), which includes the interpreter and its imports
(~100-200 MiB, shown apart); for load it is also read between the two calls, which tells which
of them sets it.

Goals: flat in rows (the largest size within 1.2x of the smallest) and under 1 GiB.

10M rows are opt-in: at 1536-d, 10M output lines are 82 GB of files plus 61 GB of cache and as
much again of target table, which no disk here holds; ``--dimensions 256`` makes the load case
fit (about 35 GB at 10M); the 10M prepare case takes minutes on 2 cores, most of it the dry
run counting tokens (see bench.prepare's profile).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from . import load, prepare
from .common import GiB, Goal, StageResult, fmt_bytes, markdown

__all__ = ["run_stage"]


def run_stage(
    sizes: list[int], *, dimensions: int = 1536, steps: tuple[str, ...] = ("prepare", "load"), echo: bool = True
) -> StageResult:
    result = StageResult("4. Memory: peak RSS of prepare and of load, child process each")
    sizes = sorted(set(sizes))
    table: list[list[str]] = []
    peaks: dict[str, list[tuple[int, float]]] = {
        name: []
        for step in steps
        for name in (("prepare (job)", "prepare (dry run)") if step == "prepare" else (step,))
    }
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        scratch = Path(tmp)
        free = shutil.disk_usage(scratch).free
        for rows in sizes:
            if "prepare" in steps:
                _, _, p = prepare.measure_table(scratch, "short", rows, references=False)
                peaks["prepare (job)"].append((rows, p["rss_job_peak"]))
                peaks["prepare (dry run)"].append((rows, p["rss_peak"]))
                table.append(
                    [
                        f"{rows:,}",
                        "prepare, job (short texts)",
                        fmt_bytes(p["rss_job_base"]),
                        fmt_bytes(p["rss_job_peak"]),
                        "one call: bench.prepare.prepare_job",
                    ]
                )
                table.append(
                    [
                        f"{rows:,}",
                        "prepare, dry run (short texts)",
                        fmt_bytes(p["rss_base"]),
                        fmt_bytes(p["rss_peak"]),
                        "one call: embedsql.run(dry_run=True)",
                    ]
                )
                if echo:
                    print(
                        f"  memory {rows:,}: prepare, job {fmt_bytes(p['rss_job_peak'])}, "
                        f"dry run {fmt_bytes(p['rss_peak'])}",
                        flush=True,
                    )
            if "load" not in steps:
                continue
            needed = load.disk_needed(rows, dimensions)
            if needed > 0.8 * free:
                skipped = f"skipped: needs ~{fmt_bytes(needed)} of disk"
                table.append([f"{rows:,}", f"load ({dimensions}-d base64)", "—", skipped, ""])
                continue
            m = load.measure(rows, "base64", scratch, dimensions=dimensions, references=False)
            peaks["load"].append((rows, m["rss_peak"]))
            table.append(
                [
                    f"{rows:,}",
                    f"load ({dimensions}-d base64)",
                    fmt_bytes(m["rss_base"]),
                    fmt_bytes(m["rss_peak"]),
                    f"load_shards {fmt_bytes(m['rss_load'])}, then resume {fmt_bytes(m['rss_peak'])}",
                ]
            )
            if echo:
                print(f"  memory {rows:,}: load {fmt_bytes(m['rss_peak'])}", flush=True)
    result.lines += markdown(["rows", "step", "after imports", "peak RSS", "high-water mark after each call"], table)
    for step, values in peaks.items():
        if not values:
            continue
        (small, first), (large, last) = values[0], values[-1]
        growth = last / first
        result.goals.append(
            Goal(
                "4 memory",
                f"{step} peak {fmt_bytes(last)} at {large:,} rows",
                f"{fmt_bytes(first)} at {small:,} rows",
                growth,
                "<= 1.2x of the smallest size, < 1 GiB",
                growth <= 1.2 and last < GiB,
            )
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="sizes (repeat); default 100k and 1M")
    parser.add_argument("--dimensions", type=int, default=1536, help="vector size of the load case")
    parser.add_argument("--step", choices=("prepare", "load"), action="append", help="default: both")
    args = parser.parse_args()
    steps = tuple(args.step or ("prepare", "load"))
    print(run_stage(args.rows or [100_000, 1_000_000], dimensions=args.dimensions, steps=steps).text())


if __name__ == "__main__":
    main()
