"""The ``embedsql`` command: a thin layer that parses flags, calls the library and prints.

Library errors become ``Error: <message>`` on stderr with exit status 1, in one place
(``_Group.invoke``); usage errors exit 2 as click makes them. Summaries go to stdout, notices and
progress to stderr, so ``embedsql run ... > summary.txt`` keeps the two apart.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any, TextIO, TypeVar

import click
import pyarrow as pa

from . import arrays
from .config import ENV_VARS, SECRET_FIELDS, SETTINGS, Settings, decode_text, load_settings
from .embed import sql as run_sql
from .errors import Detached, EmbedsqlError
from .events import BatchProgress, Event, Notice, Outage, Progress
from .formats import FORMATS, render, visible
from .jobs import RunResult, job_status, list_jobs
from .ledger import interrupted
from .load import UNCOUNTED, about_the_text
from .models import MODELS
from .pipeline import MODES, cancel, resume, run
from .projection import FEWEST
from .results import WRONG_LENGTH
from .search import search

__all__ = ["STOPPED", "cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])
# What a Ctrl-C says when the library has nothing more to say about what it stopped.
STOPPED = "Interrupted: the command stopped before it finished."


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EmbedsqlError as e:
            raise click.ClickException(str(e)) from e
        except Detached as e:
            kept = " ".join(getattr(e, "__notes__", [])) or "It keeps its place; nothing is lost."
            click.echo(f"\nDetached from job {e.job_id}. {kept}\nContinue with: embedsql resume {e.job_id}", err=True)
            ctx.exit(130)
        except (KeyboardInterrupt, RuntimeError) as e:
            if not interrupted(e):
                raise
            # The library's own interrupts say what they left; DuckDB's ("Query interrupted") do not.
            said = str(e) if isinstance(e, KeyboardInterrupt) else ""
            click.echo(f"\n{said or STOPPED}", err=True)
            ctx.exit(130)


class _QueryCommand(click.Command):
    """A command whose argument is SQL, which may begin with a comment (``-- the genres``): a word that
    starts with a dash but holds a space or a line break cannot be an option, so it is the query."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        queries = [arg for arg in args if _is_sql(arg)]
        if queries:
            rest = [arg for arg in args if not _is_sql(arg)]
            # After "--", click takes every word as an argument, whatever it starts with.
            args = [*rest, *queries] if "--" in rest else [*rest, "--", *queries]
        return super().parse_args(ctx, args)


def _is_sql(arg: str) -> bool:
    return arg.startswith("-") and arg != "--" and any(c.isspace() for c in arg.split("=", 1)[0])


@click.group(cls=_Group)
@click.version_option(package_name="embedsql")
def cli() -> None:
    """embedsql: embed the rows of a DuckDB query into a table of vectors.

    With OPENAI_API_KEY set it uses the OpenAI Batch API (half the price of the normal API);
    without one it uses a bundled offline model, so it works out of the box.
    """


def _setting_option(name: str, *, detail: str = "", **attrs: Any) -> Callable[[F], F]:
    """The flag of setting ``name`` as ``Settings`` declares it: its name, help, env var, default and range.

    ``detail`` goes after the declared help line; ``attrs`` are click.option's (they win over derived ones).
    """
    declared = SETTINGS[name]
    if declared.flag is None:
        raise TypeError(f"setting {name!r} has no flag")
    if declared.choices:
        attrs.setdefault("type", click.Choice(declared.choices))
    elif declared.kind is bool:
        attrs.setdefault("is_flag", True)
    elif declared.kind is int:
        attrs.setdefault("type", int if declared.least is None else click.IntRange(min=int(declared.least)))
        attrs.setdefault("metavar", "N")
    return click.option(declared.flag, name, help=_setting_help(name, detail), **attrs)


def _setting_help(name: str, detail: str = "") -> str:
    """``--help`` of a setting's flag: the declared help line, then its env var and default."""
    declared = SETTINGS[name]
    default = declared.default_text
    if default is None and declared.default is not None and not isinstance(declared.default, bool):
        default = str(declared.default)
    return f"{declared.help}{detail}.  [env: {declared.env}" + (f"; default: {default}]" if default else "]")


def _db_option(command: F) -> F:
    """--db, and the dbt project that can name it instead (every command that opens the database)."""
    command = _setting_option("dbt_target", metavar="NAME", expose_value=False, callback=_remember)(command)
    # Paths stay text here: load_settings turns them into paths, as it does those of every other source.
    command = _setting_option("dbt_project", metavar="DIRECTORY", expose_value=False, callback=_remember)(command)
    return _setting_option("db", metavar="PATH")(command)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Keep an option that every command shares but none uses itself, for ``_settings``."""
    if param.name and ctx.get_parameter_source(param.name) == click.core.ParameterSource.COMMANDLINE:
        ctx.meta.setdefault("embedsql.settings", {})[param.name] = value


def _settings(ctx: click.Context, **flags: Any) -> Settings:
    """Settings with only the flags the user actually typed taking precedence."""
    typed = {
        name: value
        for name, value in flags.items()
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    }
    return load_settings({**ctx.meta.get("embedsql.settings", {}), **typed}, flags=True)


@cli.command(name="run", cls=_QueryCommand)
@click.argument("sql", required=False)
@click.option(
    "-f", "--file", "sql_file", type=click.File("rb"), help="Read the query from a file (UTF-8, or UTF-16 with a BOM)."
)
@click.option(
    "--key", multiple=True, metavar="COLUMN", help="Key column(s); repeat or comma-separate. Default: the first column."
)
@click.option(
    "--text", multiple=True, metavar="COLUMN", help="Text column(s), joined by spaces. Default: all but the key."
)
@click.option(
    "--into",
    metavar="TABLE",
    help="Target table ([schema.]table). Default: <name>_embeddings for a query of one table or file.",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="replace",
    show_default=True,
    help="replace: the target becomes the query's rows; upsert: add and update rows, keep others.",
)
@_setting_option("model", detail=f": {', '.join(MODELS)}", metavar="NAME")
@_setting_option("dimensions")
@_setting_option("runner")
@_setting_option("openai_base_url", metavar="URL")
@_setting_option("concurrency")
@_setting_option("max_inputs_per_request")
@_setting_option("max_input_tokens")
@_setting_option("on_long")
@_setting_option("max_attempts")
@_setting_option("max_enqueued_tokens")
@_db_option
@_setting_option("keep_files")
@click.option("--dry-run", is_flag=True, help="Write the shards and show what would be sent and cost; embed nothing.")
@click.option("--no-wait", is_flag=True, help="Submit the batches and return; finish later with `embedsql resume`.")
@click.pass_context
def run_command(
    ctx: click.Context,
    sql: str | None,
    sql_file: IO[bytes] | None,
    key: tuple[str, ...],
    text: tuple[str, ...],
    into: str | None,
    mode: str,
    model: str | None,
    dimensions: int | None,
    runner: str | None,
    openai_base_url: str | None,
    concurrency: int | None,
    max_inputs_per_request: int | None,
    max_input_tokens: int | None,
    on_long: str | None,
    max_attempts: int | None,
    max_enqueued_tokens: int | None,
    db: str | None,
    keep_files: bool,
    dry_run: bool,
    no_wait: bool,
) -> None:
    """Embed the rows of SQL into a DuckDB table of vectors.

    The first column of the query is the key and the other columns are joined into the text
    (or name them with --key and --text). Identical texts are embedded once, and texts embedded
    before with the same model come from the cache. Ctrl-C while it waits detaches: the job
    keeps its place and `embedsql resume JOB` continues it.

    \b
    Example:
        embedsql run "select movieId, genres from movies"
        embedsql run -f query.sql --into search.docs_embeddings --mode upsert
    """
    if (sql is None) == (sql_file is None):
        raise click.UsageError("pass the query as an argument or with -f FILE (exactly one of them).")
    query = sql if sql is not None else _read_query(sql_file)  # type: ignore[arg-type]
    settings = _settings(
        ctx,
        model=model,
        dimensions=dimensions,
        runner=runner,
        openai_base_url=openai_base_url,
        concurrency=concurrency,
        max_inputs_per_request=max_inputs_per_request,
        max_input_tokens=max_input_tokens,
        on_long=on_long,
        max_attempts=max_attempts,
        max_enqueued_tokens=max_enqueued_tokens,
        db=db,
        keep_files=keep_files,
    )
    display = _Display(sys.stderr)
    try:
        result = run(
            query,
            key=_split(key),
            text=_split(text),
            into=into,
            mode=mode,
            dry_run=dry_run,
            wait=not no_wait,
            settings=settings,
            on_event=display,
        )
    finally:
        display.finish()
    _report(ctx, result)


@cli.command(name="resume")
@click.argument("job_id")
@_db_option
@click.option("--no-wait", is_flag=True, help="Submit what is left and return instead of waiting.")
@click.pass_context
def resume_command(ctx: click.Context, job_id: str, db: str | None, no_wait: bool) -> None:
    """Continue an unfinished job from where it stopped.

    \b
    Example:
        embedsql resume 20261125-093012-a1b2
    """
    settings = _settings(ctx, db=db)
    display = _Display(sys.stderr)
    try:
        result = resume(job_id, wait=not no_wait, settings=settings, on_event=display)
    finally:
        display.finish()
    _report(ctx, result)


@cli.command(name="cancel", short_help="Cancel a job, keeping what its batches finished.")
@click.argument("job_id")
@_db_option
@click.pass_context
def cancel_command(ctx: click.Context, job_id: str, db: str | None) -> None:
    """Cancel a job: stop its batches, keep what they finished, send nothing more.

    Texts the batches finished before the cancel (which OpenAI bills) go into the cache, so a
    later run does not pay for them again. The target table is left as it was.

    \b
    Example:
        embedsql cancel 20261125-093012-a1b2
    """
    settings = _settings(ctx, db=db)
    display = _Display(sys.stderr)
    try:
        result = cancel(job_id, settings=settings, on_event=display)
    finally:
        display.finish()
    _report(ctx, result)


def _format_option(command: F) -> F:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Output format. Values print as DuckDB writes them. table and markdown show control characters "
        "escaped (\\n, \\x1b); csv, json and jsonl keep every character. json and jsonl write NaN and "
        'infinities as the strings "NaN", "Infinity" and "-Infinity", and suffix a repeated column name as '
        "DuckDB's COPY does (a, a_1).",
    )(command)


@cli.command(name="jobs")
@_db_option
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Jobs to list.")
@_format_option
@click.pass_context
def jobs_command(ctx: click.Context, db: str | None, limit: int, fmt: str) -> None:
    """List recent jobs, newest first, one row each.

    \b
    Example:
        embedsql jobs -n 5
    """
    settings = _settings(ctx, db=db)
    jobs = list_jobs(settings.db, limit=limit)
    shown = _visible if fmt in ("table", "markdown") else str
    table = arrays.table(
        {
            "job": arrays.strings([j.job_id for j in jobs]),
            "status": arrays.strings([j.status for j in jobs]),
            "target": arrays.strings([shown(j.target) for j in jobs]),
            "model": arrays.strings([shown(j.model) for j in jobs]),
            "rows": arrays.int64s([j.rows for j in jobs]),
            "texts_to_embed": arrays.int64s([j.texts_to_embed for j in jobs]),
            "billed_tokens": arrays.int64s([j.billed_tokens for j in jobs]),
            "created": arrays.strings([j.created_at.strftime("%Y-%m-%d %H:%M") for j in jobs]),
        }
    )
    _print_rows(table, fmt)


@cli.command(name="search")
@click.argument("text")
@click.option("--table", "table_name", required=True, metavar="TABLE", help="A table that `embedsql run` wrote.")
@click.option("-k", type=click.IntRange(min=1), default=10, show_default=True, help="How many rows to return.")
@click.option("--show", metavar="SQL", help="A query whose columns to show beside each hit (keys added if missing).")
@click.option("--columns", multiple=True, metavar="COLUMN", help="Columns of the source table to show instead.")
@click.option(
    "--where", metavar="SQL", help="A condition on the returned columns (score included), applied before ranking."
)
@click.option("--model", metavar="NAME", help="Check that the table holds this model's vectors.")
@_db_option
@_format_option
@click.pass_context
def search_command(
    ctx: click.Context,
    text: str,
    table_name: str,
    k: int,
    show: str | None,
    columns: tuple[str, ...],
    where: str | None,
    model: str | None,
    db: str | None,
    fmt: str,
) -> None:
    """Find the rows of TABLE whose text is nearest to TEXT (cosine similarity).

    TEXT is embedded with the table's own model (and cached like any text). Each hit shows its key,
    the --show or --columns columns, and score, the similarity. When one of those columns is already
    called score (in any letter case), the similarity is score_1 (or score_2, ...), as DuckDB names a
    repeated column; --where uses the same names.

    \b
    Example:
        embedsql search "space adventure for kids" --table movies_embeddings \\
            --show "select title, genres from movies" -k 10
    """
    settings = _settings(ctx, db=db, model=model)
    hits = search(text, table=table_name, k=k, show=show, columns=_split(columns), where=where, settings=settings)
    _print_rows(hits, fmt)


@cli.command(name="map", short_help="Lay out a table of embeddings as a map: a table, a page, a picture.")
@click.argument("table")
@click.option(
    "--show",
    metavar="SQL",
    help="A query whose columns show on hover and label the clusters (keys added if missing; "
    "default: the texts that were embedded).",
)
@click.option("--color", metavar="COLUMN", help="Colour the points by this column of --show (default: by cluster).")
@click.option(
    "-o",
    "--output",
    multiple=True,
    metavar="FILE",
    help="Draw the map into FILE: a page (.html) or a picture (.png). Repeat for both.",
)
@click.option(
    "--sample", type=click.IntRange(min=FEWEST), metavar="N", help="Map N rows of the table, not all of them."
)
@click.option("--into", metavar="TABLE", help="The map table (default: TABLE_map, beside TABLE).")
@_db_option
@click.pass_context
def map_command(
    ctx: click.Context,
    table: str,
    show: str | None,
    color: str | None,
    output: tuple[str, ...],
    sample: int | None,
    into: str | None,
    db: str | None,
) -> None:
    """Lay out the vectors of TABLE in 2-D, cluster them, and write the map table TABLE_map.

    TABLE is a table that `embedsql run` wrote. Its vectors are projected with UMAP (a fixed seed: the
    same table gives the same map) and clustered with HDBSCAN; each cluster is labelled with its most
    distinctive words. TABLE_map holds each row's key, x, y, cluster (-1: in none) and cluster_label;
    run again on an unchanged table, it is reused. -o draws it: a page that works offline (zoom, hover,
    search the labels) or a picture. Needs the map extra: pip install 'embedsql[map]'.

    \b
    Example:
        embedsql map movies_embeddings --show "select title, genres from movies" \\
            --color genres -o movies_map.html -o movies_map.png
    """
    from .maps import make_map

    settings = _settings(ctx, db=db)
    display = _Display(sys.stderr)
    try:
        result = make_map(
            table,
            settings=settings,
            show=show,
            color=color,
            output=output,
            sample=sample,
            into=into,
            on_event=display,
        )
    finally:
        display.finish()
    how = "reused: its vectors have not changed" if result.reused else "laid out now"
    sampled = f" (--sample {result.sample:,})" if result.sample is not None else ""
    click.echo(
        f"{result.table} in {settings.db}: {result.rows.num_rows:,} rows{sampled}, {result.points:,} distinct "
        f"vectors, {result.clusters:,} clusters ({how})"
    )
    for path in result.files:
        click.echo(f"  wrote {path}")


@cli.command(name="sql", cls=_QueryCommand)
@click.argument("query")
@click.option("--model", metavar="NAME", help="Model of embed() (default: the model of the database's embeddings).")
@_db_option
@_format_option
@click.pass_context
def sql_command(ctx: click.Context, query: str, model: str | None, db: str | None, fmt: str) -> None:
    """Run QUERY with embed(text) available, and print its rows.

    Every value is printed as DuckDB writes it (its CAST to VARCHAR); json and jsonl keep numbers as
    numbers, with DuckDB's digits.

    \b
    Example:
        embedsql sql "select m.title from movies m join movies_embeddings e using (movieId)
                      order by array_cosine_similarity(e.embedding, embed('space adventure')) desc limit 5"
    """
    rows = run_sql(query, settings=_settings(ctx, db=db, model=model))
    _print_rows(rows, fmt)


@cli.command(name="status", short_help="Show where a job stands.")
@click.argument("job_id", required=False)
@_db_option
@click.pass_context
def status_command(ctx: click.Context, job_id: str | None, db: str | None) -> None:
    """Show where a job stands (the newest one when JOB_ID is left out).

    \b
    Example:
        embedsql status 20261125-093012-a1b2
    """
    settings = _settings(ctx, db=db)
    status = job_status(settings.db, job_id)
    job = status.job
    click.echo(f"job {job.job_id}: {status.status}")
    click.echo(f"  target      {_visible(status.target)} ({job.mode})")
    click.echo(f"  model       {_visible(job.model)} ({job.dimensions}-d), runner {job.runner}")
    click.echo(f"  rows        {job.total_rows:,} ({job.distinct_texts:,} distinct texts, {job.cached_texts:,} cached)")
    click.echo(f"  requests    {status.embedded:,} embedded, {status.failed:,} failed, of {status.lines:,}")
    if status.billed_tokens is not None:
        click.echo(f"  billed      {status.billed_tokens:,} tokens")
    click.echo(f"  shards      {_counts(status.shards)}")
    if status.batches:
        click.echo(f"  batches     {_counts(status.batches)}")
    for code, message, count in status.top_errors:
        click.echo(f"  error       {count:,} x {_visible(str(code))}: {_visible(str(message))}")
    if job.status == "prepared":
        click.echo(f"Continue with: embedsql resume {job.job_id}")


@cli.command(name="config", short_help="Show each setting, its value and where it came from.")
def config_command() -> None:
    """Show each setting, its value and where it came from (flag, environment, .env, file).

    \b
    Example:
        embedsql config
    """
    settings = load_settings()
    width = max(len(n) for n in ENV_VARS)
    for name, var in ENV_VARS.items():
        value = getattr(settings, name)
        shown = "(not set)" if value is None else ("********" if name in SECRET_FIELDS else str(value))
        click.echo(f"{name:<{width}}  {shown}  [{settings.sources.get(name, 'default')}; env {var}]")
    if settings.prices:
        click.echo(f"{'prices':<{width}}  {dict(settings.prices)}  [{settings.sources.get('prices')}]")


def _read_query(file: IO[bytes]) -> str:
    path = getattr(file, "name", "-")
    name = "standard input" if path in ("-", "<stdin>") else f"query file {path}"
    return decode_text(
        file.read(),
        name=name,
        fix="Save it as UTF-8 (iconv -f latin1 -t utf-8), or pass the query as an argument.",
    )


def _print_rows(rows: pa.Table, fmt: str) -> None:
    """``rows`` on stdout in format ``fmt``. Off a terminal click would drop ANSI escape sequences, changing
    the data (color=True keeps them): csv, json and jsonl print every value exact, and table and markdown
    show control characters escaped (``formats.visible``), so no value can drive the terminal."""
    click.echo(render(rows, fmt), nl=False, color=True)


def _visible(text: str) -> str:
    """``text`` as printed for a person: control characters as escapes (``\\n`` for a line break), and a
    backslash doubled so that an escape is never mistaken for the characters it is made of: a name or
    message keeps to its line and two different ones never look alike."""
    return visible(text.replace("\\", "\\\\"))


def _split(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {name}" for name, n in counts.items()) or "none"


def _report(ctx: click.Context, result: RunResult) -> None:
    """Print the summary; texts that failed for good make the exit status 1."""
    click.echo(_summary(result))
    if result.status == "submitted":
        click.echo(
            f"Submitted. Follow it with: embedsql status {result.job_id}; finish with: embedsql resume {result.job_id}",
            err=True,
        )
    if result.failed_texts:
        # The texts' own fault (the server refused those inputs) first: that is what the user can fix.
        content = [f for f in result.failures if about_the_text(f)]
        first = (content or result.failures)[0]
        status = f"{first.status} " if first.status else ""
        if content:
            remedy = "fix those texts, and run again (the rest comes from the cache)."
        elif first.code in UNCOUNTED:
            remedy = (
                "they never ran (the job was cancelled): run the same command again to embed them "
                "(the rest comes from the cache)."
            )
        elif first.code in (WRONG_LENGTH, "invalid_vector"):
            remedy = (
                "the server answered unusable vectors: check --model and --dimensions, then run again "
                "(the rest comes from the cache)."
            )
        else:
            remedy = (
                "the server failed on them every time it was asked: run the same command again later "
                "(the rest comes from the cache)."
            )
        click.echo(
            f"Error: {result.failed_texts:,} text(s) failed for good and their rows are not in "
            f"{_visible(result.target)}; first: {status}{_visible(str(first.code))}: "
            f"{_visible(str(first.message)).rstrip('.')}. See table embedsql.errors (job_id = "
            f"'{result.job_id}'), {remedy}",
            err=True,
        )
        ctx.exit(1)


def _summary(result: RunResult) -> str:
    def line(label: str, number: int | str, extra: str = "") -> str:
        shown = f"{number:,}" if isinstance(number, int) else number
        return f"  {label:<16}{shown:>10}{extra}"

    skipped = sum(result.skipped.values())
    reasons = " (" + ", ".join(f"{n:,} {why}" for why, n in result.skipped.items()) + ")" if skipped else ""
    if result.status == "dry-run":
        lines = [
            f"Dry run (job {result.job_id}): nothing was embedded and {_visible(result.target)} was not touched.",
            line("rows", result.rows),
            line("distinct texts", result.distinct_texts),
            line("already cached", result.cached_texts),
            line("to embed", result.sent_texts, f" texts in {result.shards} shard(s)"),
            line("skipped rows", skipped, reasons),
        ]
        if result.truncated:
            lines.append(line("truncated", result.truncated, " texts cut to the model's token limit"))
        lines.append(line("tokens", result.tokens, " (counted exactly)"))  # a job sent estimates its own
        if result.cost is not None:
            batch, standard = result.cost
            lines.append(
                line("est. cost", f"${batch:,.4f}", f" on the Batch API (${standard:,.4f} at standard prices)")
            )
        lines.append(f"  {'shards':<16}{result.work_dir} (kept until the next dry run)")
        return "\n".join(lines)
    if result.status == "complete":
        rows = f"{result.target_rows:,} rows"
        if result.table_rows != result.target_rows:  # an upsert that kept rows of other keys
            rows = f"{result.target_rows:,} rows written, {result.table_rows:,} in the table,"
        vectors = f"{result.model} FLOAT[{result.dimensions}]"
        head = f"{_visible(result.target)} in {result.db}: {rows} of {vectors} (job {result.job_id})"
    else:
        head = f"Job {result.job_id} {result.status}: {_visible(result.target)} in {result.db} was not written."
    lines = [
        head,
        line("rows", result.rows),
        line("distinct texts", result.distinct_texts),
        line("from cache", result.cached_texts),
        line("embedded", result.embedded_texts),
    ]
    if result.failed_texts:
        lines.append(line("failed", result.failed_texts, " (see table embedsql.errors)"))
    if result.truncated:
        lines.append(line("truncated", result.truncated, " texts cut to the model's token limit"))
    lines.append(line("skipped rows", skipped, reasons))
    if result.billed_tokens is not None:
        lines.append(line("billed tokens", result.billed_tokens, " (the usage the service reported)"))
    lines.append(line("time", f"{result.seconds:.1f} s"))
    return "\n".join(lines)


class _Display:
    """Renders library events on stderr: a live line or bar on a terminal, sparse lines otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.bar: Any = None
        self.shown = 0
        self.last_line = 0.0
        self.printed = 0
        self.last_state: tuple[object, ...] = ()
        self.live = False
        self.lock = threading.Lock()
        self.planning_since: float | None = None

    def __call__(self, event: Event) -> None:
        # Planning progress comes from a thread of its own.
        with self.lock:
            self._show(event)

    def _show(self, event: Event) -> None:
        if isinstance(event, Notice):
            self._clear()
            click.echo(event.message, file=self.stream)
        elif isinstance(event, Progress):
            self._progress(event)
        elif isinstance(event, BatchProgress):
            self._batches(event)
        elif isinstance(event, Outage):
            self._outage(event)

    def _progress(self, event: Progress) -> None:
        if event.stage == "map":
            self._mapping(event)
            return
        if event.total == 0:
            return
        if event.stage in ("plan", "shards"):
            self._planning(event)
            return
        if self.tty:
            if self.bar is None:
                self.bar = click.progressbar(length=event.total, label="Embedding", file=self.stream, show_pos=True)
                self.bar.__enter__()
                self.shown = 0
            self.bar.update(event.done - self.shown)
            self.shown = event.done
            return
        now = time.monotonic()
        # A count already printed is not printed again (a runner reports its total once per round).
        if event.done and event.done != self.printed and (event.done == event.total or now - self.last_line >= 5):
            self.last_line, self.printed = now, event.done
            click.echo(f"embedded {event.done:,}/{event.total:,} texts", file=self.stream)

    def _planning(self, event: Progress) -> None:
        over = event.stage == "plan" and not event.step
        if event.stage == "shards":
            text = f"planning: writing shards, {event.done:,}/{event.total:,} texts"
        else:
            text = f"planning: {event.step or 'done'}, {event.done}%"
        now = time.monotonic()
        if self.planning_since is None:
            self.planning_since = now
        if self.tty:
            click.echo("\r\x1b[2K" + text, file=self.stream, nl=False)
            self.live = True
            if over:
                self._clear()
            return
        # Off a terminal: a line every five seconds once planning has taken five.
        if not over and now - self.planning_since >= 5 and now - self.last_line >= 5:
            self.last_line = now
            click.echo(text, file=self.stream)

    def _mapping(self, event: Progress) -> None:
        # A handful of steps, each of seconds to minutes, shown as each starts; within a step (the
        # layout's epochs) off a terminal, a line every thirty seconds at most.
        text = f"mapping: {event.step}"
        if self.tty:
            click.echo("\r\x1b[2K" + text, file=self.stream, nl=False)
            self.live = True
            return
        now = time.monotonic()
        step = event.step.split(",")[0]
        if self.last_state == ("map", step) and now - self.last_line < 30:
            return
        self.last_state, self.last_line = ("map", step), now
        click.echo(text, file=self.stream)

    def _batches(self, event: BatchProgress) -> None:
        statuses = ", ".join(f"{n} {status}" for status, n in event.statuses.items())
        text = (
            f"batches: {statuses} | requests {event.completed:,}/{event.total:,} done, {event.failed:,} failed | "
            f"{_duration(event.elapsed)}" + (f" | ETA {_duration(event.eta)}" if event.eta is not None else "")
        )
        if self.tty:
            click.echo("\r\x1b[2K" + text, file=self.stream, nl=False)
            self.live = True
            return
        # Off a terminal: a line when something changed, and at least every five minutes.
        state = (event.statuses, event.completed, event.failed)
        now = time.monotonic()
        if state != self.last_state or now - self.last_line >= 300:
            self.last_state, self.last_line = state, now
            click.echo(text, file=self.stream)

    def _outage(self, event: Outage) -> None:
        text = f"waiting for the API to come back ({event.answer}; retrying in {_duration(event.retry_in)})" + (
            f" | down for {_duration(event.since)}" if event.since >= 1 else ""
        )
        if self.tty:
            click.echo("\r\x1b[2K" + text, file=self.stream, nl=False)
            self.live = True
            return
        # Off a terminal: when the outage begins or its answer changes, and at least every five minutes.
        state: tuple[object, ...] = ("outage", event.answer)
        now = time.monotonic()
        if state != self.last_state or now - self.last_line >= 300:
            self.last_state, self.last_line = state, now
            click.echo(text, file=self.stream)

    def _clear(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        if self.live:
            click.echo("", file=self.stream)
            self.live = False

    def finish(self) -> None:
        """Close the progress bar or live line, if one is open."""
        self._clear()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def main() -> int:
    """Run the ``embedsql`` command on ``sys.argv`` and return its exit status: click's standalone mode,
    except that a Ctrl-C while click parses the command line or after the command has run is the same
    one line and status 130 as one during the command (click would say "Aborted!" and exit 1)."""
    try:
        code = cli.main(prog_name="embedsql", standalone_mode=False)
    except click.Abort as e:
        if isinstance(e.__cause__, KeyboardInterrupt):
            click.echo(STOPPED, err=True)  # after the blank line click wrote to close the ^C
            return 130
        click.echo("Aborted!", err=True)  # end of input at a prompt
        return 1
    except click.ClickException as e:
        e.show()
        return e.exit_code
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    from .__main__ import main as process

    process()
