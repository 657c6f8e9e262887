"""A map as one self-contained HTML page: WebGL points, hover, cluster labels and a search box.

The page is ``page/map.html`` with the map's data in it as JSON (coordinates and colour indexes as
base64 of little-endian arrays, the shown columns as lists): no script, style or font is fetched
from anywhere, so it opens offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import arrays
from .errors import StorageError
from .files import atomic_write
from .mappicture import NOT_COLOURED, categories, palette

if TYPE_CHECKING:
    from .maps import MapResult

__all__ = ["draw_page", "page_data"]


def page_data(result: MapResult, *, color: str | None, keys: list[str]) -> dict[str, object]:
    """What the page draws: coordinates, colours, hover columns, cluster labels, legend and titles."""
    x = np.ascontiguousarray(arrays.numbers(result.rows.column("x")), dtype="<f4")
    y = np.ascontiguousarray(arrays.numbers(result.rows.column("y")), dtype="<f4")
    index, names = categories(result, color)
    cluster = arrays.numbers(result.rows.column("cluster")).astype(np.int64)
    label_of = result.rows.column("cluster_label").to_pylist()
    columns = [*keys, "cluster", "cluster_label"]
    # Keys as text: a date, a decimal or a NaN is not JSON, and the page only shows them.
    values: list[list[object]] = [
        [None if v is None else str(v) for v in result.rows.column(k).to_pylist()] for k in keys
    ]
    values += [cluster.tolist(), label_of]
    if result.shown is not None:
        extra = [c for c in result.shown.column_names if c not in keys]
        columns += extra
        values += [result.shown.column(c).to_pylist() for c in extra]
    labels = []
    total = max(1, len(cluster))
    for c in range(int(cluster.max()) + 1 if len(cluster) else 0):
        members = cluster == c
        if not members.any():
            continue
        first = int(np.flatnonzero(members)[0])
        labels.append(
            {
                "text": label_of[first] or f"cluster {c}",
                "x": float(np.median(x[members])),
                "y": float(np.median(y[members])),
                "share": float(members.sum() / total),
                "cluster": c,
            }
        )
    rows = f"{result.rows.num_rows:,} rows"
    sample = f"a sample of {rows}" if result.sample is not None else rows
    return {
        "rows": int(result.rows.num_rows),
        "points": int(result.points),
        "x": _b64(x),
        "y": _b64(y),
        "category": _b64(np.ascontiguousarray(index, dtype="<i4")),
        "cluster": _b64(np.ascontiguousarray(cluster, dtype="<i4")),
        "palette": palette(max(1, len(names))),
        "grey": NOT_COLOURED,
        "legend": names[:40],
        "columns": columns,
        "values": values,
        "labels": labels,
        "title": str(result.source),
        "note": (
            f"{sample}, {result.points:,} distinct vectors, {result.clusters:,} clusters. "
            "Drag to pan, scroll to zoom, double-click to fit; hover a point for its row."
        ),
    }


def draw_page(result: MapResult, path: Path, *, color: str | None, keys: list[str]) -> None:
    """Write ``result`` as a page into ``path``, atomically."""
    template = (resources.files("embedsql") / "page" / "map.html").read_text(encoding="utf-8")
    data = json.dumps(page_data(result, color=color, keys=keys), ensure_ascii=False, allow_nan=False)
    # Inside <script>, "</script" or "<!--" in a value would end or break the element. "<" only ever
    # appears inside JSON strings, where the escape u003c means the same character.
    data = data.replace("<", "\\u003c")
    title = str(result.source).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    page = template.replace("__TITLE__", f"{title}: embedsql map").replace("__DATA__", data)
    try:
        with atomic_write(path, "w", encoding="utf-8") as file:
            file.write(page)
    except OSError as e:
        raise StorageError.drawing("the page", path, e) from e


def _b64(array: np.ndarray) -> str:
    """The bytes of a little-endian array, as base64 (what the page reads into a typed array)."""
    return base64.b64encode(array.tobytes()).decode("ascii")
