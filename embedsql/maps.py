"""``embedsql map``: a table of embeddings laid out in 2-D, written back to DuckDB, drawn as a page or
a picture.

The map table (``<table>_map`` beside the source, or ``--into``) holds one row per row of the source
that has a vector (or of its ``--sample``): the key columns, ``x``, ``y``, ``cluster`` (0 the cluster
of most rows, -1 for a row in none) and ``cluster_label``. Rows with the same vector are one point of the
layout (the movies' 62,423 rows are 1,639 points). It is recorded in ``embedsql.maps`` with a
fingerprint of the source's keys and vectors, the sample, the seed and the method: on an unchanged
source a second run reads the map back instead of laying it out again (the labels alone are made
again when they come from another query).

Labels and hover texts come from the ``--show`` query, or by default from the query of the job that
wrote the table (the very texts that were embedded). Nothing is written until the map is made: a
failure leaves every table as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import arguments, arrays, ledger
from .config import Settings
from .dbt_project import check_built, resolve_query
from .duck import describe, duck_message, literal, quote
from .errors import ConfigError, InputError, QueryError, TargetError
from .events import EventHandler, Progress, ignore
from .projection import FEWEST, METHOD, SEED, cluster_labels, project, require
from .shown import newest_query, shown_query
from .source import KEY_TYPES_SUPPORTED, key_type
from .target import TargetName, TargetRecord, lookup, parse_target, written_target

__all__ = ["DRAWN", "MapResult", "make_map", "map", "map_name"]

# What ``-o`` can write, by file extension.
DRAWN = (".html", ".png")
# The columns of a map table after the keys.
_COLUMNS = ("x", "y", "cluster", "cluster_label")


@dataclass(frozen=True)
class MapResult:
    """What ``make_map`` made: the map table's name and rows, the shown columns of each row (for
    the drawings), and how it came to be."""

    table: TargetName
    source: TargetName
    rows: pa.Table  # keys, x, y, cluster, cluster_label
    shown: pa.Table | None  # keys and the --show columns, in the order of ``rows``; None without
    points: int
    clusters: int
    sample: int | None
    reused: bool
    files: tuple[Path, ...]


def map_name(source: TargetName) -> TargetName:
    """The map table of ``source`` when ``--into`` names none: ``<table>_map`` in the same schema."""
    return TargetName(source.schema, f"{source.table}_map")


def make_map(
    table: str,
    *,
    settings: Settings,
    show: str | None = None,
    color: str | None = None,
    output: Sequence[str | Path] = (),
    sample: int | None = None,
    into: str | None = None,
    seed: int = SEED,
    on_event: EventHandler = ignore,
) -> MapResult:
    """Lay out ``table`` (a table embedsql wrote) in 2-D, write the map table and the ``output`` files
    (what ``embedsql map`` does; ``map`` is the same for Python, returning the rows).

    The database is open while the vectors are read and while the map is written, not while they are
    laid out (minutes for millions of vectors): like a job that waits, a map never keeps it locked.
    """
    outputs = [_checked_output(Path(path), settings.db) for path in output]
    require()
    step = _Steps(on_event)
    with ledger.explained(settings.db):
        with _connection(settings) as con:
            plan = _plan(con, table, settings, show, color, sample, into, seed)
            if plan.reused is None:
                plan.read = _read(con, plan, step)
        rows = _placed(_points(plan), plan, step) if plan.reused is None else plan.reused
        with _connection(settings) as con:
            if plan.reused is None or _labels_of(con, plan.name) != plan.labels_from:
                rows = rows.set_column(rows.num_columns - 1, "cluster_label", _labels(con, rows, plan, step))
                if plan.reused is None:
                    step("writing the map table")
                _write(con, rows, plan, into)
            shown = _shown_rows(con, rows, plan.keys, plan.labels_from) if plan.labels_from else None
    cluster = arrays.numbers(rows.column("cluster"))
    result = MapResult(
        table=plan.name,
        source=plan.source,
        rows=rows,
        shown=shown,
        points=plan.points,
        clusters=len(np.unique(cluster[cluster >= 0])),
        sample=sample,
        reused=plan.reused is not None,
        files=tuple(outputs),
    )
    for path in outputs:
        step(f"drawing {path.name}")
        _draw(result, path, color=color, keys=plan.keys)
    return result


@contextlib.contextmanager
def _connection(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    con = ledger.connect(settings.db, wait=settings.lock_wait, create_ledger=False)
    try:
        yield con
    finally:
        con.close()


@dataclass
class _Plan:
    """What a map is made of, read while the database is open: the names, the fingerprint, and either
    the map's rows when it is reused or the vectors to lay out."""

    source: TargetName
    recorded: TargetRecord
    keys: list[str]
    name: TargetName
    labels_from: str | None
    fingerprint: str
    sample: int | None
    seed: int
    # The rows of the map already in the table (labels included), when its fingerprint is this one.
    reused: pa.Table | None
    points: int = 0
    # Rows to lay out: each row's point (an index into ``vectors``), and the distinct vectors.
    point: np.ndarray | None = None
    vectors: np.ndarray | None = None
    # The rows as read (keys, vector, its hash), until ``_points`` takes them (and their memory) away.
    read: pa.Table | None = None


def _plan(
    con: duckdb.DuckDBPyConnection,
    table: str,
    settings: Settings,
    show: str | None,
    color: str | None,
    sample: int | None,
    into: str | None,
    seed: int,
) -> _Plan:
    """Check every argument against the database (nothing is laid out for a map that cannot be written)."""
    source, recorded = written_target(con, table, flag="embedsql map")
    keys = list(recorded.key_columns)
    _check_key_types(con, source, keys)
    name = _map_table(con, source, into)
    shown_sql = None
    if show is not None:
        show, relations = resolve_query(show, settings.dbt_project, db=settings.db)
        check_built(con, relations)
        shown_sql = shown_query(con, source.sql, keys, show, ())
    labels_from = shown_sql or _job_query(con, source)
    if color is not None:
        _check_color(color, _shown_columns(con, labels_from, keys) if labels_from else None, show)
    fingerprint = _fingerprint(con, source, keys, recorded, sample, seed)
    plan = _Plan(source, recorded, keys, name, labels_from, fingerprint, sample, seed, reused=None)
    found = _recorded(con, name, fingerprint, keys)
    if found is not None:
        plan.reused, plan.points = found
    return plan


def _check_key_types(con: duckdb.DuckDBPyConnection, source: TargetName, keys: list[str]) -> None:
    """Refuse keys embedsql run would not have taken (a table made by hand): the map puts its rows in
    key order and joins them back by key, which such types (INTERVAL, TIME WITH TIME ZONE, ...) break."""
    types = describe(con, f"SELECT {', '.join(quote(k) for k in keys)} FROM {source.sql}")
    for name, type_name in types:
        if not key_type(type_name):
            raise InputError(
                f"table {source} has the key column {name!r} of type {type_name}, which cannot serve as a key "
                f"(supported: {KEY_TYPES_SUPPORTED}). Embed it again with a key of one of those types (embedsql run)."
            )


class _Steps:
    """Reports each step of making a map (stage "map"), numbered as they come."""

    def __init__(self, on_event: EventHandler) -> None:
        self.on_event = on_event
        self.done = 0

    def __call__(self, name: str) -> None:
        self.done += 1
        self.on_event(Progress("map", self.done, 0, step=name))


def _checked_output(path: Path, db: Path) -> Path:
    path = arguments.path("output", path)
    if path.resolve() in (db.resolve(), db.resolve().with_name(db.name + ".wal")):
        raise ConfigError(f"-o {str(path)!r} is the database itself; name another file for the map.")
    if path.suffix.lower() not in DRAWN:
        raise ConfigError(
            f"-o {str(path)!r}: embedsql map draws a page (.html) or a picture (.png); name the file with one "
            "of those extensions."
        )
    if path.is_dir():
        raise ConfigError(f"-o {str(path)!r} is a folder; name the file to write, like {path / ('map' + path.suffix)}.")
    folder = path.parent
    if not folder.is_dir():  # before minutes of layout, not after
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise ConfigError(f"-o {str(path)!r}: {str(folder)!r} {what}. Create the folder, or write the file elsewhere.")
    return path


def _map_table(con: duckdb.DuckDBPyConnection, source: TargetName, into: str | None) -> TargetName:
    """The map table's name as the database spells it; refused when a table or view that is not
    embedsql's map of ``source`` has it."""
    wanted = map_name(source) if into is None else parse_target(arguments.text("into", into), flag="--into")
    name, kind = lookup(con, wanted, flag="--into")
    if name.key == source.key:
        raise ConfigError(f"--into {into} is the table being mapped; name another table for the map.")
    if kind == "view":
        raise TargetError(f"{name} is a view; embedsql writes a map into a table of its own. Pass another --into.")
    record = _record(con, name) if kind == "table" else None
    if kind == "table" and record is None:
        raise TargetError(
            f"table {name} already exists and was not written by embedsql map. Pass another --into, "
            f"or drop it first (DROP TABLE {name.sql})."
        )
    if record is not None and parse_target(record[5]).key != source.key:
        raise TargetError(
            f"table {name} is the map of {parse_target(record[5])}, not of {source}. Pass another --into, "
            f"or drop it first (DROP TABLE {name.sql})."
        )
    return name


def _record(con: duckdb.DuckDBPyConnection, name: TargetName) -> tuple[Any, ...] | None:
    """The ``embedsql.maps`` row of map table ``name`` (any spelling), if the table is still embedsql's."""
    rows = con.execute(
        "SELECT table_name, fingerprint, points, labels_from, key_columns, source_table FROM embedsql.maps "
        "ORDER BY updated_at DESC"
    ).fetchall()
    found = [row for row in rows if parse_target(row[0]).key == name.key]
    if not found:
        return None
    comment = con.execute(
        "SELECT comment FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ? "
        "AND table_name = ?",
        [name.schema or "main", name.table],
    ).fetchall()
    if not comment or comment[0][0] != _comment(found[0][1]):
        return None  # dropped and made again by someone else
    return found[0]


def _comment(fingerprint: str) -> str:
    return f"embedsql map {fingerprint[:16]}"


def _recorded(
    con: duckdb.DuckDBPyConnection, name: TargetName, fingerprint: str, keys: list[str]
) -> tuple[pa.Table, int] | None:
    """The rows of map table ``name`` and its points, when it was made from the same vectors the same way."""
    record = _record(con, name)
    if record is None or record[1] != fingerprint or list(record[4]) != keys:
        return None
    columns = ", ".join([*(quote(k) for k in keys), *_COLUMNS])
    order = ", ".join(quote(k) for k in keys)
    rows = _arrow(con, f"SELECT {columns} FROM {name.sql} ORDER BY {order}")
    return rows, int(record[2])


def _labels_of(con: duckdb.DuckDBPyConnection, name: TargetName) -> str | None:
    record = _record(con, name)
    return None if record is None else record[3]


def _job_query(con: duckdb.DuckDBPyConnection, source: TargetName) -> str | None:
    """The query of the newest complete job into ``source``, when it still runs: its texts label the map."""
    query = newest_query(con, source)
    if query is None:
        return None
    try:
        describe(con, query)
    except duckdb.Error:
        return None  # its tables are gone or changed: the clusters get numbers for labels
    return query


def _shown_columns(con: duckdb.DuckDBPyConnection, sql: str, keys: list[str]) -> list[str]:
    return [name for name, _ in describe(con, sql) if name not in keys]


def _check_color(color: str, shown: list[str] | None, show: str | None) -> None:
    if color in ("cluster", "cluster_label") or (shown and color in shown):
        return
    where = "the --show query" if show is not None else "the job's query (pass --show to choose the columns)"
    columns = ", ".join(["cluster", "cluster_label", *(shown or [])])
    raise ConfigError(f"--color {color!r} is not a column of {where}. Colour by one of: {columns}.")


def _fingerprint(
    con: duckdb.DuckDBPyConnection,
    source: TargetName,
    keys: list[str],
    recorded: Any,
    sample: int | None,
    seed: int,
) -> str:
    """What the map depends on: the source's keys and vectors (their count and an order-free hash), the
    sample, the seed and the method."""
    key_list = ", ".join(quote(k) for k in keys)
    count, digest = con.execute(f"SELECT count(*), bit_xor(hash({key_list}, embedding)) FROM {source.sql}").fetchall()[
        0
    ]
    # projection.METHOD: a change to how maps are made makes them again.
    parts = [METHOD, recorded.model, str(recorded.dimensions), str(count), str(digest), str(sample), str(seed)]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _read(con: duckdb.DuckDBPyConnection, plan: _Plan, step: _Steps) -> pa.Table:
    """The rows to map: their keys, vector and the vector's hash, in no order (``_points`` orders them:
    a sort in DuckDB would carry the vectors, and two sorts by the vectors took 8.4 GiB and 22 s for a
    million 384-d vectors)."""
    step("reading the vectors")
    key_list = ", ".join(quote(k) for k in plan.keys)
    rows_sql = f"SELECT {key_list}, embedding FROM {plan.source.sql} WHERE embedding IS NOT NULL"
    if plan.sample is not None:
        # The same sample for the same table: the rows whose hashed key comes first.
        rows_sql += f" ORDER BY hash({key_list}, {int(plan.seed)}), {key_list} LIMIT {int(plan.sample)}"
    return _arrow(con, f"SELECT {key_list}, embedding, hash(embedding) AS _hash FROM ({rows_sql})")


def _points(plan: _Plan) -> pa.Table:
    """The rows read (``plan.read``, taken off the plan) as their keys in key order; into ``plan``,
    each row's point and the distinct vectors, numbered as their first rows come (the same table, the
    same order, the same map). Rows with the same vector are grouped by their hash and a comparison."""
    assert plan.read is not None
    read, plan.read = plan.read, None
    column = read.column("embedding")
    dimensions = column.type.list_size
    parts = [arrays.numbers(chunk.flatten()).reshape(-1, dimensions) for chunk in column.chunks]
    vectors = parts[0] if len(parts) == 1 else np.concatenate(parts or [np.zeros((0, dimensions), np.float32)])
    hashes = arrays.numbers(read.column("_hash"))
    keys = read.select(plan.keys)
    # The vectors' Arrow buffers go now, unless ``vectors`` is a view of the one chunk.
    del read, column, parts
    order = arrays.numbers(pc.sort_indices(keys, sort_keys=[(k, "ascending") for k in plan.keys]))
    rows = keys.take(order)
    broken = ~_finite(vectors)[order]
    if broken.any():
        first = rows.slice(int(np.argmax(broken)), 1).to_pylist()[0]
        key = ", ".join(f"{k} = {v!r}" for k, v in first.items())
        raise InputError(
            f"table {plan.source} holds {int(broken.sum()):,} vector(s) with NaN or infinite numbers, e.g. the row "
            f"where {key}; no map can place them. Embed those rows again, or delete them from the table."
        )
    point, firsts = _grouped(vectors, hashes, order)
    plan.point = point[order]
    plan.points = len(firsts)
    if plan.points < FEWEST:
        where, larger = (" in the sample", ", or pass a larger --sample") if plan.sample is not None else ("", "")
        raise InputError(
            f"table {plan.source} has {plan.points:,} distinct vector(s){where}; a map needs at least {FEWEST}. "
            f"Embed more rows first (embedsql run){larger}."
        )
    plan.vectors = vectors[firsts]
    return rows


# Rows of vectors compared at a time (~100 MB of 384-d vectors).
_COMPARED = 65_536


def _finite(vectors: np.ndarray) -> np.ndarray:
    """For each row, whether all its numbers are finite (by blocks: no temporary the size of ``vectors``)."""
    finite = np.empty(len(vectors), dtype=bool)
    for start in range(0, len(vectors), _COMPARED):
        finite[start : start + _COMPARED] = np.isfinite(vectors[start : start + _COMPARED]).all(axis=1)
    return finite


def _grouped(vectors: np.ndarray, hashes: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows with equal vectors as one point: each row's point and a row of each point, points
    numbered as their first rows come in ``order`` (row indexes). ``hashes`` (of each row's vector)
    propose the groups; every row is compared with its group's first (a group's first, and every row
    when all vectors differ, needs no comparison), and if two vectors share a hash the rows are grouped
    by the vectors themselves."""
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    later = np.flatnonzero(first[inverse] != np.arange(len(inverse)))
    if not all(
        np.array_equal(vectors[rows], vectors[first[inverse[rows]]])
        for rows in (later[start : start + _COMPARED] for start in range(0, len(later), _COMPARED))
    ):
        _, first, inverse = np.unique(vectors, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    place = np.empty(len(order), dtype=np.int64)
    place[order] = np.arange(len(order))
    met = np.full(len(first), len(order), dtype=np.int64)
    np.minimum.at(met, inverse, place)
    by_met = np.argsort(met, kind="stable")
    number = np.empty(len(first), dtype=np.int64)
    number[by_met] = np.arange(len(first))
    return number[inverse], first[by_met]


def _placed(rows: pa.Table, plan: _Plan, step: _Steps) -> pa.Table:
    """``rows`` with each one's x, y and cluster (numbered by rows), and an empty cluster_label."""
    assert plan.vectors is not None
    assert plan.point is not None
    projection = project(plan.vectors, seed=plan.seed, on_step=step)
    xy = projection.xy[plan.point]
    rows = rows.append_column("x", arrays.float32s(np.ascontiguousarray(xy[:, 0])))
    rows = rows.append_column("y", arrays.float32s(np.ascontiguousarray(xy[:, 1])))
    rows = rows.append_column("cluster", _by_rows(projection.cluster[plan.point]))
    return rows.append_column("cluster_label", pa.nulls(rows.num_rows, pa.string()))


def _by_rows(cluster: np.ndarray) -> pa.Array:
    """The clusters of the rows (in key order) numbered again by their rows, the most first (ties: the
    one whose first row comes first), as ``select cluster, count(*)`` shows them; -1 stays -1."""
    found = cluster.astype(np.int64)
    clustered = np.flatnonzero(found >= 0)
    if len(clustered) == 0:
        return pa.array(found.astype(np.int32), pa.int32())
    sizes = np.bincount(found[clustered])
    first = np.full(len(sizes), len(found))
    np.minimum.at(first, found[clustered], clustered)
    present = np.flatnonzero(sizes)
    order = present[np.lexsort((first[present], -sizes[present]))]
    renumber = np.full(len(sizes) + 1, -1, dtype=np.int32)  # index c + 1: -1 stays -1
    renumber[order + 1] = np.arange(len(order), dtype=np.int32)
    return pa.array(renumber[found + 1], pa.int32())


def _labels(con: duckdb.DuckDBPyConnection, rows: pa.Table, plan: _Plan, step: _Steps) -> pa.Array:
    """Each row's cluster label: the cluster's most distinctive words of the label query's columns."""
    step("labelling the clusters")
    cluster = arrays.numbers(rows.column("cluster")).astype(np.int64)
    texts: list[str | None] = [None] * rows.num_rows
    if plan.labels_from is not None:
        texts = _texts(con, rows, plan.keys, plan.labels_from)
    names = cluster_labels(cluster, texts)
    return pa.array([names.get(int(c)) for c in cluster], pa.string())


def _texts(con: duckdb.DuckDBPyConnection, rows: pa.Table, keys: list[str], sql: str) -> list[str | None]:
    """The ``sql`` columns other than the keys, joined by spaces, for each row of ``rows`` (in its order)."""
    shown = _shown_columns(con, sql, keys)
    if not shown:
        return [None] * rows.num_rows
    text = "concat_ws(' ', " + ", ".join(f"CAST(s.{quote(c)} AS VARCHAR)" for c in shown) + ")"
    joined = _joined(con, rows, keys, sql, f"{text} AS text")
    return joined.column("text").to_pylist()


def _shown_rows(con: duckdb.DuckDBPyConnection, rows: pa.Table, keys: list[str], sql: str) -> pa.Table:
    """The keys and ``sql``'s other columns (as text) for each row of ``rows``, in its order."""
    shown = _shown_columns(con, sql, keys)
    columns = ", ".join(
        [*(f"r.{quote(k)}" for k in keys), *(f"CAST(s.{quote(c)} AS VARCHAR) AS {quote(c)}" for c in shown)]
    )
    return _joined(con, rows, keys, sql, columns)


def _joined(con: duckdb.DuckDBPyConnection, rows: pa.Table, keys: list[str], sql: str, columns: str) -> pa.Table:
    view = f"_embedsql_map_{secrets.token_hex(8)}"
    con.register(view, rows.select(keys).append_column("_embedsql_row", pa.array(np.arange(rows.num_rows))))
    try:
        # The first row of the query for each key: a --show query may return a key twice.
        joined = _arrow(
            con,
            f"SELECT {columns} FROM {view} AS r LEFT JOIN (SELECT * FROM (\n{sql}\n) "
            f"QUALIFY row_number() OVER (PARTITION BY {', '.join(quote(k) for k in keys)}) = 1) AS s "
            f"USING ({', '.join(quote(k) for k in keys)}) ORDER BY r._embedsql_row",
        )
    except duckdb.Error as e:
        raise QueryError(f"the --show query failed: {duck_message(e)} Check its SQL.") from e
    finally:
        con.unregister(view)
    return joined


def _write(con: duckdb.DuckDBPyConnection, rows: pa.Table, plan: _Plan, into: str | None) -> None:
    """Replace the map table with ``rows`` and record it, in one transaction."""
    view = f"_embedsql_map_{secrets.token_hex(8)}"
    key_types = dict(zip(plan.recorded.key_columns, plan.recorded.key_types, strict=True))
    casts = [f"CAST({quote(k)} AS {key_types[k]}) AS {quote(k)}" for k in plan.keys]
    select = (
        f"SELECT {', '.join(casts)}, CAST(x AS FLOAT) AS x, CAST(y AS FLOAT) AS y, "
        f"CAST(cluster AS INTEGER) AS cluster, CAST(cluster_label AS VARCHAR) AS cluster_label FROM {view}"
    )
    con.register(view, rows)
    try:
        with ledger.transaction(con):
            # Checked again in the transaction that writes: while the vectors were laid out, someone may
            # have made a table or view of that name.
            name = _map_table(con, plan.source, into)
            if name.schema:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(name.schema)}")
            con.execute(f"CREATE OR REPLACE TABLE {name.sql} AS {select}")
            con.execute(f"COMMENT ON TABLE {name.sql} IS {literal(_comment(plan.fingerprint))}")
            # Any earlier spelling of the same table: it is recorded once, as it is spelled now.
            spellings = [t for (t,) in con.execute("SELECT table_name FROM embedsql.maps").fetchall()]
            gone = [t for t in spellings if parse_target(t).key == name.key]
            con.execute("DELETE FROM embedsql.maps WHERE list_contains(?, table_name)", [gone])
            con.execute(
                "INSERT INTO embedsql.maps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
                [
                    name.sql,
                    plan.source.sql,
                    plan.recorded.job_id,
                    plan.fingerprint,
                    plan.keys,
                    rows.num_rows,
                    plan.points,
                    plan.sample,
                    plan.labels_from,
                ],
            )
    finally:
        con.unregister(view)


def _draw(result: MapResult, path: Path, *, color: str | None, keys: list[str]) -> None:
    if path.suffix.lower() == ".png":
        from .mappicture import draw_picture

        draw_picture(result, path, color=color)
    else:
        from .mappage import draw_page

        draw_page(result, path, color=color, keys=keys)


def map(
    table: str,
    *,
    show: str | None = None,
    color: str | None = None,
    output: str | Path | Sequence[str | Path] = (),
    sample: int | None = None,
    into: str | None = None,
    settings: Settings | None = None,
    on_event: EventHandler | None = None,
    **overrides: Any,
) -> pa.Table:
    """Lay out the vectors of ``table`` (a table ``embedsql.run`` wrote) in 2-D, cluster and label them,
    write the map table (``<table>_map``, or ``into``) and draw it into each ``output`` file (``.html``,
    ``.png``). Returns the map's rows: the key columns, x, y, cluster (-1: none) and cluster_label.

    ``show`` is SQL whose columns are shown on hover and label the clusters (default: the texts that
    were embedded); ``color`` one of its columns to colour by (default: the cluster); ``sample`` maps
    that many rows. ``overrides`` are settings (``db=``, ...).
    """
    table = arguments.text("table", table)
    show, color, into = (arguments.optional_text(n, v) for n, v in (("show", show), ("color", color), ("into", into)))
    if sample is not None:
        sample = arguments.whole("sample", sample, least=FEWEST)
    paths = [output] if isinstance(output, str | Path) else list(output)
    settings = arguments.call_settings(settings, overrides, function=map)
    result = make_map(
        table,
        settings=settings,
        show=show,
        color=color,
        output=paths,
        sample=sample,
        into=into,
        on_event=on_event or ignore,
    )
    return result.rows


def _arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """The rows of ``sql`` as an Arrow table."""
    return con.sql(sql).to_arrow_table()
