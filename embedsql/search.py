"""Nearest rows of a target table to a text, by cosine similarity, joined to columns to show."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import arguments, ledger
from .config import Settings
from .dbt_project import Relation, check_built, resolve_query
from .duck import describe, duck_message, quote
from .embed import Embedder, table_model
from .errors import ConfigError, QueryError
from .readonly import read_only
from .shown import shown_query
from .source import blank
from .target import written_target
from .values import restored, to_arrow

__all__ = ["search"]


def search(
    text: str,
    *,
    table: str,
    k: int = 10,
    show: str | None = None,
    columns: Sequence[str] = (),
    where: str | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    settings: Settings | None = None,
    **overrides: Any,
) -> pa.Table:
    """The ``k`` rows of ``table`` nearest to ``text``: their key, the ``show`` query's columns (or
    ``columns`` of the source table) and ``score``, best first; equal scores in key order.

    The similarity column is ``score``, or ``score_1`` (``score_2``, ...) when a key or shown column
    is already called ``score`` in any letter case, as DuckDB names a repeated column. ``where`` is
    SQL over the returned columns, under those names, applied before ranking. Rows whose score is not
    a number (a zero vector has no direction) are never returned. Pass ``con`` (from
    ``embedsql.connect``) to search repeatedly without opening the database, and reading the table,
    each time. Values are DuckDB's, as ``embedsql.sql`` returns them.
    """
    if blank(arguments.text("text", text)):
        raise ConfigError("the search text is empty; pass the words to search for.")
    table, k = arguments.text("table", table), arguments.whole("k", k, least=1)
    show, where = arguments.optional_text("show", show), arguments.optional_text("where", where)
    columns = arguments.column_names("columns", columns)
    if con is not None and not isinstance(con, duckdb.DuckDBPyConnection):
        raise ConfigError(f"argument con must be a connection from embedsql.connect(), got {con!r}")
    settings = arguments.call_settings(settings, overrides, function=search)
    relations: list[Relation] = []
    if show is not None:
        show, relations = resolve_query(show, settings.dbt_project, db=settings.db)
    own = con is None
    with ledger.explained(settings.db):
        # It writes the cache where there is one, but never starts a ledger (a table it can search has one).
        con = ledger.connect(settings.db, wait=settings.lock_wait, create_ledger=False) if con is None else con
        try:
            check_built(con, relations)
            return _search(con, text, table, k, show, columns, where, settings)
        finally:
            if own:
                con.close()


def _search(
    con: duckdb.DuckDBPyConnection,
    text: str,
    table: str,
    k: int,
    show: str | None,
    columns: Sequence[str],
    where: str | None,
    settings: Settings,
) -> pa.Table:
    if where:  # before anything is embedded
        where = _checked_where(con, where)
    target, recorded = written_target(con, table)
    choice = table_model(target, recorded, settings)
    keys = list(recorded.key_columns)
    source = shown_query(con, target.sql, keys, show, columns)  # checked before anything is embedded
    # The similarity column takes the first name none of the user's columns has, as DuckDB names a
    # repeated column; every name below is the user's or this one, so none can stand for another.
    try:
        shown = [name for name, _ in describe(con, f"SELECT * FROM (\n{source}\n) AS s")] if source else []
    except duckdb.Error as e:  # --columns naming a column the table lacks
        raise QueryError(f"the search failed: {duck_message(e)} Check --where, --show and --columns.") from e
    score = quote(_similarity_name([*keys, *shown]))
    embedder = Embedder(con, choice, settings)
    try:
        vector = embedder.vectors([text])[0]
    finally:
        embedder.close()
    key_list = ", ".join(quote(c) for c in keys)
    scored = (
        f"SELECT {key_list}, array_cosine_similarity(embedding, $vector::FLOAT[{choice.dimensions}]) AS {score} "
        f"FROM {target.sql}"
    )
    order = f"ORDER BY {score} DESC, {key_list} LIMIT {int(k)}"
    params = {"vector": np.asarray(vector, np.float32).tolist()}
    valid = f"{score} IS NOT NULL AND NOT isnan({score})"
    r_keys, h_keys = (", ".join(f"{alias}.{quote(c)}" for c in keys) for alias in ("r", "h"))
    try:
        if where:
            relation = scored
            if source:
                relation = (
                    f"SELECT {r_keys}, s.* EXCLUDE ({key_list}), r.{score} "
                    f"FROM ({scored}) AS r JOIN (\n{source}\n) AS s USING ({key_list})"
                )
            return to_arrow(
                con.sql(f"SELECT * FROM ({relation}) WHERE {valid} AND (\n{where}\n) {order}", params=params)
            )
        # Rank first, then join the few hits to the shown columns. NaN and NULL scores are rare (a zero
        # or NULL vector), and filtering every row for them costs more than the ranking: check the hits.
        hits = to_arrow(con.sql(f"{scored} {order}", params=params))
        scores = hits.column(len(keys))
        if hits.num_rows and (scores.null_count or pc.any(pc.is_nan(scores)).as_py()):
            hits = to_arrow(con.sql(f"SELECT * FROM ({scored}) WHERE {valid} {order}", params=params))
        if source is None:
            return hits
        # A name no query of the user's reads: the --show query runs while it is registered.
        hits_view = f"_embedsql_hits_{secrets.token_hex(8)}"
        con.register(hits_view, hits)
        try:
            return to_arrow(
                con.sql(
                    f"SELECT {h_keys}, s.* EXCLUDE ({key_list}), h.{score} "
                    f"FROM ({restored(hits_view, hits.schema)}) AS h LEFT JOIN (\n{source}\n) AS s USING ({key_list}) "
                    f"ORDER BY h.{score} DESC, {h_keys}"
                )
            )
        finally:
            con.unregister(hits_view)
    except duckdb.Error as e:
        raise QueryError(f"the search failed: {duck_message(e)} Check --where, --show and --columns.") from e


def _similarity_name(columns: Sequence[str]) -> str:
    """``score``, or the first of ``score_1``, ``score_2``... that none of ``columns`` is called (in any
    letter case, as DuckDB compares names)."""
    taken = {c.lower() for c in columns}
    return next(name for n in range(len(taken) + 1) if (name := f"score_{n}" if n else "score") not in taken)


def _checked_where(con: duckdb.DuckDBPyConnection, where: str) -> str:
    """``where`` if it is one SQL expression that only reads (the rule of ``read_only``)."""
    try:
        duckdb.SQLExpression(where)
    except duckdb.Error as e:
        raise QueryError(f"--where must be one SQL condition: {duck_message(e)} Check its SQL.") from e
    read_only(con, f"SELECT 1 WHERE (\n{where}\n)", what="--where")
    return where
