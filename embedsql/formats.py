"""Rows as text: an aligned table for people, CSV, JSON, JSON Lines or Markdown for programs."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

import pyarrow as pa

__all__ = ["FORMATS", "render"]

FORMATS = ("table", "csv", "json", "jsonl", "markdown")
# Vectors are long: the aligned table shows their first values and their size.
_SHOWN_VALUES = 3


def render(table: pa.Table, fmt: str = "table") -> str:
    """``table`` as text in format ``fmt`` (one of FORMATS), ending with a newline."""
    names = table.column_names
    rows = table.to_pylist()
    if fmt == "json":
        return json.dumps([{n: _jsonable(r[n]) for n in names} for r in rows], ensure_ascii=False) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps({n: _jsonable(r[n]) for n in names}, ensure_ascii=False) + "\n" for r in rows)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([[_plain(r[n]) for n in names] for r in rows])
        return out.getvalue()
    cells = [[_short(r[n]) for n in names] for r in rows]
    if fmt == "markdown":
        escape = lambda v: v.replace("|", "\\|").replace("\n", " ")  # noqa: E731
        lines = ["| " + " | ".join(map(escape, names)) + " |", "|" + "|".join("---" for _ in names) + "|"]
        lines += ["| " + " | ".join(map(escape, row)) + " |" for row in cells]
        return "\n".join(lines) + "\n"
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}")
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) for t in table.schema.types]
    widths = [max([len(n), *(len(row[i]) for row in cells)]) for i, n in enumerate(names)]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(names), line(["-" * w for w in widths]), *map(line, cells)]) + "\n"


def _jsonable(value: Any) -> Any:
    # NaN and infinities stay floats: JSON output writes them NaN, Infinity and -Infinity as DuckDB's
    # to_json() does (and Python's json reads), the other formats nan, inf and -inf; never as NULL.
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple | dict):
        return json.dumps(_jsonable(value), ensure_ascii=False)
    return str(_jsonable(value))


def _short(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple) and len(value) > _SHOWN_VALUES:
        head = ", ".join(_short(v) for v in value[:_SHOWN_VALUES])
        return f"[{head}, … {len(value)} values]"
    return _plain(value).replace("\n", " ")
