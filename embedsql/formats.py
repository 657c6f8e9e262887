"""Rows as text: an aligned table for people, CSV, JSON, JSON Lines or Markdown for programs.

Every value is printed as DuckDB itself writes it (its CAST to VARCHAR): the rows go back into an
in-memory DuckDB, which turns each value into text, so that a TIMESTAMP, an INTERVAL, an infinite DATE,
a BLOB or a MAP reads as it does in DuckDB and no type is left to a Python imitation of DuckDB's rules.
Columns are taken by position, never by name, since a query may return two columns of one name.

- csv: RFC 4180, as DuckDB's ``COPY ... TO`` writes it: NULL is an empty field and an empty string
  ``""``; values are written byte for byte, control characters included.
- json, jsonl: RFC 8259. Numbers are JSON numbers with DuckDB's digits (exact, however long); NaN and
  the infinities, which JSON cannot hold as numbers, are the strings "NaN", "Infinity" and "-Infinity"
  (as BigQuery exports them), never null, which is NULL's; other scalars are strings of DuckDB's text;
  lists, structs, maps, unions and JSON values are nested as DuckDB's ``to_json`` nests them. Object
  keys must be unique, so a repeated column name (in any case) gets DuckDB's suffix, as
  ``COPY ... (FORMAT json)`` names it: ``a``, ``a_1``, ``A_2``.
- table, markdown: for reading on a terminal, where a value's escape sequence would drive the terminal,
  control characters (and the bidirectional overrides, which reorder a line) are shown escaped, as
  ``\\n``, ``\\t``, ``\\x1b`` or ``\\u202e``; a long list shows its first values and its size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import duckdb
import pyarrow as pa
from duckdb.sqltypes import DuckDBPyType

from .duck import literal, scratch
from .values import NESTED, NUMBERS, parts, restored, type_with_text

__all__ = ["FORMATS", "render", "visible"]

FORMATS = ("table", "csv", "json", "jsonl", "markdown")
# Vectors are long: the aligned table shows their first values and their size.
_SHOWN_VALUES = 3
# DuckDB's text of the floats JSON has no number for.
_NOT_FINITE = {"nan": "NaN", "-nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
# C0, DEL and C1 controls, the line and paragraph separators, and the bidirectional formatting characters.
_CONTROLS = [
    *range(0x20),
    *range(0x7F, 0xA0),
    *(0x61C, 0x200E, 0x200F, 0x2028, 0x2029),
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
]
_VISIBLE = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _CONTROLS} | {
    ord("\n"): "\\n",
    ord("\t"): "\\t",
    ord("\r"): "\\r",
}


def visible(text: str) -> str:
    """``text`` with its control characters (those of ``_CONTROLS``) as escapes: what table and markdown
    show, so that a value can neither drive the terminal nor break or reorder its line."""
    return text.translate(_VISIBLE)


def render(table: pa.Table, fmt: str = "table") -> str:
    """``table`` as text in format ``fmt`` (one of FORMATS), ending with a newline (see the module
    docstring for what each format writes). Columns that ``values.to_arrow`` turned into text are
    printed as the DuckDB values they hold."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    if table.num_columns == 0:  # a statement that returns nothing
        return "[]\n" if fmt == "json" else ""
    con = scratch()
    try:
        zone = _time_zone(table.schema)
        if zone is not None:  # DuckDB exports its session's time zone with each TIMESTAMPTZ: show it in that
            con.execute(f"SET TimeZone = {literal(zone)}")
        con.register("_rows", table)
        source = f"({restored('_rows', table.schema)})"
        types = con.sql(f"SELECT * FROM {source}").types
        if fmt in ("json", "jsonl"):
            # DuckDB's names for the columns of a subquery: a repeated name gets a suffix.
            keys = con.sql(f"SELECT * FROM {source} AS r").columns
            return _json(con, source, types, keys, fmt)
        select = ", ".join(_text_sql(i, t, fmt != "csv") for i, t in enumerate(types, 1))
        rows = con.execute(f"SELECT {select} FROM {source}").fetchall()
    finally:
        con.close()
    names = table.column_names
    if fmt == "csv":
        return "".join(",".join(map(_csv_field, row)) + "\n" for row in [names, *rows])
    cells = [["NULL" if v is None else visible(v) for v in row] for row in rows]
    shown_names = [visible(n) for n in names]
    if fmt == "markdown":
        escape = lambda v: v.replace("|", "\\|")  # noqa: E731
        lines = ["| " + " | ".join(map(escape, shown_names)) + " |", "|" + "|".join("---" for _ in names) + "|"]
        lines += ["| " + " | ".join(map(escape, row)) + " |" for row in cells]
        return "\n".join(lines) + "\n"
    numeric = [t.id in NUMBERS for t in types]
    widths = [max([len(n), *(len(row[i]) for row in cells)]) for i, n in enumerate(shown_names)]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(shown_names), line(["-" * w for w in widths]), *map(line, cells)]) + "\n"


def _time_zone(schema: pa.Schema) -> str | None:
    """The time zone of the first TIMESTAMP WITH TIME ZONE in ``schema``, at any depth."""

    def zones(t: pa.DataType) -> Iterator[str]:
        if pa.types.is_timestamp(t) and t.tz:
            yield t.tz
        for i in range(t.num_fields):
            yield from zones(t.field(i).type)

    return next((zone for field in schema for zone in zones(field.type)), None)


def _text_sql(i: int, duck_type: DuckDBPyType, short: bool) -> str:
    """SQL of DuckDB's text of column ``i``; ``short``: a long list as its first values and its size."""
    text = f"CAST(#{i} AS VARCHAR)"
    if not short or duck_type.id not in ("list", "array"):
        return text
    head = f"CAST(list_slice(#{i}, 1, {_SHOWN_VALUES}) AS VARCHAR)"
    shortened = f"concat(left({head}, -1), ', … ', len(#{i}), ' values]')"
    return f"CASE WHEN len(#{i}) > {_SHOWN_VALUES} THEN {shortened} ELSE {text} END"


# JSON


@dataclass(frozen=True)
class _Number:
    """JSON text written as it is: a number with DuckDB's digits (or the string of a NaN)."""

    text: str


class _Object(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs, in order."""


# A JSON string, as json.dumps(..., ensure_ascii=False) writes it (in C).
_string: Callable[[str], str] = json.encoder.encode_basestring


def _json(
    con: duckdb.DuckDBPyConnection,
    source: str,
    types: list[DuckDBPyType],
    keys: list[str],
    fmt: str,
) -> str:
    select: list[str] = []
    writers: list[Callable[[str], str]] = []
    for i, duck_type in enumerate(types, 1):
        child = parts(duck_type)[0][1] if duck_type.id in ("list", "array") else None
        if child is not None and child.id in NUMBERS:  # a vector: DuckDB's text is a JSON array, but for nan
            select.append(f"CAST(#{i} AS VARCHAR)")
            writers.append(_number_list)
        elif duck_type.id in NESTED or str(duck_type) == "JSON":
            # DuckDB nests it; numbers inside come as their text, to be written with DuckDB's digits.
            numbers = type_with_text(duck_type, lambda part: part.id in NUMBERS)
            select.append(f"CAST(to_json({f'CAST(#{i} AS {numbers})' if numbers else f'#{i}'}) AS VARCHAR)")
            writers.append(partial(_nested_json, duck_type=duck_type))
        else:
            select.append(f"CAST(#{i} AS VARCHAR)")
            writers.append(_number if duck_type.id in NUMBERS else str if duck_type.id == "boolean" else _string)
    rows = con.execute(f"SELECT {', '.join(select)} FROM {source}").fetchall()
    prefixes = [f"{_string(key)}: " for key in keys]
    objects = [
        "{"
        + ", ".join(p + ("null" if v is None else write(v)) for p, write, v in zip(prefixes, writers, row, strict=True))
        + "}"
        for row in rows
    ]
    if fmt == "jsonl":
        return "".join(f"{o}\n" for o in objects)
    return "[" + ", ".join(objects) + "]\n"


def _nested_json(text: str, duck_type: DuckDBPyType) -> str:
    """JSON of a nested value from its ``to_json`` (numbers as text; see ``_json``)."""
    parsed = json.loads(
        text,
        parse_int=_Number,
        parse_float=_Number,
        parse_constant=str,  # NaN, Infinity, -Infinity in a JSON value: as strings
        object_pairs_hook=_Object,
    )
    return _dump(_nested(parsed, duck_type))


def _number_list(text: str) -> str:
    """JSON of DuckDB's text of a list of numbers, ``[1.5, nan, NULL]``."""
    if not any(c in text for c in "nNiI"):
        return text
    return "[" + ", ".join("null" if v == "NULL" else _number(v) for v in text[1:-1].split(", ")) + "]"


def _nested(value: Any, duck_type: DuckDBPyType) -> Any:
    """``value`` (parsed from ``to_json``) with each number's text, at any depth, made a JSON number."""
    if value is None:
        return None
    kind = duck_type.id
    if kind in NUMBERS:
        return _Number(_number(value)) if isinstance(value, str) else value
    members = parts(duck_type)
    if kind in ("list", "array"):
        return [_nested(v, members[0][1]) for v in value]
    if kind == "struct":
        return _Object((k, _nested(v, t)) for (k, v), (_, t) in zip(value, members, strict=True))
    if kind == "map":  # an object, as DuckDB's to_json writes a map
        return _Object((k, _nested(v, members[1][1])) for k, v in value)
    if kind == "union":  # {"member": value}
        return _Object((k, _nested(v, dict(members)[k])) for k, v in value)
    return value


def _number(text: str) -> str:
    """JSON of DuckDB's text of a number: a JSON number with its digits, or the string of a NaN."""
    if text in _NOT_FINITE:
        return _string(_NOT_FINITE[text])
    return text if _JSON_NUMBER.fullmatch(text) else _string(text)


def _dump(value: Any) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, _Number):
        return value.text
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, _Object):
        return "{" + ", ".join(f"{_string(k)}: {_dump(v)}" for k, v in value) + "}"
    return "[" + ", ".join(_dump(v) for v in value) + "]"


def _csv_field(value: str | None) -> str:
    if value is None:
        return ""
    if value == "" or any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value
