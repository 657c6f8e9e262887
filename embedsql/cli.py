"""The ``embedsql`` command: a thin layer that parses flags, calls the library and prints.

Library errors become ``Error: <message>`` on stderr with exit status 1, in one place
(``_Group.invoke``); usage errors exit 2 as click makes them. Summaries go to stdout, notices and
progress to stderr, so ``embedsql run ... > summary.txt`` keeps the two apart.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import IO, Any, TextIO

import click

from .config import ENV_VARS, SECRET_FIELDS, Settings, load_settings
from .errors import EmbedsqlError
from .events import Event, Notice, Progress
from .models import MODELS
from .pipeline import MODES, RunResult, resume, run


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EmbedsqlError as e:
            raise click.ClickException(str(e)) from e


@click.group(cls=_Group)
@click.version_option(package_name="embedsql")
def cli() -> None:
    """embedsql: embed the rows of a DuckDB query into a table of vectors.

    With OPENAI_API_KEY set it uses the OpenAI Batch API (half the price of the normal API);
    without one it uses a bundled offline model, so it works out of the box.
    """


def _settings(ctx: click.Context, **flags: Any) -> Settings:
    """Settings with only the flags the user actually typed taking precedence."""
    typed = {
        name: value
        for name, value in flags.items()
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    }
    return load_settings(typed)


@cli.command(name="run")
@click.argument("sql", required=False)
@click.option("-f", "--file", "sql_file", type=click.File("r", encoding="utf-8"), help="Read the query from a file.")
@click.option(
    "--key", multiple=True, metavar="COLUMN", help="Key column(s); repeat or comma-separate. Default: the first column."
)
@click.option(
    "--text", multiple=True, metavar="COLUMN", help="Text column(s), joined by spaces. Default: all but the key."
)
@click.option(
    "--into", metavar="TABLE", help="Target table ([schema.]table). Default: <table>_embeddings for a one-table query."
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="replace",
    show_default=True,
    help="replace: the target becomes the query's rows; upsert: add and update rows, keep others.",
)
@click.option("--model", metavar="NAME", help=f"Embedding model: {', '.join(MODELS)}.  [env: EMBEDSQL_MODEL]")
@click.option(
    "--dimensions",
    type=click.IntRange(min=1),
    metavar="N",
    help="Shorter vectors (text-embedding-3-*).  [env: EMBEDSQL_DIMENSIONS]",
)
@click.option(
    "--db",
    type=click.Path(path_type=Path),
    default=Path("warehouse.duckdb"),
    help="DuckDB database.  [env: EMBEDSQL_DB; default: warehouse.duckdb]",
    show_default=False,
)
@click.option("--keep-files", is_flag=True, help="Keep shard and result files after the job completes.")
@click.option("--dry-run", is_flag=True, help="Write the shards and show what would be sent; embed nothing.")
@click.pass_context
def run_command(
    ctx: click.Context,
    sql: str | None,
    sql_file: IO[str] | None,
    key: tuple[str, ...],
    text: tuple[str, ...],
    into: str | None,
    mode: str,
    model: str | None,
    dimensions: int | None,
    db: Path,
    keep_files: bool,
    dry_run: bool,
) -> None:
    """Embed the rows of SQL into a DuckDB table of vectors.

    The first column of the query is the key and the other columns are joined into the text
    (or name them with --key and --text). Identical texts are embedded once, and texts embedded
    before with the same model come from the cache.

    \b
    Example:
        embedsql run "select movieId, genres from movies"
        embedsql run -f query.sql --into search.docs_embeddings --mode upsert
    """
    if (sql is None) == (sql_file is None):
        raise click.UsageError("pass the query as an argument or with -f FILE (exactly one of them).")
    query = sql if sql is not None else sql_file.read()  # type: ignore[union-attr]
    settings = _settings(ctx, model=model, dimensions=dimensions, db=db, keep_files=keep_files)
    display = _Display(sys.stderr)
    result = run(
        query,
        key=_split(key),
        text=_split(text),
        into=into,
        mode=mode,
        dry_run=dry_run,
        settings=settings,
        on_event=display,
    )
    display.finish()
    click.echo(_summary(result, settings.db))


@cli.command(name="resume")
@click.argument("job_id")
@click.option(
    "--db",
    type=click.Path(path_type=Path),
    default=Path("warehouse.duckdb"),
    help="DuckDB database.  [env: EMBEDSQL_DB; default: warehouse.duckdb]",
    show_default=False,
)
@click.pass_context
def resume_command(ctx: click.Context, job_id: str, db: Path) -> None:
    """Continue an unfinished job from where it stopped.

    \b
    Example:
        embedsql resume 20261125-093012-a1b2
    """
    settings = _settings(ctx, db=db)
    display = _Display(sys.stderr)
    result = resume(job_id, settings=settings, on_event=display)
    display.finish()
    click.echo(_summary(result, settings.db))


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


def _split(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _summary(result: RunResult, db: Path) -> str:
    def line(label: str, number: int | str, extra: str = "") -> str:
        shown = f"{number:,}" if isinstance(number, int) else number
        return f"  {label:<16}{shown:>10}{extra}"

    skipped = sum(result.skipped.values())
    reasons = " (" + ", ".join(f"{n:,} {why}" for why, n in result.skipped.items()) + ")" if skipped else ""
    if result.status == "dry-run":
        lines = [
            f"Dry run (job {result.job_id}): nothing was embedded and {result.target} was not touched.",
            line("rows", result.rows),
            line("distinct texts", result.distinct_texts),
            line("already cached", result.cached_texts),
            line("to embed", result.sent_texts, f" texts in {result.shards} shard(s)"),
            line("skipped rows", skipped, reasons),
            line("est. tokens", result.tokens),
        ]
        model = MODELS[result.model]
        if model.price_batch:
            batch, standard = (result.tokens / 1e6 * price for price in (model.price_batch, model.price_standard))
            lines.append(
                line("est. cost", f"${batch:,.4f}", f" on the Batch API (${standard:,.4f} at standard prices)")
            )
        lines.append(f"  {'shards':<16}{result.work_dir}")
        return "\n".join(lines)
    lines = [
        f"{result.target} in {db}: {result.target_rows:,} rows of {result.model} FLOAT[{result.dimensions}] "
        f"(job {result.job_id})",
        line("rows", result.rows),
        line("distinct texts", result.distinct_texts),
        line("from cache", result.cached_texts),
        line("embedded", result.embedded_texts),
    ]
    if result.failed_texts:
        lines.append(line("failed", result.failed_texts, " (see table embedsql.errors)"))
    lines.append(line("skipped rows", skipped, reasons))
    lines.append(line("time", f"{result.seconds:.1f} s"))
    return "\n".join(lines)


class _Display:
    """Renders library events on stderr: a progress bar on a terminal, sparse lines otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.bar: Any = None
        self.last_line = 0.0
        self.shown = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, Notice):
            self._clear()
            click.echo(event.message, file=self.stream)
        elif isinstance(event, Progress):
            self._progress(event)

    def _progress(self, event: Progress) -> None:
        if event.total == 0:
            return
        if self.tty:
            if self.bar is None:
                self.bar = click.progressbar(length=event.total, label="Embedding", file=self.stream, show_pos=True)
                self.bar.__enter__()
            self.bar.update(event.done - self.shown)
            self.shown = event.done
            return
        now = time.monotonic()
        if event.done and (event.done == event.total or now - self.last_line >= 5):
            self.last_line = now
            click.echo(f"embedded {event.done:,}/{event.total:,} texts", file=self.stream)

    def _clear(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def finish(self) -> None:
        """Close the progress bar, if one is open."""
        self._clear()
