"""Prepare: a query -> planned, deduplicated Batch API input shards on disk, in rows per second.

    python -m bench.prepare                          # movies, 100k and 1M short and long texts
    python -m bench.prepare --rows 100000 --kind short

embedsql is timed twice, each in a child process of its own, with an OpenAI model:

- job: the prepare of a real run, ``prepare_job`` (``embedsql.pipeline.plan_job`` as ``embedsql.run``
  calls it): binds the query, snapshots key -> text hash, skips unusable texts, deduplicates,
  subtracts the cache, counts exactly the texts over the token limit in bytes and a sample, estimates
  the rest, writes the shards (each fsynced) and commits the job without sending it;
- dry run: ``embedsql.run(sql, dry_run=True)``, the same with every text counted exactly (its price),
  then the plan rolled back.

The references run on the same table in the same run:

- notebook: pandas reads the table (``.df()``), a Python loop builds a dict per row and
  ``json.dumps`` it into files of 50,000 lines (one request per row, custom_id = key);
- DuckDB: ``COPY (SELECT custom_id, 'POST' AS method, '/v1/embeddings' AS url, {...} AS body, ...) TO dir
  (FORMAT json, PARTITION_BY (part))``, the same request lines written natively (no hashing, no
  dedup), 50,000 lines a file (part = key // 50,000 for an integer key, as FINDINGS.md measured).

The job and the notebook way each run ``REPEATS`` times by turns, each time in a fresh child process,
and the fastest of each counts (the least disturbed; a single run of the notebook strayed by half
between runs of the bench).

Goal: the job's prepare at least 1.5x the notebook way's rate.

The profile table splits embedsql's time into parts measured by separate passes over the same table,
each through a public function and in a child process of its own, after the timed runs:
``embedsql.plan.make_plan`` alone as the job plans (estimated tokens; in a transaction rolled back),
with the time its exact counts took (``count_tokens``, timed around each call), and as the dry run
plans (every text counted); the distinct texts read into Python, and ``embedsql.tokens.count_tokens``
over them. The parts left over are differences between separate runs: estimates, which can stray
by a few milliseconds either way.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

import embedsql
import embedsql.plan
from embedsql import ledger
from embedsql.config import Settings
from embedsql.models import ModelInfo, choose_model
from embedsql.pipeline import JobSpec, plan_job, shard_limits
from embedsql.plan import make_plan
from embedsql.source import inspect_query, text_expression
from embedsql.target import parse_target
from embedsql.tokens import cl100k_base, count_tokens, fast_cl100k_base

from .common import Goal, StageResult, fmt_bytes, fmt_n, fmt_ratio, fmt_s, isolated, markdown, ratio
from .data import KINDS, connect, make_movies, make_texts

__all__ = [
    "MODEL",
    "Case",
    "copy_reference",
    "dry_run",
    "measure_job",
    "measure_parts",
    "measure_table",
    "notebook_reference",
    "prepare_job",
    "run_stage",
]

MODEL = "text-embedding-3-small"
LINES_PER_FILE = 50_000
MOVIES_SQL = "select movieId, genres from movies"
DOCS_SQL = "select id, body from docs"
# Texts read into Python at a time by the profile's passes: the plan's own batch size.
TEXT_BATCH = 20_000


@dataclass(frozen=True)
class Case:
    """A table to prepare: its name in the tables, the database holding it and the query."""

    name: str
    db: Path
    sql: str
    rows: int


def settings_for(db: Path, *, model: str = MODEL, dimensions: int | None = None, **more: object) -> Settings:
    """Settings built directly (not loaded), so that no environment, .env or config file leaks in."""
    return Settings(db=db, model=model, dimensions=dimensions, **more)  # type: ignore[arg-type]


def dry_run(db: Path, sql: str, *, model: str = MODEL) -> embedsql.RunResult:
    """What ``embedsql run SQL --dry-run --model MODEL`` does: plan and write the shards, send nothing."""
    return embedsql.run(sql, dry_run=True, settings=settings_for(db, model=model))


def prepare_job(db: Path, sql: str, *, model: str = MODEL, dimensions: int | None = None) -> ledger.Job:
    """Plan a Batch API job over ``sql`` and commit it (ledger rows, snapshot, shards on disk) without
    running it, for the load and memory benchmarks to feed its shards' results to the pipeline
    (``embedsql.pipeline.plan_job``, which ``embedsql.run`` plans with)."""
    settings = settings_for(db, model=model, dimensions=dimensions)
    con = ledger.connect(db, memory_limit=settings.memory_limit)
    try:
        spec = _spec(con, sql, settings)
        with ledger.transaction(con):
            return plan_job(con, spec, settings)
    finally:
        con.close()


def _spec(con: duckdb.DuckDBPyConnection, sql: str, settings: Settings) -> JobSpec:
    """A Batch API job over ``sql`` into a table of its own."""
    query = inspect_query(con, sql)
    return JobSpec(query, choose_model(settings), "batch", parse_target(f"bench_{secrets.token_hex(4)}"), "replace")


def notebook_reference(db: Path, sql: str, out: Path, *, model: str = MODEL) -> float:
    """The notebook way: pandas reads the table, a dict per row, ``json.dumps``, 50,000 lines a file."""
    import pandas  # noqa: F401  (imported before the clock starts: a notebook has it loaded already)

    started = time.perf_counter()
    con = connect(str(db), read_only=True)
    try:
        frame = con.execute(sql).df()
    finally:
        con.close()
    out.mkdir(parents=True, exist_ok=True)
    f = None
    try:
        for i, (key, text) in enumerate(frame.itertuples(index=False, name=None)):
            if i % LINES_PER_FILE == 0:
                if f is not None:
                    f.close()
                f = open(out / f"requests-{i // LINES_PER_FILE:05d}.jsonl", "w", encoding="utf-8")  # noqa: SIM115
            request = {
                "custom_id": str(key),
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"model": model, "input": text, "encoding_format": "base64"},
            }
            f.write(json.dumps(request) + "\n")
    finally:
        if f is not None:
            f.close()
    return time.perf_counter() - started


def copy_reference(db: Path, sql: str, out: Path, *, model: str = MODEL) -> float:
    """DuckDB writing one request line per row natively: COPY ... (FORMAT json, PARTITION_BY)."""
    started = time.perf_counter()
    con = connect(str(db), read_only=True)
    try:
        relation = con.sql(sql)
        key, text = relation.columns[:2]
        integer = str(relation.types[0]) in ("INTEGER", "BIGINT")
        part = f'"{key}" // {LINES_PER_FILE}' if integer else f"(row_number() OVER () - 1) // {LINES_PER_FILE}"
        con.execute(
            f"""COPY (SELECT CAST("{key}" AS VARCHAR) AS custom_id, 'POST' AS method, '/v1/embeddings' AS url,
                       {{'model': '{model}', 'input': "{text}", 'encoding_format': 'base64'}} AS body,
                       {part} AS part
                FROM ({sql})) TO '{out}' (FORMAT json, PARTITION_BY (part))"""
        )
    finally:
        con.close()
    return time.perf_counter() - started


def measure_ours(db: Path, sql: str) -> dict[str, float]:
    """embedsql's dry run on ``sql``, timed as a whole (run it in a child process: ``isolated``).

    The tokenizers' tables are loaded first: a one-time cost of every process (~0.5 s), not of a row.
    """
    _load_tokenizers()
    started = time.perf_counter()
    result = dry_run(db, sql)
    seconds = time.perf_counter() - started
    shutil.rmtree(db.parent / ".embedsql", ignore_errors=True)
    return {"ours": seconds, "distinct": result.distinct_texts, "shards": result.shards, "tokens": result.tokens}


def measure_job(db: Path, sql: str) -> dict[str, float]:
    """embedsql's prepare of a real run on ``sql`` (``prepare_job``), timed as a whole (run it in a
    child process: ``isolated``); the job it commits is then removed from ``db``."""
    _load_tokenizers()
    started = time.perf_counter()
    job = prepare_job(db, sql)
    seconds = time.perf_counter() - started
    con = ledger.connect(db)
    try:
        shards = ledger.job_shards(con, job.job_id)
        con.execute(f"DROP TABLE {job.rows_table}")
        con.execute("DELETE FROM embedsql.shards WHERE job_id = ?", [job.job_id])
        con.execute("DELETE FROM embedsql.jobs WHERE job_id = ?", [job.job_id])
    finally:
        con.close()
    shutil.rmtree(db.parent / ".embedsql", ignore_errors=True)
    return {"job": seconds, "job_shards": len(shards), "job_tokens": job.tokens}


def _load_tokenizers() -> None:
    """Load what counting tokens loads once per process: tiktoken's table, and fastokens' if installed."""
    cl100k_base()
    fast_cl100k_base()


def measure_parts(db: Path, sql: str, *, model: str = MODEL) -> dict[str, float]:
    """The profile's separate passes over ``sql`` (run it in a child process: ``isolated``): seconds of
    ``make_plan`` alone (its plan rolled back, its shards removed) as a job plans, with the seconds
    its exact counts took, and as a dry run plans; of reading the distinct texts into Python and of
    ``count_tokens`` over them (both a batch at a time, as the plan does)."""
    settings = settings_for(db, model=model)
    _load_tokenizers()
    scratch = db.parent / ".embedsql-parts"
    to_python = tokens = 0.0
    counting = [0.0]

    def timed_count(model: ModelInfo, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        try:
            return count_tokens(model, texts)
        finally:
            counting[0] += time.perf_counter() - started

    con = ledger.connect(db, memory_limit=settings.memory_limit)
    try:
        spec = _spec(con, sql, settings)
        query, choice = spec.query, spec.choice
        seconds = {}
        for exact in (False, True):
            con.execute("BEGIN TRANSACTION")
            embedsql.plan.count_tokens = timed_count  # type: ignore[attr-defined]
            try:
                counting[0] = 0.0
                started = time.perf_counter()
                make_plan(
                    con,
                    query,
                    job_id="bench-parts",
                    rows_table='embedsql."rows_bench_parts"',
                    choice=choice,
                    mode=spec.mode,
                    directory=scratch,
                    limits=shard_limits(spec, settings),
                    on_long=settings.on_long,
                    exact_tokens=exact,
                    memory_limit=settings.memory_limit,
                )
                seconds[exact] = time.perf_counter() - started
            finally:
                embedsql.plan.count_tokens = count_tokens  # type: ignore[attr-defined]
                con.execute("ROLLBACK")
                shutil.rmtree(scratch, ignore_errors=True)
            if not exact:
                job_counting = counting[0]
        reader = con.sql(f"SELECT DISTINCT {text_expression(query)} FROM ({sql})").to_arrow_reader(TEXT_BATCH)
        for_python = time.perf_counter()
        for batch in reader:
            texts = batch.column(0).to_pylist()
            counting = time.perf_counter()
            to_python += counting - for_python
            count_tokens(choice.model, texts)
            for_python = time.perf_counter()
            tokens += for_python - counting
    finally:
        con.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "t_make_plan_job": seconds[False],
        "t_job_counting": job_counting,
        "t_make_plan": seconds[True],
        "t_to_python": to_python,
        "t_count_tokens": tokens,
    }


_MEASURED: dict[tuple[str, int], dict[str, float]] = {}
REPEATS = 3


def measure(case: Case, scratch: Path, *, references: bool = True) -> dict[str, float]:
    """embedsql's dry run (in a child process, with its peak RSS) on ``case``; with ``references``, also
    the profile's separate passes, the notebook way and DuckDB's COPY. Remembered for the rest of the
    run, so that the memory stage reuses what this stage measured."""
    key = (case.name, case.rows)
    if key in _MEASURED and (not references or "copy" in _MEASURED[key]):
        return _MEASURED[key]
    # The job and the notebook, each the fastest of REPEATS fresh processes, run by turns: one run of
    # the notebook ranged from 32,000 to 50,000 long texts a second on the same idle machine.
    jobs, notebooks = [], []
    for _ in range(REPEATS):
        job, before, peak = isolated(measure_job, case.db, case.sql)
        jobs.append({**job, "rss_job_base": before, "rss_job_peak": peak})
        if references:
            notebooks.append(isolated(notebook_reference, case.db, case.sql, scratch / "notebook")[0])
            shutil.rmtree(scratch / "notebook", ignore_errors=True)
    m = min(jobs, key=lambda run: run["job"]) | {"rss_job_peak": max(run["rss_job_peak"] for run in jobs)}
    ours, before, peak = isolated(measure_ours, case.db, case.sql)
    m |= {**ours, "rss_base": before, "rss_peak": peak}
    if references:
        m |= isolated(measure_parts, case.db, case.sql)[0]
        m["notebook"] = min(notebooks)
        m["copy"] = copy_reference(case.db, case.sql, scratch / "copy")
        shutil.rmtree(scratch / "copy", ignore_errors=True)
    _MEASURED[key] = m
    return m


def make_case(scratch: Path, kind: str, rows: int) -> Case:
    """The movies table (kind "movies") or a generated table of ``rows`` texts, in its own database."""
    db = scratch / f"{kind}-{rows}" / "bench.duckdb"
    db.parent.mkdir(parents=True, exist_ok=True)
    if kind == "movies":
        make_movies(db)
        return Case("movies (genres)", db, MOVIES_SQL, 62_423)
    make_texts(db, rows, kind=kind)
    return Case(f"{rows:,} {kind}", db, DOCS_SQL, rows)


def measure_table(scratch: Path, kind: str, rows: int, *, references: bool = True) -> tuple[str, int, dict[str, float]]:
    """``measure`` on a table made for it (unless this run measured it already), then removed."""
    name = "movies (genres)" if kind == "movies" else f"{rows:,} {kind}"
    rows = 62_423 if kind == "movies" else rows
    known = _MEASURED.get((name, rows))
    if known is not None and (not references or "copy" in known):
        return name, rows, known
    case = make_case(scratch, kind, rows)
    try:
        return name, rows, measure(case, scratch, references=references)
    finally:
        shutil.rmtree(case.db.parent, ignore_errors=True)


def run_stage(sizes: list[int], kinds: list[str], *, movies: bool = True, echo: bool = True) -> StageResult:
    """Measure every table; return the stage's tables and its summary lines."""
    result = StageResult("1. Prepare: query -> deduplicated shards on disk (rows/s)")
    rows, profile = [], []
    specs = ([("movies", 0)] if movies else []) + [(kind, n) for kind in kinds for n in sizes]
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        for kind, size in specs:
            name, n, m = measure_table(Path(tmp), kind, size)
            job, dry, notebook, copy = (n / m[k] for k in ("job", "ours", "notebook", "copy"))
            rows.append(
                [
                    name,
                    fmt_n(m["distinct"]),
                    f"{m['job_shards']} / {m['shards']}",
                    fmt_n(job),
                    fmt_n(dry),
                    fmt_n(notebook),
                    fmt_n(copy),
                    fmt_ratio(ratio(job, notebook)),
                    fmt_ratio(ratio(dry, notebook)),
                    fmt_ratio(ratio(job, copy)),
                    fmt_ratio(ratio(dry, copy)),
                    fmt_bytes(m["rss_job_peak"]),
                    fmt_bytes(m["rss_peak"]),
                ]
            )
            if echo:
                print(
                    f"  prepare {name}: job {fmt_n(job)} rows/s, dry run {fmt_n(dry)} "
                    f"(notebook {fmt_n(notebook)}, DuckDB COPY {fmt_n(copy)})",
                    flush=True,
                )
            plan_job, counting = m["t_make_plan_job"], m["t_job_counting"]
            plan, to_python, tokens = (m[f"t_{k}"] for k in ("make_plan", "to_python", "count_tokens"))
            profile.append(
                [
                    name,
                    fmt_s(m["job"]),
                    fmt_s(plan_job),
                    fmt_s(counting),
                    fmt_s(plan_job - counting),
                    fmt_s(m["job"] - plan_job),
                    fmt_s(m["ours"]),
                    fmt_s(plan),
                    fmt_s(to_python),
                    fmt_s(tokens),
                    fmt_s(plan - to_python - tokens),
                ]
            )
            if kind != "movies":
                share = job / notebook
                result.goals.append(
                    Goal(
                        "1 prepare",
                        f"{name}: job {fmt_n(job)} rows/s",
                        f"notebook {fmt_n(notebook)} rows/s",
                        share,
                        ">= 1.5x notebook",
                        share >= 1.5,
                    )
                )
    result.lines += markdown(
        [
            "table",
            "distinct texts",
            "shards (job / dry run)",
            "job rows/s",
            "dry run rows/s",
            "notebook rows/s",
            "DuckDB COPY rows/s",
            "job vs notebook (goal >= 1.5x)",
            "dry run vs notebook",
            "job vs DuckDB",
            "dry run vs DuckDB",
            "job peak RSS",
            "dry run peak RSS",
        ],
        rows,
    )
    result.lines += [
        "",
        "Where embedsql's prepare time goes: each run's total, then separate passes through public functions "
        "over the same table (make_plan alone as the job plans, and the time of its exact counts: the texts "
        "over the limit in bytes and the sample; make_plan alone as the dry run plans; the distinct texts "
        "read into Python; count_tokens over them); the columns marked (estimate) are differences between "
        "separate runs:",
        "",
    ]
    result.lines += markdown(
        [
            "table",
            "job (total)",
            "make_plan, job (separate pass)",
            "of which exact counts",
            "rest of make_plan, job: snapshot, checks, dedup SQL, JSON lines, files (estimate)",
            "rest of the job: bind query, ledger, commit (estimate)",
            "dry run (total)",
            "make_plan, dry run (separate pass)",
            "distinct texts to Python (separate pass)",
            "count_tokens (separate pass)",
            "rest of make_plan, dry run (estimate)",
        ],
        profile,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="generated table size (repeat for several)")
    parser.add_argument("--kind", choices=KINDS, action="append", help="short or long texts (default: both)")
    parser.add_argument("--no-movies", action="store_true", help="leave out the movies table")
    args = parser.parse_args()
    stage = run_stage(args.rows or [100_000, 1_000_000], args.kind or list(KINDS), movies=not args.no_movies)
    print(stage.text())


if __name__ == "__main__":
    main()
