"""The columns a user asks to see beside a table embedsql wrote (``--show`` SQL, or ``--columns`` of
its source table), as SQL keyed like the table: search shows them beside each hit, map on hover and
in its cluster labels."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence

import duckdb

from .duck import describe, duck_message, quote
from .errors import ConfigError, QueryError
from .readonly import ReadOnlySql, read_only
from .target import TargetName, parse_target

__all__ = ["newest_query", "shown_query"]


def shown_query(
    con: duckdb.DuckDBPyConnection, target: str, keys: list[str], show: str | None, columns: Sequence[str]
) -> str | None:
    """SQL for the columns to show beside each hit, keyed like the target; None: the key alone."""
    if show and columns:
        raise ConfigError("pass either --show or --columns, not both.")
    if columns:
        table = _source_table(con, target)
        extra = ", ".join(quote(c) for c in columns if c not in keys)
        return f"SELECT {', '.join(quote(c) for c in keys)}{', ' + extra if extra else ''} FROM {table}"
    if not show:
        return None
    checked = read_only(con, show, what="the --show query")
    try:
        returned = [name for name, _ in describe(con, checked.sql)]
    except duckdb.Error as e:
        raise QueryError(f"the --show query failed: {duck_message(e)} Check its SQL.") from e
    if all(k in returned for k in keys):
        return checked.sql
    return _with_keys(con, checked, keys)


def _with_keys(con: duckdb.DuckDBPyConnection, show: ReadOnlySql, keys: list[str]) -> str:
    """``show`` with the key columns added to its select list (parsed and rewritten by DuckDB itself),
    so that `select title from movies` can be joined back to the hits."""
    tree = copy.deepcopy(show.tree)
    statements = tree.get("statements") or []
    node = statements[0]["node"] if len(statements) == 1 and not tree.get("error") else {}
    if node.get("type") != "SELECT_NODE":
        raise QueryError(
            f"the --show query must return the key column(s) {', '.join(keys)} so its rows can be matched "
            "to the hits; add them to its select list."
        )
    node["select_list"] = [
        {"class": "COLUMN_REF", "type": "COLUMN_REF", "alias": key, "query_location": 0, "column_names": [key]}
        for key in keys
    ] + node["select_list"]
    rewritten = con.execute("SELECT json_deserialize_sql(?)", [json.dumps(tree)]).fetchall()[0][0]
    try:
        describe(con, rewritten)
    except duckdb.Error as e:
        raise QueryError(
            f"the --show query does not return the key column(s) {', '.join(keys)} and they cannot be added to "
            f"it ({duck_message(e)}) Add them to its select list."
        ) from e
    return str(rewritten)


def newest_query(con: duckdb.DuckDBPyConnection, name: TargetName) -> str | None:
    """The query of the newest complete job into table ``name``, or None."""
    jobs = con.execute("SELECT target, query FROM embedsql.jobs WHERE status = 'complete' ORDER BY job_id DESC")
    # Any spelling of the table: a job recorded before names were resolved may spell it otherwise.
    return next((str(query) for into, query in jobs.fetchall() if parse_target(into).key == name.key), None)


def _source_table(con: duckdb.DuckDBPyConnection, target: str) -> str:
    """The one table that the newest complete job into ``target`` read."""
    name = parse_target(target)
    query = newest_query(con, name)
    tables = sorted(con.get_table_names(query, qualified=True)) if query is not None else []
    if len(tables) != 1:
        raise ConfigError(
            "--columns needs the table the embeddings came from, but the query that wrote "
            f'{name} read {len(tables)} tables. Use --show "select key, ... from ..." instead.'
        )
    return tables[0].split(" AS ")[0]
