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

# Scalar functions DuckDB marks as having side effects that only read: they are allowed. Every other
# scalar function so marked (nextval, setval, setseed, write_log, and those of extensions) is refused,
# so that a function DuckDB adds later is refused until it is known to only read.
_READING_VOLATILE = frozenset(
    {
        *("random", "uuid", "gen_random_uuid", "uuidv4", "uuidv7", "currval", "error", "sleep_ms"),
        *("current_connection_id", "current_query", "current_query_id", "current_transaction_id"),
        *("stats", "vector_type"),
    }
)
# Table functions carry no such mark in DuckDB's catalog: those that change the database or the session,
# or run SQL given as a string (which the parser cannot look into), by name.
_EFFECTING_TABLE_FUNCTIONS = frozenset(
    {
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
        nodes = [node for node, _ in _scoped_nodes(self.tree)]
        ctes = frozenset(name.lower() for node in nodes for name in _cte_names(node))
        return frozenset(
            node["table_name"] for node in nodes if node.get("type") == "BASE_TABLE" and not _is_cte(node, ctes)
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
    _Checker(con, what).check(tree, via="")
    return ReadOnlySql(text, tree)


class _Checker:
    """Walks a parse tree, and the bodies of the views and macros it reads through, once each."""

    def __init__(self, con: duckdb.DuckDBPyConnection, what: str) -> None:
        self.con = con
        self.what = what
        self.seen: set[tuple[str, ...]] = set()
        # The functions DuckDB marks as having side effects, and the macros (the user's, and those of
        # extensions) whose bodies a query runs through: read from the catalog at the first function
        # the query (or a view or macro it reads through) calls, once. Listing DuckDB's ~3,000
        # functions costs ~30 ms, which a query that calls none (select id, body from docs) never pays.
        self._catalog: tuple[set[str], dict[str, list[str]]] | None = None

    def catalog(self) -> tuple[set[str], dict[str, list[str]]]:
        """(names of the functions with side effects, bodies of the macros by name)."""
        if self._catalog is None:
            effecting = set(_EFFECTING_TABLE_FUNCTIONS)
            macros: dict[str, list[str]] = {}
            for name, kind, effects, definition in self.con.execute(
                "SELECT lower(function_name), function_type, has_side_effects, macro_definition "
                "FROM duckdb_functions() WHERE (has_side_effects AND function_type = 'scalar') "
                "OR (function_type IN ('macro', 'table_macro') AND NOT internal)"
            ).fetchall():
                if effects and name not in _READING_VOLATILE:
                    effecting.add(name)
                elif kind in ("macro", "table_macro"):
                    macros.setdefault(name, []).append(definition if kind == "table_macro" else f"SELECT {definition}")
            self._catalog = (effecting, macros)
        return self._catalog

    def check(self, tree: dict[str, Any], *, via: str) -> None:
        """Refuse what ``tree`` writes or runs; ``via`` names the view or macro it is the body of."""
        for node, ctes in _scoped_nodes(tree):
            kind = node.get("type")
            if isinstance(kind, str) and kind.endswith("_NODE") and kind not in _READING_NODES:
                statement = kind.removesuffix("_NODE").removesuffix("_QUERY")
                raise QueryError(
                    f"{_ADVICE}: {self.what}{via} holds {'an' if statement[0] in 'AEIOU' else 'a'} {statement} "
                    "(in a WITH clause or a subquery). Pass a query that only reads."
                )
            if node.get("class") == "PARAMETER":
                raise QueryError(
                    f"{self.what}{via} has parameters (? or $1), and embedsql has no values to give them. Write "
                    "the values into the SQL instead."
                )
            name = node.get("function_name")
            if isinstance(name, str):
                self._function(name.lower(), via)
            if kind == "BASE_TABLE" and not _is_cte(node, ctes):
                self._views(node, via)

    def _function(self, name: str, via: str) -> None:
        effects, macros = self.catalog()
        if name in effects:
            raise QueryError(
                f"{_ADVICE}: {self.what}{via} calls {name}(), which changes the database or runs other SQL. "
                "Take it out (for numbering rows, use row_number() OVER ())."
            )
        if ("function", name) in self.seen:
            return
        self.seen.add(("function", name))
        # A macro's body is SQL too: check what the query runs through it.
        for body in macros.get(name, []):
            self._body(body, f"macro {name}")

    def _views(self, node: dict[str, Any], via: str) -> None:
        """Check the body of every view the name of ``node`` may resolve to (a view is SQL DuckDB runs
        in place of its name: one that calls nextval() would run it through the query)."""
        name = (node.get("catalog_name") or "", node.get("schema_name") or "", node["table_name"])
        if ("view", *name) in self.seen:
            return
        self.seen.add(("view", *name))
        catalog, schema, table = (part.lower() for part in name)
        views = self.con.execute(
            "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal AND lower(view_name) = $table "
            "AND ($schema = '' OR lower(schema_name) = $schema OR ($catalog = '' AND lower(database_name) = $schema)) "
            "AND ($catalog = '' OR lower(database_name) = $catalog)",
            {"catalog": catalog, "schema": schema, "table": table},
        ).fetchall()
        for view, definition in views:
            self._body(_view_query(definition), f"view {view}")

    def _body(self, sql: str, name: str) -> None:
        body = _tree(self.con, sql)
        if body.get("error"):
            raise QueryError(
                f"embedsql cannot check that {self.what} only reads data: DuckDB cannot describe the body of "
                f"{name} ({body.get('error_message')}). Write the query without it."
            )
        self.check(body, via=f" (through {name})")


def _view_query(definition: str) -> str:
    """The SELECT of a view's ``CREATE VIEW name [(columns)] AS <select>`` (from ``duckdb_views()``)."""
    tokens = duckdb.tokenize(definition)
    ends = [position for position, _ in tokens[1:]] + [len(definition)]
    for (position, kind), end in zip(tokens, ends, strict=True):
        if kind == duckdb.token_type.keyword and definition[position:end].strip().upper() == "AS":
            return _one_statement(definition[end:])
    return _one_statement(definition)


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


def _scoped_nodes(tree: Any) -> Iterator[tuple[dict[str, Any], frozenset[str]]]:
    """Every object of the parse tree, with the (lower-case) names of the WITH clauses in scope there.

    A CTE hides a table or view of its name in the rest of the node that defines it. In the CTEs' own
    bodies it is not counted in scope: there its name may still mean the view (``WITH v AS (SELECT *
    FROM v)`` reads view v), so the view is checked, which at worst refuses a query that only reads.
    """
    stack: list[tuple[Any, frozenset[str]]] = [(tree, frozenset())]
    while stack:
        item, scope = stack.pop()
        if isinstance(item, dict):
            inner = scope | {name.lower() for name in _cte_names(item)}
            yield item, inner
            stack.extend((value, scope if key == "cte_map" else inner) for key, value in item.items())
        elif isinstance(item, list):
            stack.extend((value, scope) for value in item)


def _is_cte(node: dict[str, Any], ctes: frozenset[str]) -> bool:
    """Whether the table ``node`` reads is a WITH clause of its query (an unqualified name in scope)."""
    return not node.get("schema_name") and not node.get("catalog_name") and node["table_name"].lower() in ctes


def _cte_names(node: dict[str, Any]) -> list[str]:
    cte_map = node.get("cte_map")
    return [entry["key"] for entry in cte_map.get("map", [])] if isinstance(cte_map, dict) else []
