"""A map as a PNG picture (matplotlib, drawn off screen): for reports and READMEs, with each cluster's
label at its centre, and the sample stated in the title when there is one."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import arrays
from .errors import StorageError
from .files import atomic_write

if TYPE_CHECKING:
    from .maps import MapResult

__all__ = ["NOT_COLOURED", "categories", "draw_picture", "palette"]

# The colour of rows in no cluster, and of values past the palette.
NOT_COLOURED = "#c8c8c8"
# At most this many clusters are labelled on the picture (the largest).
_LABELLED = 40


def palette(n: int) -> list[str]:
    """``n`` distinct colours (hex), the same ones the page uses: tab20's, then tab20b's."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    colours = [to_hex(c) for name in ("tab20", "tab20b", "tab20c") for c in colormaps[name].colors]  # type: ignore[attr-defined]
    return [colours[i % len(colours)] for i in range(n)]


def categories(result: MapResult, color: str | None) -> tuple[np.ndarray, list[str]]:
    """Each row's colour index (-1: grey) and the legend's names, largest first: the clusters, or the
    values of the ``color`` column (the 40 most frequent; the rest grey)."""
    if color in (None, "cluster", "cluster_label"):
        cluster = arrays.numbers(result.rows.column("cluster")).astype(np.int64)
        labels = result.rows.column("cluster_label").to_pylist()
        names = [""] * (int(cluster.max()) + 1 if len(cluster) else 0)
        for c, label in zip(cluster.tolist(), labels, strict=True):
            if c >= 0 and not names[c]:
                names[c] = label or f"cluster {c}"
        return cluster, names
    assert result.shown is not None
    values = result.shown.column(color).to_pylist()
    common = [v for v, _ in Counter(v for v in values if v is not None).most_common(_LABELLED)]
    index = {v: i for i, v in enumerate(common)}
    return np.array([index.get(v, -1) for v in values], dtype=np.int64), [str(v) for v in common]


def draw_picture(result: MapResult, path: Path, *, color: str | None) -> None:
    """Draw ``result`` into ``path`` (PNG), atomically."""
    from matplotlib import patheffects
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = arrays.numbers(result.rows.column("x"))
    y = arrays.numbers(result.rows.column("y"))
    index, names = categories(result, color)
    colours = np.array([*palette(len(names)), NOT_COLOURED])
    figure = Figure(figsize=(12, 12), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.02, 0.02, 0.96, 0.92))
    axes.set_axis_off()
    # Rows with the same vector are one point: the size goes by the points there are to see.
    size = float(np.clip(40_000 / max(1, result.points), 0.2, 24))
    grey = index < 0
    axes.scatter(x[grey], y[grey], s=size, c=NOT_COLOURED, linewidths=0, rasterized=True)
    axes.scatter(x[~grey], y[~grey], s=size, c=colours[index[~grey]], linewidths=0, rasterized=True)
    # Limits set now, not at drawing: the labels' places on the page are measured below.
    axes.set_xlim(*_padded(x))
    axes.set_ylim(*_padded(y))
    if color in (None, "cluster", "cluster_label"):
        cluster = index
        largest = np.argsort(-np.bincount(cluster[cluster >= 0], minlength=len(names)), kind="stable")[:_LABELLED]
        outline = [patheffects.withStroke(linewidth=3, foreground="white")]
        renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
        placed: list[Any] = []
        for c in largest.tolist():
            members = cluster == c
            if not members.any():
                continue
            label = axes.annotate(
                names[c],
                (float(np.median(x[members])), float(np.median(y[members]))),
                ha="center",
                va="center",
                fontsize=9,
                fontweight="bold",
                path_effects=outline,
            )
            # Largest clusters first: a label that would cover one already placed is left out.
            box = label.get_window_extent(renderer).expanded(1.05, 1.15)
            if any(box.overlaps(other) for other in placed):
                label.remove()
            else:
                placed.append(box)
    else:
        handles = [axes.scatter([], [], s=30, c=colours[i], label=name) for i, name in enumerate(names[:20])]
        axes.legend(handles=handles, loc="upper right", fontsize=8, title=color, frameon=False)
    figure.suptitle(_title(result), fontsize=12)
    try:
        with atomic_write(path) as file:
            figure.savefig(file, format="png")
    except OSError as e:
        raise StorageError.drawing("the picture", path, e) from e


def _padded(values: np.ndarray) -> tuple[float, float]:
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    margin = max(high - low, 1e-6) * 0.04
    return low - margin, high + margin


def _title(result: MapResult) -> str:
    rows = result.rows.num_rows
    sampled = f", a sample of {rows:,} rows" if result.sample is not None else f", {rows:,} rows"
    return f"{result.source}{sampled}: {result.points:,} distinct vectors, {result.clusters:,} clusters (UMAP, HDBSCAN)"
