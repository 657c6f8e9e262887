"""``run``, ``resume`` and ``cancel``: walk a job through plan -> runner -> results -> cache -> target.

Each step is recorded in the ledger in the same transaction as its effect, and the database is
open only while a step reads or writes it (never while a runner works), so other processes can
use the warehouse while a job is embedding, and a job killed at any point continues with
``resume`` (or by running the same command again) without redoing finished work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import secrets
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import duckdb

from . import ledger
from .cache import cache_table
from .config import Settings, load_settings
from .dbt_project import check_built, resolve_query
from .errors import ConfigError, DatabaseError, Detached, JobError, RemoteError, StorageError
from .events import EventHandler, Notice, ignore
from .failpoints import failpoint
from .models import LOCAL_MODEL, MODELS, ModelChoice, choose_model, compatible_model, estimate_cost
from .plan import make_plan
from .results import Failure
from .runners import Runner
from .shards import ShardLimits
from .source import Query, duck_message, inspect_query
from .store import JobStore
from .target import HASH_COLUMN, SKIP_COLUMN, TargetName, check_target, default_target, materialise, parse_target
from .warehouse import build_example_warehouse

__all__ = ["MODES", "RunResult", "cancel", "resume", "run"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

MODES = ("replace", "upsert")


@dataclass(frozen=True)
class RunResult:
    """What a run did, for the summary and for callers of the Python API."""

    job_id: str
    # "complete"; "submitted" when the job was left running (no_wait); "cancelled"; or "dry-run".
    status: str
    # The database, and the table in it that holds the vectors.
    db: Path
    target: str
    model: str
    dimensions: int
    rows: int
    distinct_texts: int
    # Distinct texts the cache already held when the job was planned.
    cached_texts: int
    # Distinct texts this job sent to the model, and how many of them came back with a vector.
    sent_texts: int
    embedded_texts: int
    failed_texts: int
    # Rows not sent, by reason ("NULL text", "empty text").
    skipped: dict[str, int]
    # Rows in the target table that this job wrote.
    target_rows: int
    tokens: int
    # Texts cut to the model's token limit before they were sent.
    truncated: int
    # Estimated US dollars for the tokens to send, on the Batch API and at standard prices (dry run).
    cost: tuple[float, float] | None
    shards: int
    work_dir: Path
    seconds: float
    failures: list[Failure] = field(default_factory=list)


def _explain_out_of_memory(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """DuckDB's out-of-memory error as an embedsql error that says which setting gives it more."""

    @functools.wraps(fn)
    def explained(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except duckdb.OutOfMemoryException as e:
            what = duck_message(e).split(" Possible solutions")[0].removeprefix("Out of Memory Error: ").rstrip(".")
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

    ``overrides`` are settings (``db=``, ``model=``, ``dimensions=``, ...) taking precedence over
    the environment and config files; pass ``settings`` to skip loading them altogether.
    ``wait=False`` submits the job's batches and returns (status "submitted"); ``resume`` finishes
    it. ``sleep`` and ``clock`` are how the job waits and tells time (tests pass their own).
    """
    started = time.monotonic()
    if mode not in MODES:
        raise ConfigError(f"--mode {mode!r} is not a mode; use one of: {', '.join(MODES)}.")
    settings = settings if settings is not None else load_settings(overrides)
    sql, relations = resolve_query(sql, settings.dbt_project, db=settings.db)
    choice = choose_model(settings)
    on_event(Notice(f"Model: {choice.model.name} ({choice.dimensions}-d): {choice.reason}."))
    runner_name = _runner_name(choice, settings)
    if choice.dimensions == 0:
        choice = _discover_dimensions(choice, settings)
        on_event(Notice(f"Model {choice.model.name} answers with {choice.dimensions}-d vectors."))
    # Made before anything is planned, so that a missing key stops the job before it starts.
    runner = None if dry_run else _runner(choice, settings, runner_name, wait=wait, sleep=sleep, clock=clock)
    try:
        if build_example_warehouse(settings.db):
            on_event(Notice(f"Built the example warehouse {settings.db} from sql/warehouse.sql."))
        con = ledger.connect(settings.db, wait=settings.lock_wait, memory_limit=settings.memory_limit)
        try:
            check_built(con, relations)
            query = inspect_query(con, sql, key=key, text=text)
            target = parse_target(into) if into else default_target(query)
            check_target(con, target, model=choice.model.name, dimensions=choice.dimensions, query=query)
            fingerprint = _fingerprint(query, choice, target, mode, runner_name)
            job = None if dry_run else ledger.find_pending_job(con, fingerprint)
            if job is not None:
                on_event(Notice(f"Continuing unfinished job {job.job_id} for the same work."))
            else:
                try:
                    job = _plan(con, settings, query, choice, runner_name, target, mode, fingerprint, dry_run, on_event)
                except _DryRun as planned:
                    return dataclasses.replace(planned.result, seconds=time.monotonic() - started)
        finally:
            con.close()
    except BaseException:
        if runner is not None:
            runner.close()
        raise
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
    """Continue job ``job_id`` from where the ledger says it stopped."""
    started = time.monotonic()
    settings = settings if settings is not None else load_settings(overrides)
    job = _open_job(settings, job_id, doing="resume")
    runner = _runner(_recorded_choice(job), settings, job.runner, wait=wait, sleep=sleep, clock=clock)
    on_event(Notice(f"Resuming job {job_id} ({job.model}, {job.dimensions}-d) into {job.target}."))
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
    settings = settings if settings is not None else load_settings(overrides)
    job = _open_job(settings, job_id, doing="cancel")
    choice = _recorded_choice(job)
    store = JobStore(settings.db, job, max_attempts=0, lock_wait=settings.lock_wait)
    with store.running():
        if choice.model.provider != "local":
            _cancel_batches(store, settings, on_event, sleep=sleep, clock=clock)
        con = ledger.connect(settings.db, wait=settings.lock_wait)
        try:
            with ledger.transaction(con):
                ledger.set_job_status(con, job.job_id, "cancelled")
            return _result(job, con, started, status="cancelled", db=settings.db)
        finally:
            con.close()


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
    from .runners.openai import OpenAIBatchAPI

    with OpenAIBatchAPI(settings, sleep=sleep) as api:
        for shard in store.shards():
            if shard.status == "submitted" and shard.batch_id:
                api.cancel(shard.batch_id)
                on_event(Notice(f"Cancelling batch {shard.batch_id} (shard {shard.shard})."))
        runner = BatchRunner(
            api,
            budget=0,
            poll_interval=settings.poll_interval,
            max_poll_interval=settings.max_poll_interval,
            submit=False,
            sleep=sleep,
            clock=clock,
        )
        try:
            runner.drive(store, on_event)
        except KeyboardInterrupt:
            raise Detached(store.job.job_id) from None


def _open_job(settings: Settings, job_id: str, *, doing: str) -> ledger.Job:
    con = ledger.connect(settings.db, wait=settings.lock_wait)
    try:
        job = ledger.get_job(con, job_id)
    finally:
        con.close()
    if job.status in ("complete", "cancelled"):
        raise JobError(f"job {job_id} is already {job.status}; there is nothing to {doing}.")
    return job


def _recorded_choice(job: ledger.Job) -> ModelChoice:
    model = MODELS.get(job.model) or dataclasses.replace(compatible_model(job.model), dimensions=job.dimensions)
    return ModelChoice(model, job.dimensions, "recorded in the job")


def _runner_name(choice: ModelChoice, settings: Settings) -> str:
    """The runner a job uses: as configured, else the local model's own or the Batch API."""
    local = choice.model.provider == "local"
    name = settings.runner or ("local" if local else "batch")
    if (name == "local") != local:
        raise ConfigError(
            f"the {name} runner cannot run model {choice.model.name}: the local runner runs only "
            f"{LOCAL_MODEL.name}, which runs only there. Fix --runner / EMBEDSQL_RUNNER or --model."
        )
    if name == "batch" and choice.model.provider != "openai":
        raise ConfigError(
            f"model {choice.model.name} is not an OpenAI model, so the Batch API cannot run it; "
            "use --runner sync with --base-url pointing at its server."
        )
    return name


def _discover_dimensions(choice: ModelChoice, settings: Settings) -> ModelChoice:
    """The size of an unknown model's vectors, from its server's answer to one short request."""
    from .runners.openai import OpenAIBatchAPI

    with OpenAIBatchAPI(settings) as api:
        answer = api.embed_request(["dimension probe"], model=choice.model.name, dimensions=None)
    size = int(answer.vectors.shape[1])
    return ModelChoice(dataclasses.replace(choice.model, dimensions=size), size, choice.reason)


def _runner(
    choice: ModelChoice,
    settings: Settings,
    name: str,
    *,
    wait: bool,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> Runner:
    if name == "local":
        from .runners.local import LocalRunner

        return LocalRunner()
    from .runners.batch import BatchRunner
    from .runners.openai import OpenAIBatchAPI

    if name == "sync":
        from .runners.sync import SyncRunner

        return SyncRunner(
            OpenAIBatchAPI(settings, sleep=sleep),
            choice.model,
            dimensions=choice.dimensions if choice.dimensions != choice.model.dimensions else None,
            concurrency=settings.concurrency,
            max_inputs=settings.max_inputs_per_request,
            sleep=sleep,
            clock=clock,
        )
    return BatchRunner(
        OpenAIBatchAPI(settings, sleep=sleep),
        budget=_budget(choice, settings),
        poll_interval=settings.poll_interval,
        max_poll_interval=settings.max_poll_interval,
        wait=wait,
        sleep=sleep,
        clock=clock,
    )


def _budget(choice: ModelChoice, settings: Settings) -> int:
    """Tokens the job may have enqueued at the Batch API at once."""
    return settings.max_enqueued_tokens or choice.model.enqueued_tokens


def _plan(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    query: Query,
    choice: ModelChoice,
    runner: str,
    target: TargetName,
    mode: str,
    fingerprint: str,
    dry_run: bool,
    on_event: EventHandler,
) -> ledger.Job:
    job_id = _new_job_id()
    root = _work_root(settings)
    directory = root / (f"dry-run-{job_id}" if dry_run else job_id)
    if not dry_run:
        _remove_orphans(con, root)
    rows_table = f'embedsql."rows_{job_id}"'
    # A shard must fit the enqueued-token budget on its own, or it could never be submitted.
    budget = _budget(choice, settings) if runner == "batch" else None
    limits = ShardLimits(lines=settings.max_shard_lines, bytes=settings.max_shard_bytes, tokens=budget)
    with ledger.transaction(con):
        plan = make_plan(
            con,
            query,
            job_id=job_id,
            rows_table=rows_table,
            choice=choice,
            mode=mode,
            directory=directory,
            limits=limits,
            on_long=settings.on_long,
        )
        job = ledger.Job(
            job_id=job_id,
            fingerprint=fingerprint,
            status="prepared",
            created_at=datetime.now(UTC),
            finished_at=None,
            query=query.sql,
            key_columns=list(query.key_columns),
            text_columns=list(query.text_columns),
            model=choice.model.name,
            dimensions=choice.dimensions,
            runner=runner,
            target=target.sql,
            mode=mode,
            rows_table=rows_table,
            work_dir=_portable(directory, settings.db),
            total_rows=plan.total_rows,
            distinct_texts=plan.distinct_texts,
            cached_texts=plan.cached_texts,
            tokens=plan.tokens,
            truncated=plan.truncated,
        )
        ledger.insert_job(con, job)
        ledger.insert_shards(con, plan.shards)
        if dry_run:
            # Report from the planned tables, then undo them: a dry run leaves only its shard files.
            on_event(Notice(f"Dry run: shards written to {directory}; nothing was embedded."))
            raise _DryRun(job, _result(job, con, None, status="dry-run", db=settings.db, settings=settings))
    on_event(Notice(f"Job {job_id}: {plan.total_rows:,} rows, {len(plan.shards)} shard(s) to embed."))
    return job


class _DryRun(Exception):
    """Carries a dry run's result out of its transaction, which rolls the plan back."""

    def __init__(self, job: ledger.Job, result: RunResult) -> None:
        super().__init__(job.job_id)
        self.result = result


def _execute(job: ledger.Job, settings: Settings, runner: Runner, on_event: EventHandler, started: float) -> RunResult:
    store = JobStore(
        settings.db,
        job,
        max_attempts=settings.max_attempts,
        lock_wait=settings.lock_wait,
        memory_limit=settings.memory_limit,
    )
    try:
        with store.running():
            return _drive_and_finish(job, settings, store, runner, on_event, started)
    finally:
        runner.close()


def _keeps_its_place(job: ledger.Job) -> str:
    return f"Job {job.job_id} keeps its place: continue it with `embedsql resume {job.job_id}`."


def _drive_and_finish(
    job: ledger.Job, settings: Settings, store: JobStore, runner: Runner, on_event: EventHandler, started: float
) -> RunResult:
    try:
        runner.drive(store, on_event)
    except KeyboardInterrupt:
        raise Detached(job.job_id) from None
    except RemoteError as e:
        raise RemoteError(f"{e} {_keeps_its_place(job)}", retryable=e.retryable) from e
    except StorageError as e:
        raise StorageError(f"{e} {_keeps_its_place(job)}") from e
    if any(s.status != "loaded" for s in store.shards()):
        con = ledger.connect(settings.db, wait=settings.lock_wait)
        try:
            return _result(job, con, started, status="submitted", db=settings.db)
        finally:
            con.close()

    con = ledger.connect(settings.db, wait=settings.lock_wait, memory_limit=settings.memory_limit)
    try:
        with ledger.transaction(con):
            cache = cache_table(con, job.model, job.dimensions, create=True)
            assert cache is not None
            materialise(
                con,
                parse_target(job.target),
                mode=job.mode,
                rows_table=job.rows_table,
                cache=cache,
                query=_recorded_query(con, job),
                model=job.model,
                dimensions=job.dimensions,
                job_id=job.job_id,
            )
            ledger.set_job_status(con, job.job_id, "complete")
            ledger.drop_older_snapshots(con, job)
            failpoint("materialise")
        result = _result(job, con, started, status="complete", db=settings.db)
    finally:
        con.close()
    if not settings.keep_files:
        shutil.rmtree(store.directory, ignore_errors=True)
        for parent in (store.directory.parent, store.directory.parent.parent):
            with contextlib.suppress(OSError):  # only folders left empty go
                parent.rmdir()
    return result


def _result(
    job: ledger.Job,
    con: duckdb.DuckDBPyConnection,
    started: float | None,
    *,
    status: str,
    db: Path,
    settings: Settings | None = None,
) -> RunResult:
    shards = ledger.job_shards(con, job.job_id)
    skipped = dict(
        con.execute(
            f"SELECT {SKIP_COLUMN}, count(*) FROM {job.rows_table} "
            f"WHERE {SKIP_COLUMN} IS NOT NULL GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    failures = [
        Failure(*row)
        for row in con.execute(
            "SELECT custom_id, status, code, message FROM embedsql.errors WHERE job_id = ? AND final "
            "ORDER BY shard, custom_id",
            [job.job_id],
        ).fetchall()
    ]
    target_rows = 0
    if status == "complete":
        cache = cache_table(con, job.model, job.dimensions, create=False)
        target_rows = int(
            con.execute(
                f"SELECT count(*) FROM {job.rows_table} r JOIN {cache} c ON c.text_hash = r.{HASH_COLUMN}"
            ).fetchall()[0][0]
        )
    return RunResult(
        job_id=job.job_id,
        status=status,
        db=db,
        target=str(parse_target(job.target)),
        model=job.model,
        dimensions=job.dimensions,
        rows=job.total_rows,
        distinct_texts=job.distinct_texts,
        cached_texts=job.cached_texts,
        sent_texts=sum(s.lines for s in shards if s.attempt == 1),
        embedded_texts=sum(s.embedded or 0 for s in shards),
        failed_texts=len(failures),
        skipped=skipped,
        target_rows=target_rows,
        tokens=job.tokens,
        truncated=job.truncated,
        cost=estimate_cost(MODELS[job.model], job.tokens, settings) if settings and job.model in MODELS else None,
        shards=len(shards),
        work_dir=db.parent / job.work_dir,
        seconds=0.0 if started is None else time.monotonic() - started,
        failures=failures,
    )


def _recorded_query(con: duckdb.DuckDBPyConnection, job: ledger.Job) -> Query:
    """The job's key columns with the types its snapshot holds (the live query may have changed)."""
    described = con.execute(f"DESCRIBE {job.rows_table}").fetchall()
    columns = tuple((row[0], row[1]) for row in described if row[0] in job.key_columns)
    return Query(job.query, columns, tuple(job.key_columns), tuple(job.text_columns), frozenset())


def _fingerprint(query: Query, choice: ModelChoice, target: TargetName, mode: str, runner: str) -> str:
    spec: Mapping[str, Any] = {
        "sql": query.sql,
        "key": query.key_columns,
        "text": query.text_columns,
        "model": choice.model.name,
        "dimensions": choice.dimensions,
        "target": target.sql,
        "mode": mode,
        # Another runner is another job: a shard in flight at the Batch API must not be sent again.
        "runner": runner,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _new_job_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def _work_root(settings: Settings) -> Path:
    """Folder of this database's job folders: one per database, so that cleaning up after one
    database never touches another's files, even when they share a folder or a work_dir."""
    base = settings.work_dir if settings.work_dir is not None else settings.db.parent / ".embedsql"
    return base / settings.db.name


def _portable(directory: Path, db: Path) -> str:
    """``directory`` relative to the database's folder when inside it, so the pair can move together."""
    try:
        return str(directory.resolve().relative_to(db.parent.resolve()))
    except ValueError:
        return str(directory.resolve())


def _remove_orphans(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """Delete work folders of plans that crashed before they were committed (no job row)."""
    if not root.is_dir():
        return
    known = {r[0] for r in con.execute("SELECT job_id FROM embedsql.jobs").fetchall()}
    for child in root.iterdir():
        if child.is_dir() and not child.name.startswith("dry-run-") and child.name not in known:
            shutil.rmtree(child, ignore_errors=True)
