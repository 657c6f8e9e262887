"""The one rule for the user's SQL that embedsql only reads (``run``'s query, ``search --show`` and
``--where``): one SELECT that has no side effect, decided by DuckDB's own parser.

DuckDB parses the text (``extract_statements`` gives the statements and their types) and describes
the parse tree (``json_serialize_sql``), so what is checked is what DuckDB would run: no second
statement, no write hidden in a WITH clause, no function that changes state or runs SQL the parser
cannot see, also inside the macros the query calls. Reading files (``'docs.parquet'``,
``read_csv(...)``) stays allowed. A passed query is returned as one statement without its trailing
semicolon, ready to be wrapped in a subquery.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb

from .duck import duck_message
from .errors import QueryError

__all__ = ["ReadOnlySql", "read_only"]

# Functions that change the database or the session, or run SQL given as a string (which the
# parser cannot look into). DuckDB marks random() and uuid() as having side effects too: those only
# read, and stay allowed.
_EFFECTS = frozenset(
    {
        *("nextval", "setval", "setseed", "write_log"),
        *("query", "query_table", "json_execute_serialized_sql"),
        *("checkpoint", "force_checkpoint", "truncate_duckdb_logs"),
        *("enable_logging", "disable_logging", "enable_profiling", "disable_profiling"),
        *("add_grammar_extension", "remove_grammar_extension"),
        *("create_external_resource", "destroy_external_resource"),
        *("register_external_resource", "register_external_resource_type", "deregister_external_resource"),
        # Extensions' functions that attach or write to other databases.
        *("sqlite_attach", "postgres_attach", "postgres_execute", "mysql_execute", "mysql_clear_cache"),
        *("pg_clear_cache", "postgres_clear_cache", "ducklake_add_data_files", "ducklake_set_option"),
    }
)
# Parse-tree nodes of a query that only reads; any other (DELETE_QUERY_NODE in a WITH clause, ...) writes.
_READING_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
_ADVICE = "embedsql only reads data"


@dataclass(frozen=True)
class ReadOnlySql:
    """A checked query: its text as one statement, and DuckDB's parse tree of it."""

    sql: str
    tree: dict[str, Any]

    def tables(self) -> frozenset[str]:
        """Names of the tables (and files) the query reads, as written, without the WITH clause's own."""
        ctes = {key.lower() for node in _nodes(self.tree) for key in _cte_names(node)}
        return frozenset(
            node["table_name"]
            for node in _nodes(self.tree)
            if node.get("type") == "BASE_TABLE" and node["table_name"].lower() not in ctes
        )


def read_only(con: duckdb.DuckDBPyConnection, sql: str, *, what: str = "the query") -> ReadOnlySql:
    """``sql`` if it is one SELECT that only reads; otherwise a ``QueryError`` that says why.

    ``what`` names the SQL in the messages ("the query", "the --show query", "--where").
    """
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise QueryError(f"{duck_message(e)} Check the SQL of {what}.") from e
    if not statements:
        raise QueryError(f"{what} holds only comments. Pass a SELECT statement.")
    if len(statements) != 1:
        raise QueryError(f"{what} holds {len(statements)} statements; pass exactly one SELECT.")
    # DuckDB types INSTALL as LOAD, and UPDATE EXTENSIONS as a type its Python module cannot name:
    # those are named by their first keyword (after FORCE) instead.
    query = statements[0].query
    words = [query[p:].split()[0].upper() for p, t in duckdb.tokenize(query) if t != duckdb.token_type.comment]
    words = words[1:] if words[:1] == ["FORCE"] else words
    kind = words[0] if words[:1] in (["INSTALL"], ["UPDATE"]) else statements[0].type.name
    if kind == "MULTI":  # DuckDB runs a PIVOT with no IN list as statements that first look up its columns
        raise QueryError(
            f"{what} holds a PIVOT whose columns DuckDB must look up first, by running more than one statement. "
            "Name its columns: PIVOT ... ON col IN ('a', 'b') ..."
        )
    if kind != "SELECT":
        article = "an" if kind[0] in "AEIOU" else "a"
        raise QueryError(f"{_ADVICE}: {what} is {article} {kind} statement. Pass a SELECT (or FROM) query.")
    text = _one_statement(sql)
    tree = _tree(con, text)
    if tree.get("error"):
        raise QueryError(
            f"embedsql cannot check that {what} only reads data: DuckDB cannot describe its parse tree "
            f"({tree.get('error_message', 'no reason given')}). Write that part (a PIVOT inside a "
            "subquery, say) as plain SELECT ... GROUP BY."
        )
    _check(con, tree, what, seen=set())
    return ReadOnlySql(text, tree)


def _check(con: duckdb.DuckDBPyConnection, tree: dict[str, Any], what: str, *, seen: set[str]) -> None:
    for node in _nodes(tree):
        kind = node.get("type")
        if isinstance(kind, str) and kind.endswith("_NODE") and kind not in _READING_NODES:
            statement = kind.removesuffix("_NODE").removesuffix("_QUERY")
            raise QueryError(
                f"{_ADVICE}: {what} holds {'an' if statement[0] in 'AEIOU' else 'a'} {statement} (in a WITH "
                "clause or a subquery). Pass a query that only reads."
            )
        if node.get("class") == "PARAMETER":
            raise QueryError(
                f"{what} has parameters (? or $1), and embedsql has no values to give them. Write the values "
                "into the SQL instead."
            )
        name = node.get("function_name")
        if isinstance(name, str):
            _check_function(con, name.lower(), what, seen)


def _check_function(con: duckdb.DuckDBPyConnection, name: str, what: str, seen: set[str]) -> None:
    if name in _EFFECTS:
        raise QueryError(
            f"{_ADVICE}: {what} calls {name}(), which changes the database or runs other SQL. Take it "
            "out (for numbering rows, use row_number() OVER ())."
        )
    if name in seen:
        return
    seen.add(name)
    # A macro's body is SQL too: check what the query runs through it.
    macros = con.execute(
        "SELECT function_type, macro_definition FROM duckdb_functions() "
        "WHERE lower(function_name) = ? AND function_type IN ('macro', 'table_macro') AND NOT internal",
        [name],
    ).fetchall()
    for kind, definition in macros:
        body = _tree(con, definition if kind == "table_macro" else f"SELECT {definition}")
        if body.get("error"):
            raise QueryError(
                f"embedsql cannot check that {what} only reads data: DuckDB cannot describe the body of "
                f"macro {name} ({body.get('error_message')}). Write the query without it."
            )
        _check(con, body, what, seen=seen)


def _one_statement(sql: str) -> str:
    """``sql`` without the semicolons and comments after its last token, so that it can be wrapped."""
    end = len(sql)
    for position, kind in reversed(duckdb.tokenize(sql)):
        if kind == duckdb.token_type.comment or (kind == duckdb.token_type.operator and sql[position] == ";"):
            end = position
            continue
        break
    return sql[:end].strip()


def _tree(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
    tree: dict[str, Any] = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    return tree


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every object of the parse tree."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _cte_names(node: dict[str, Any]) -> list[str]:
    cte_map = node.get("cte_map")
    return [entry["key"] for entry in cte_map.get("map", [])] if isinstance(cte_map, dict) else []
