"""``run``, ``resume`` and ``cancel``: walk a job through plan -> runner -> results -> cache -> target.

Each step is recorded in the ledger in the same transaction as its effect, and the database is
open only while a step reads or writes it (never while a runner works), so other processes can
use the warehouse while a job is embedding, and a job killed at any point continues with
``resume`` (or by running the same command again) without redoing finished work.

Which runner a job uses is decided in ``embedsql.runners``; what a job did is read back by
``embedsql.jobs``; where its files live, by ``embedsql.workdirs``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import duckdb

from . import arguments, ledger
from .cache import ensure_cache
from .config import Settings
from .dbt_project import check_built, resolve_query
from .duck import duck_message
from .errors import ConfigError, DatabaseError, Detached, JobError, RemoteError, StorageError, TargetError
from .events import EventHandler, Notice, Progress, ignore
from .failpoints import failpoint
from .jobs import RunResult, job_result
from .ledger import ShardStatus
from .models import ModelChoice, choose_model, recorded_choice
from .plan import make_plan
from .runners import Runner, create_runner, discover_dimensions, enqueued_budget, runner_name
from .shards import ShardLimits
from .source import Query, inspect_query
from .store import JobStore
from .target import TargetName, check_target, default_target, exists, materialise, parse_target
from .warehouse import build_example_warehouse
from .workdirs import (
    job_folder,
    make_work_root,
    portable,
    remove_dry_runs,
    remove_job_folder,
    remove_orphans,
    work_root,
)

__all__ = ["MODES", "JobSpec", "cancel", "plan_job", "resume", "run", "shard_limits"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

MODES = ("replace", "upsert")
# Lines per shard of the runners that embed in this process (local, sync): a shard is their unit of
# work kept across Ctrl-C (its result files are written whole), so it stays small enough that an
# interrupted job redoes at most a few seconds of the local model's work.
_IN_PROCESS_LINES = 4096
# The last progress event of planning, once its plan is committed.
_PLANNED = Progress("plan", 100, 100)


@dataclass(frozen=True)
class JobSpec:
    """What a new job is to do: the checked query, the model, the runner and the target."""

    query: Query
    choice: ModelChoice
    runner: str
    target: TargetName
    mode: str

    @property
    def fingerprint(self) -> str:
        """A hash of the job's definition: running the same command again finds the unfinished job."""
        spec = {
            "sql": self.query.sql,
            "key": self.query.key_columns,
            "text": self.query.text_columns,
            "model": self.choice.model.name,
            "dimensions": self.choice.dimensions,
            "target": self.target.sql,
            "mode": self.mode,
            # Another runner is another job: a shard in flight at the Batch API must not be sent again.
            "runner": self.runner,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _explain_out_of_memory(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """DuckDB's out-of-memory error as an embedsql error that says which setting gives it more."""

    @functools.wraps(fn)
    def explained(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except duckdb.OutOfMemoryException as e:
            what = duck_message(e).split(" Possible solutions")[0].removeprefix("Out of Memory Error: ").rstrip(".")
            if "max_temp_directory_size" in what:  # DuckDB had no disk left to spill to
                raise StorageError(
                    f"DuckDB ran out of memory, and out of disk for its temporary files: "
                    f"{what.split('. This limit')[0]}. Nothing of the step it was doing was kept. Free some space "
                    "on the disk of the database (DuckDB spills to the folder named like it, with .tmp), or raise "
                    "embedsql's memory_limit (EMBEDSQL_MEMORY_LIMIT=2GB, say), and run the command again."
                ) from e
            raise DatabaseError(
                f"DuckDB ran out of memory: {what}. Nothing of the step it was doing was kept. Raise embedsql's "
                "memory_limit (EMBEDSQL_MEMORY_LIMIT=2GB, say) and run the command again."
            ) from e

    return explained


@_explain_out_of_memory
def run(
    sql: str,
    *,
    key: Sequence[str] = (),
    text: Sequence[str] = (),
    into: str | None = None,
    mode: str = "replace",
    dry_run: bool = False,
    wait: bool = True,
    settings: Settings | None = None,
    on_event: EventHandler = ignore,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    **overrides: Any,
) -> RunResult:
    """Embed the text of every row of ``sql`` into a table of vectors keyed like the query.

    - ``sql``: one SELECT (or FROM) query; with a dbt project, ``{{ ref() }}`` and ``{{ source() }}``
      are resolved first.
    - ``key``: the key column(s); default: the query's first column.
    - ``text``: the column(s) joined (by spaces) into the text to embed; default: all but the key.
    - ``into``: the target table, ``table`` or ``schema.table``; default: ``<table>_embeddings`` for a
      query that reads one table.
    - ``mode``: ``"replace"`` makes the target exactly the query's rows; ``"upsert"`` adds and
      updates the query's rows and keeps the others.
    - ``dry_run``: plan the job, write its shards and report what it would send and cost; embed
      nothing, and leave no job behind (status "dry-run").
    - ``wait``: ``False`` submits the job's batches and returns (status "submitted"); ``resume``
      finishes it.
    - ``settings``: the settings to use as they are; without it they are loaded (flags in
      ``overrides``, then the environment, ``.env`` and the config file).
    - ``on_event``: called with each ``Notice``, ``Progress`` and ``BatchProgress``.
    - ``sleep`` and ``clock``: how the job waits and tells time (tests pass their own).
    - ``overrides``: settings (``db=``, ``model=``, ``dimensions=``, ...) taking precedence over the
      environment and config files.

    Raises an ``EmbedsqlError`` with the fix for anything wrong with the input, the settings or the
    service, and ``Detached`` (a ``KeyboardInterrupt``) on Ctrl-C while the job runs or waits.
    """
    started = time.monotonic()
    sql = arguments.text("sql", sql)
    key, text = arguments.column_names("key", key), arguments.column_names("text", text)
    into = arguments.optional_text("into", into)
    if arguments.text("mode", mode) not in MODES:
        raise ConfigError(f"--mode {mode!r} is not a mode; use one of: {', '.join(MODES)}.")
    dry_run, wait = arguments.flag("dry_run", dry_run), arguments.flag("wait", wait)
    on_event, sleep, clock = arguments.functions(on_event=on_event, sleep=sleep, clock=clock)
    wanted = parse_target(into) if into is not None else None  # a blank --into is refused, not defaulted
    settings = arguments.call_settings(settings, overrides, function=run)
    with ledger.explained(settings.db):
        sql, relations = resolve_query(sql, settings.dbt_project, db=settings.db)
        choice = choose_model(settings)
        on_event(Notice(f"Model: {choice.model.name} ({choice.dimensions}-d): {choice.reason}."))
        name = runner_name(choice, settings)
        if choice.dimensions == 0:
            choice = discover_dimensions(choice, settings)
            on_event(Notice(f"Model {choice.model.name} answers with {choice.dimensions}-d vectors."))
        # Made before anything is planned, so that a missing key stops the job before it starts. Importing
        # the openai SDK takes a second or two: said, so that the first seconds are not silent.
        if not dry_run and name != "local":
            on_event(Progress("plan", 0, 100, step="starting the API client"))
        runner = None if dry_run else create_runner(choice, settings, name, wait=wait, sleep=sleep, clock=clock)
        job: ledger.Job | None = None
        try:
            if build_example_warehouse(settings.db):
                on_event(Notice(f"Built the example warehouse {settings.db} from sql/warehouse.sql."))
            con = ledger.connect(
                settings.db, wait=settings.lock_wait, memory_limit=settings.memory_limit, on_wait=_saying(on_event)
            )
            try:
                check_built(con, relations)
                query = inspect_query(con, sql, key=key, text=text)
                target = check_target(
                    con,
                    wanted or default_target(con, query),
                    model=choice.model.name,
                    dimensions=choice.dimensions,
                    query=query,
                )
                spec = JobSpec(query, choice, name, target, mode)
                if dry_run:
                    return _dry_run(con, spec, settings, on_event, started)
                job = ledger.find_pending_job(con, spec.fingerprint)
                if job is not None:
                    on_event(Notice(f"Continuing unfinished job {job.job_id} for the same work."))
                else:
                    with ledger.transaction(con):
                        job = plan_job(con, spec, settings, on_event=on_event)
                    on_event(_PLANNED)
            finally:
                con.close()
        except BaseException as e:
            if runner is not None:
                runner.close()
            if not ledger.interrupted(e):
                raise
            if job is not None:  # an unfinished job found, or the plan committed just now
                raise _detached(job) from None
            # Nothing of the plan was committed: its shard files go with the next run's orphans.
            raise KeyboardInterrupt(
                "Interrupted before the job was recorded: nothing was written to the database and nothing was "
                "sent. Run the command again to start it."
            ) from None
        assert runner is not None
        return _execute(job, settings, runner, on_event, started)


@_explain_out_of_memory
def resume(
    job_id: str,
    *,
    wait: bool = True,
    settings: Settings | None = None,
    on_event: EventHandler = ignore,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    **overrides: Any,
) -> RunResult:
    """Continue job ``job_id`` from where the ledger says it stopped (the other parameters as ``run``'s)."""
    started = time.monotonic()
    job_id, wait = arguments.text("job_id", job_id), arguments.flag("wait", wait)
    on_event, sleep, clock = arguments.functions(on_event=on_event, sleep=sleep, clock=clock)
    settings = arguments.call_settings(settings, overrides, function=resume)
    with ledger.explained(settings.db):
        job = _open_job(settings, job_id, doing="resume")
        settings = _sent_to(job, settings)
        choice = recorded_choice(job.model, job.dimensions)
        runner = create_runner(choice, settings, job.runner, wait=wait, sleep=sleep, clock=clock)
        on_event(Notice(f"Resuming job {job_id} ({job.model}, {job.dimensions}-d) into {parse_target(job.target)}."))
        return _execute(job, settings, runner, on_event, started)


def cancel(
    job_id: str,
    *,
    settings: Settings | None = None,
    on_event: EventHandler = ignore,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    **overrides: Any,
) -> RunResult:
    """Cancel job ``job_id``: its running batches are cancelled, what they finished (and was billed)
    goes into the cache, nothing more is sent, and the target is left as it was."""
    started = time.monotonic()
    job_id = arguments.text("job_id", job_id)
    on_event, sleep, clock = arguments.functions(on_event=on_event, sleep=sleep, clock=clock)
    settings = arguments.call_settings(settings, overrides, function=cancel)
    with ledger.explained(settings.db):
        job = _open_job(settings, job_id, doing="cancel")
        settings = _sent_to(job, settings)
        store = JobStore(settings.db, job, max_attempts=0, lock_wait=settings.lock_wait)
        with store.running():
            if job.runner == "batch":
                _cancel_batches(store, settings, on_event, sleep=sleep, clock=clock)
            con = ledger.connect(settings.db, wait=settings.lock_wait)
            try:
                with ledger.transaction(con):
                    ledger.set_job_status(con, job.job_id, "cancelled")
                return job_result(con, job, status="cancelled", db=settings.db, started=started)
            finally:
                con.close()


def _sent_to(job: ledger.Job, settings: Settings) -> Settings:
    """``settings`` for going on with ``job``: at the API it was sent to, unless OPENAI_BASE_URL / --base-url
    now names one (a server that moved). Without this, a job sent to a server of one's own would go on at
    OpenAI's, with the texts and the key."""
    if job.base_url is None or settings.openai_base_url is not None:
        return settings
    return dataclasses.replace(settings, openai_base_url=job.base_url)


def _cancel_batches(
    store: JobStore,
    settings: Settings,
    on_event: EventHandler,
    *,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> None:
    """Cancel the job's running batches and follow them until they stop; load what they finished."""
    from .runners.batch import BatchRunner

    runner = create_runner(
        recorded_choice(store.job.model, store.job.dimensions),
        settings,
        "batch",
        submit=False,
        sleep=sleep,
        clock=clock,
    )
    assert isinstance(runner, BatchRunner)
    try:
        for shard in store.shards():
            if shard.status == ShardStatus.SUBMITTED and shard.batch_id:
                runner.api.cancel(shard.batch_id)
                on_event(Notice(f"Cancelling batch {shard.batch_id} (shard {shard.shard})."))
        runner.drive(store, on_event)
    except KeyboardInterrupt:
        raise _detached(store.job) from None
    finally:
        runner.close()


def _open_job(settings: Settings, job_id: str, *, doing: str) -> ledger.Job:
    # Read-only: a job id that is not there changes nothing, not even a database without a ledger.
    con = ledger.connect(settings.db, wait=settings.lock_wait, read_only=True)
    try:
        if not ledger.has_ledger(con):
            raise JobError(ledger.no_jobs_yet(job_id))
        job = ledger.get_job(con, job_id)
    finally:
        con.close()
    if job.status in ("complete", "cancelled"):
        raise JobError(f"job {job_id} is already {job.status}; there is nothing to {doing}.")
    return job


def shard_limits(spec: JobSpec, settings: Settings) -> ShardLimits:
    """The most one shard of the job may hold."""
    # A shard must fit the enqueued-token budget on its own, or it could never be submitted.
    budget = enqueued_budget(spec.choice, settings) if spec.runner == "batch" else None
    lines = settings.max_shard_lines if spec.runner == "batch" else min(settings.max_shard_lines, _IN_PROCESS_LINES)
    return ShardLimits(lines=lines, bytes=settings.max_shard_bytes, tokens=budget)


def plan_job(
    con: duckdb.DuckDBPyConnection,
    spec: JobSpec,
    settings: Settings,
    *,
    dry_run: bool = False,
    on_event: EventHandler = ignore,
) -> ledger.Job:
    """Snapshot the query, write the shards and record the job, which ``resume`` then runs (call
    inside a transaction: on any error nothing of the plan stays in the database)."""
    job_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    make_work_root(settings)
    directory = job_folder(settings, job_id, dry_run=dry_run)
    if not dry_run:
        remove_orphans(con, work_root(settings))
    rows_table = f'embedsql."rows_{job_id}"'
    try:
        plan = make_plan(
            con,
            spec.query,
            job_id=job_id,
            rows_table=rows_table,
            choice=spec.choice,
            mode=spec.mode,
            directory=directory,
            limits=shard_limits(spec, settings),
            on_long=settings.on_long,
            exact_tokens=dry_run,
            memory_limit=settings.memory_limit,
            on_event=on_event,
        )
    except Exception:
        remove_job_folder(directory)  # a plan refused leaves no folder behind, the work folders included
        raise
    job = ledger.Job(
        job_id=job_id,
        fingerprint=spec.fingerprint,
        status="prepared",
        created_at=datetime.now(UTC),
        finished_at=None,
        query=spec.query.sql,
        key_columns=list(spec.query.key_columns),
        text_columns=list(spec.query.text_columns),
        model=spec.choice.model.name,
        dimensions=spec.choice.dimensions,
        runner=spec.runner,
        target=spec.target.sql,
        mode=spec.mode,
        rows_table=rows_table,
        work_dir=portable(directory, settings.db),
        total_rows=plan.total_rows,
        distinct_texts=plan.distinct_texts,
        cached_texts=plan.cached_texts,
        tokens=plan.tokens,
        truncated=plan.truncated,
        base_url=settings.openai_base_url if spec.runner != "local" else None,
    )
    ledger.insert_job(con, job)
    ledger.insert_shards(con, plan.shards)
    if dry_run:
        on_event(Notice(f"Dry run: shards written to {directory}; nothing was embedded."))
    else:
        # A job that estimated its tokens says so: its figure is no count (its shards are counted when sent).
        tokens = f", about {plan.tokens:,} tokens (estimated)" if plan.estimated_texts else ""
        on_event(Notice(f"Job {job_id}: {plan.total_rows:,} rows, {len(plan.shards)} shard(s) to embed{tokens}."))
    return job


def _dry_run(
    con: duckdb.DuckDBPyConnection, spec: JobSpec, settings: Settings, on_event: EventHandler, started: float
) -> RunResult:
    """Plan the job, report it from the planned tables, then roll them back: a dry run leaves only
    its shard files."""
    # Only the newest dry run's shards are kept: each one replaces the last (and says so).
    remove_dry_runs(make_work_root(settings))
    con.execute("BEGIN TRANSACTION")
    try:
        job = plan_job(con, spec, settings, dry_run=True, on_event=on_event)
        on_event(_PLANNED)
        return job_result(con, job, status="dry-run", db=settings.db, started=started, settings=settings)
    except BaseException:
        remove_dry_runs(work_root(settings))
        raise
    finally:
        con.execute("ROLLBACK")


def _execute(job: ledger.Job, settings: Settings, runner: Runner, on_event: EventHandler, started: float) -> RunResult:
    store = JobStore(
        settings.db,
        job,
        max_attempts=settings.max_attempts,
        lock_wait=settings.lock_wait,
        memory_limit=settings.memory_limit,
        on_wait=_saying(on_event),
    )
    try:
        with store.running():
            return _drive_and_finish(store, settings, runner, on_event, started)
    except (RemoteError, StorageError, TargetError) as e:
        # The service, the disk or the target stopped the job, not its input: the ledger keeps what
        # the job did, and the message says how to go on.
        e.job_id = job.job_id
        raise
    except BaseException as e:
        if ledger.interrupted(e) and not isinstance(e, Detached):
            raise _detached(job) from None
        raise
    finally:
        runner.close()


def _drive_and_finish(
    store: JobStore, settings: Settings, runner: Runner, on_event: EventHandler, started: float
) -> RunResult:
    job = store.job
    runner.drive(store, on_event)
    # One connection to see whether every shard is loaded and to write the target (each costs ~30 ms).
    with store.connection() as con:
        if any(s.status != ShardStatus.LOADED for s in ledger.job_shards(con, job.job_id)):
            return job_result(con, job, status="submitted", db=settings.db, started=started)
        target = parse_target(job.target)
        with ledger.transaction(con, write_behind=store.db):
            written = materialise(
                con,
                target,
                mode=job.mode,
                rows_table=job.rows_table,
                cache=ensure_cache(con, job.model, job.dimensions),
                query=_recorded_query(con, job),
                model=job.model,
                dimensions=job.dimensions,
                job_id=job.job_id,
                create_empty=not ledger.failed_for_good(con, job.job_id),
            )
            # What the table holds now: more than the job wrote when an upsert kept other rows.
            held = con.execute(f"SELECT count(*) FROM {target.sql}").fetchall()[0][0] if exists(con, target) else 0
            ledger.set_job_status(con, job.job_id, "complete")
            ledger.drop_older_snapshots(con, job, same_target=lambda name: parse_target(name).key == target.key)
            failpoint("materialise")
        result = job_result(
            con, job, status="complete", db=settings.db, started=started, target_rows=written, table_rows=held
        )
    if not settings.keep_files:
        remove_job_folder(store.directory)
    return result


def _detached(job: ledger.Job) -> Detached:
    """The ``Detached`` for Ctrl-C during ``job``, with a note that says what is true of its runner."""
    detached = Detached(job.job_id)
    detached.add_note(_KEPT.get(job.runner, "It keeps its place; nothing is lost."))
    return detached


# What an interrupted job keeps, by runner: in-process runners keep every shard they finished.
_KEPT = {
    "batch": "Its batches (if any) keep running at OpenAI; nothing is lost.",
    "local": "The texts the local model embedded so far are kept; resuming embeds only the rest.",
    "sync": "The shards the server finished are kept; resuming requests only the rest (the shard under way again).",
}


def _saying(on_event: EventHandler) -> Callable[[str], None]:
    """``on_event`` as a callback that takes a sentence (what ``ledger.connect`` says while it waits)."""
    return lambda message: on_event(Notice(message))


def _recorded_query(con: duckdb.DuckDBPyConnection, job: ledger.Job) -> Query:
    """The job's key columns with the types its snapshot holds (the live query may have changed)."""
    described = con.execute(f"DESCRIBE {job.rows_table}").fetchall()
    columns = tuple((row[0], row[1]) for row in described if row[0] in job.key_columns)
    return Query(job.query, columns, tuple(job.key_columns), tuple(job.text_columns), frozenset())
