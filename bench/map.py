"""Map: `embedsql map` on the movies table and on N synthetic 384-d vectors, its time and memory, and
the page's size and load time in a real Chromium.

    python -m bench.map                         # the movies table and 1M x 384 (~12 min on 2 cores)
    python -m bench.map --rows 100000           # the movies table and 100k x 384

Each map runs in a fresh child process (numba compiles UMAP's code once per process: that cost is in
the first run's figure, as a user pays it), then again in another (reused: the table unchanged).
The reference on the movies is the notebook way: umap-learn on every row's vector as it comes
(``UMAP(metric="cosine").fit_transform``, its own neighbour search; 62,423 rows where embedsql lays
out 1,639 distinct vectors), in a child process of its own. The synthetic table is 50 Gaussian groups
of unit vectors in 384 dimensions, every vector distinct: the worst case for the map's size (UMAP
lays out 20,000 of them, the others are placed among those). The page is opened in headless Chromium
(``tests/browser.py``; skipped without one): the seconds from navigation to its first frame of
points, then the ms from a zoom to its frame on screen and of a hover (the nearest point and its
tooltip), medians of 5 and 21.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

import embedsql
from embedsql import ledger

from .common import Goal, StageResult, fmt_bytes, fmt_s, isolated, markdown
from .data import REPO, make_movies

SHOW = "select title, genres from movies"


def movies_db(folder: Path) -> Path:
    """The quickstart: the example warehouse, its genres embedded by the offline model."""
    db = make_movies(folder / "warehouse.duckdb")
    embedsql.run("select movieId, genres from movies", db=db)
    return db


def synthetic_db(folder: Path, rows: int, dims: int = 384, groups: int = 50, seed: int = 0) -> Path:
    """A table embedsql wrote, ``vectors(id BIGINT, embedding FLOAT[dims])``: ``groups`` Gaussian groups."""
    db = folder / "synthetic.duckdb"
    con = ledger.connect(db, create_ledger=True) if db.exists() else None
    if con is None:
        import duckdb

        duckdb.connect(str(db)).close()
        con = ledger.connect(db)
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((groups, dims)).astype(np.float32) * 3
    try:
        con.execute(f"CREATE TABLE vectors (id BIGINT, embedding FLOAT[{dims}])")
        step = 100_000
        for start in range(0, rows, step):
            n = min(step, rows - start)
            block = centres[rng.integers(0, groups, n)] + rng.standard_normal((n, dims), dtype=np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            flat = pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1)), dims)
            con.register("block", pa.table({"id": pa.array(np.arange(start, start + n)), "embedding": flat}))
            con.execute("INSERT INTO vectors SELECT * FROM block")
            con.unregister("block")
        model = "all-MiniLM-L6-v2"
        con.execute(
            "INSERT INTO embedsql.targets VALUES ('\"vectors\"', ?, ?, ['id'], ['BIGINT'], 'bench', now())",
            [model, dims],
        )
        con.execute(f"COMMENT ON TABLE vectors IS 'embedsql: {dims}-d vectors of {model}, job bench'")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return db


def timed_map(db: str, table: str, show: str | None, outputs: list[str]) -> dict[str, float]:
    """``embedsql.map`` in this process, timed (run it through ``isolated``)."""
    started = time.perf_counter()
    rows = embedsql.map(table, db=db, show=show, output=outputs)
    return {"seconds": time.perf_counter() - started, "rows": rows.num_rows}


def notebook_umap(db: str) -> dict[str, float]:
    """The notebook way on the movies: every row's vector to umap-learn, as it comes (run it isolated)."""
    import duckdb
    import umap

    con = duckdb.connect(db, read_only=True)
    started = time.perf_counter()
    table = con.sql("SELECT embedding FROM movies_embeddings").to_arrow_table()
    con.close()
    column = table.column(0).combine_chunks()
    vectors = column.flatten().to_numpy().reshape(len(column), column.type.list_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        umap.UMAP(metric="cosine", random_state=42).fit_transform(vectors)
    return {"seconds": time.perf_counter() - started}


# In the page: ms from a zoom (a wheel event) to the second frame after it, when the frame drawn has
# been presented; and the median ms of a hover (finding the point under the mouse and its tooltip).
ZOOM_MS = """new Promise((resolve) => {
  const canvas = document.getElementById("map"), api = window.embedsqlMap, before = api.frames;
  const started = performance.now();
  const wheel = {deltaY: -120, clientX: 600, clientY: 400, bubbles: true, cancelable: true};
  canvas.dispatchEvent(new WheelEvent("wheel", wheel));
  const after = () => api.frames > before ? requestAnimationFrame(() => resolve(performance.now() - started))
                                          : requestAnimationFrame(after);
  requestAnimationFrame(after);
})"""
HOVER_MS = """(() => {
  const canvas = document.getElementById("map"), api = window.embedsqlMap, times = [];
  for (let k = 0; k < 21; k++) {
    const [x, y] = api.screenOf(Math.floor((k * api.rows) / 21));
    const started = performance.now();
    canvas.dispatchEvent(new MouseEvent("mousemove", {clientX: x, clientY: y, bubbles: true}));
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[10];
})()"""


@dataclass(frozen=True)
class PageTimes:
    """Seconds from opening the page to its first frame; ms of a zoom's frame and of a hover (medians)."""

    first_frame_s: float
    zoom_ms: float
    hover_ms: float


def page_times(page: Path) -> PageTimes | None:
    """How fast ``page`` opens and answers in headless Chromium; None without a Chromium."""
    spec = importlib.util.spec_from_file_location("_browser", REPO / "tests" / "browser.py")
    if spec is None or spec.loader is None:
        return None
    browser_module = importlib.util.module_from_spec(spec)
    sys.modules["_browser"] = browser_module
    spec.loader.exec_module(browser_module)
    executable = next((shutil.which(n) for n in ("chromium-headless-shell", "chromium") if shutil.which(n)), None)
    if executable is None:
        return None
    with browser_module.Browser(executable) as browser:
        started = time.perf_counter()
        browser.open(page)
        browser.wait_for(
            lambda: (browser.evaluate("window.embedsqlMap && window.embedsqlMap.frames") or 0) > 0,
            "the first frame",
            seconds=600,
        )
        first = time.perf_counter() - started
        hover = float(browser.evaluate(HOVER_MS))
        zooms = sorted(float(browser.evaluate(ZOOM_MS)) for _ in range(5))
        return PageTimes(first_frame_s=first, zoom_ms=zooms[2], hover_ms=hover)


@dataclass(frozen=True)
class Measured:
    """One table's figures."""

    rows: int
    points: int
    first_s: float
    first_rss: int
    reused_s: float
    page_bytes: int
    page: PageTimes | None


def measure(name: str, db: Path, table: str, show: str | None, folder: Path) -> Measured:
    page, picture = folder / f"{name}.html", folder / f"{name}.png"
    first, _, first_rss = isolated(timed_map, str(db), table, show, [str(page), str(picture)])
    again, _, _ = isolated(timed_map, str(db), table, show, [])
    return Measured(
        rows=int(first["rows"]),
        points=ledger_points(db),
        first_s=first["seconds"],
        first_rss=first_rss,
        reused_s=again["seconds"],
        page_bytes=page.stat().st_size,
        page=page_times(page),
    )


def ledger_points(db: Path) -> int:
    con = ledger.connect(db, read_only=True)
    try:
        return int(con.execute("SELECT max(points) FROM embedsql.maps").fetchall()[0][0])
    finally:
        con.close()


HEADER = [
    "table",
    "rows",
    "distinct vectors",
    "map, first run (with numba's compile)",
    "peak RSS",
    "map, reused",
    "notebook UMAP on every row",
    "vs notebook",
    "page",
    "page to first frame",
    "page: a zoom's frame",
    "page: a hover",
]


def run_stage(sizes: list[int], *, notebook: bool = True, echo: bool = True) -> StageResult:
    """Map the movies and each size of synthetic vectors; ``notebook``: also time umap-learn on every
    movie row (~4 min on 2 cores)."""
    result = StageResult("9. Map: table -> 2-D layout, clusters, labels, page and picture")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        cases: list[tuple[str, Path, str, str | None]] = [("movies", movies_db(folder), "movies_embeddings", SHOW)]
        for n in sizes:
            sub = folder / f"s{n}"
            sub.mkdir()
            cases.append((f"{n:,} x 384", synthetic_db(sub, n), "vectors", None))
        for name, db, table, show in cases:
            r = measure(name.split()[0].replace(",", ""), db, table, show, db.parent)
            reference = isolated(notebook_umap, str(db))[0]["seconds"] if notebook and name == "movies" else None
            ratio = None if reference is None else reference / r.first_s
            rows.append(
                [
                    name,
                    f"{r.rows:,}",
                    f"{r.points:,}",
                    fmt_s(r.first_s),
                    fmt_bytes(r.first_rss),
                    fmt_s(r.reused_s),
                    "—" if reference is None else fmt_s(reference),
                    "—" if ratio is None else f"{ratio:.2f}x faster",
                    fmt_bytes(r.page_bytes),
                    *(
                        ["no Chromium"] * 3
                        if r.page is None
                        else [fmt_s(r.page.first_frame_s), f"{r.page.zoom_ms:.0f} ms", f"{r.page.hover_ms:.1f} ms"]
                    ),
                ]
            )
            if echo:
                print(f"  map {name}: {fmt_s(r.first_s)}, reused {fmt_s(r.reused_s)}", flush=True)
            goal = "notebook UMAP on every row" if ratio is not None else "—"
            result.goals.append(Goal("map", f"{name}: {fmt_s(r.first_s)}", goal, ratio, "reported", None))
    result.lines = markdown(HEADER, rows)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="synthetic vectors (repeat); default 1,000,000")
    args = parser.parse_args()
    print(run_stage(args.rows or [1_000_000]).text())


if __name__ == "__main__":
    main()
