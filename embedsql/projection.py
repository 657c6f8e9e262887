"""Vectors -> a 2-D map: UMAP coordinates, HDBSCAN clusters and a readable label per cluster.

The math of ``embedsql map``, on NumPy arrays; reading the table and writing ``<table>_map`` are
the caller's. Embeddings are compared by cosine, so every vector is scaled to unit length first.

- Neighbours: each point's ``NEIGHBOURS`` nearest by cosine, exactly, by blocks of matrix products and
  a compiled scan of each block for its nearest (umap-learn's own path for small data compares every
  pair through a Python callable: 12 s for 1,639 vectors, against 0.1 s here). They are handed to UMAP
  (``precomputed_knn``).
- Layout: umap-learn (the reference implementation, by UMAP's authors), with a fixed seed so that the
  same vectors give the same map, to the bit. With a seed it optimises on one thread (over an hour for
  a million points on two cores), so it lays out at most ``LAID_OUT`` points: above that, a seeded
  sample of ``LAID_OUT`` (the landmarks), and every other point is placed where umap-learn's own
  ``transform`` starts a new point: at the mean of its nearest landmarks, weighted by UMAP's membership
  strengths. Every point is on the map; a million take ~3 minutes more than the landmarks.
- Clusters: scikit-learn's HDBSCAN on the landmarks' 2-D layout (what a reader sees as a group is what
  is labelled); a placed point joins the cluster that holds most of its landmarks' weight; points in no
  dense group get cluster -1.
- Labels: a cluster's most distinctive words (class-based TF-IDF over the texts shown for its rows).

The heavy libraries live in the ``map`` extra: ``require`` says what to install when they are missing.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
import re
import signal
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from .errors import ConfigError
from .failpoints import failpoint

__all__ = ["FEWEST", "LAID_OUT", "METHOD", "NEIGHBOURS", "SEED", "Projection", "cluster_labels", "project", "require"]

# Each point's neighbourhood in the layout (UMAP's default).
NEIGHBOURS = 15
# The seed of every map: the same vectors give the same coordinates.
SEED = 42
# The most points UMAP lays out itself (~30 s on two cores); the others are placed among them.
LAID_OUT = 20_000
# Fewer distinct vectors than this make no map: UMAP needs a neighbourhood, HDBSCAN a group.
FEWEST = 5
# The method, as a map's fingerprint records it: a map made another way is made again.
METHOD = f"umap-cosine-{NEIGHBOURS}-{LAID_OUT}-placed/hdbscan-1%-{FEWEST}/v2"

# Rows of a block of similarities: ~8M similarities (32 MB) at a time.
_BLOCK = 2048
_BLOCK_VALUES = 8_000_000
# Placing points, a step every this many.
_PLACED_STEP = 100_000
_WORD = re.compile(r"[^\W\d_][\w'-]*[^\W_]|[^\W\d_]")
# English words too common to tell one cluster from another ("the", "of" in titles).
_COMMON = frozenset(
    {
        "a",
        "about",
        "after",
        "all",
        "also",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "he",
        "her",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "just",
        "me",
        "more",
        "most",
        "my",
        "no",
        "not",
        "of",
        "on",
        "one",
        "or",
        "our",
        "out",
        "over",
        "she",
        "so",
        "some",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "to",
        "too",
        "up",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "which",
        "who",
        "will",
        "with",
        "would",
        "you",
        "your",
    }
)


@dataclass(frozen=True)
class Projection:
    """Where each vector lands: ``xy`` (n x 2 float32) and its ``cluster`` (n int32: 0 the largest
    cluster, 1 the next, ...; -1 for a point in none)."""

    xy: np.ndarray
    cluster: np.ndarray


def require() -> None:
    """Raise a ConfigError that says what to install, when the map extra is not installed."""
    # Found, not imported: importing umap-learn takes seconds, and a map that is reused needs none of it.
    wanted = (("umap", "umap-learn"), ("sklearn", "scikit-learn"), ("matplotlib", "matplotlib"))
    missing = [package for module, package in wanted if importlib.util.find_spec(module) is None]
    if missing:
        raise ConfigError(
            f"embedsql map needs {_listed(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed. "
            "Install the map extra: pip install 'embedsql[map]'"
        )


def _listed(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _quietly_import(module: str) -> Any:
    """``module``, imported without the warnings umap-learn gives on import (TensorFlow missing, for
    a ParametricUMAP embedsql does not use)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImportWarning)
        return importlib.import_module(module)


def project(
    vectors: np.ndarray,
    *,
    seed: int = SEED,
    laid_out: int | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Projection:
    """The 2-D layout and clusters of ``vectors`` (n x d), one row per distinct vector: UMAP lays out
    ``laid_out`` of them at most (a seeded sample; default ``LAID_OUT``), the others are placed among those."""
    require()
    laid_out = LAID_OUT if laid_out is None else laid_out
    n = len(vectors)
    if n < FEWEST:
        raise ValueError(f"a map needs at least {FEWEST} distinct vectors, got {n}")
    if laid_out < FEWEST:
        raise ValueError(f"UMAP needs at least {FEWEST} points to lay out, got laid_out={laid_out}")
    with _held_interrupts() as interrupted:

        def say(step: str) -> None:
            interrupted()
            if on_step is not None:
                on_step(step)

        return _projected(vectors, seed, laid_out, say, interrupted)


@contextlib.contextmanager
def _held_interrupts() -> Iterator[Callable[[], None]]:
    """Ctrl-C held while the map is computed, then raised where Python can stop cleanly: the yielded
    check raises KeyboardInterrupt once SIGINT came, and so does leaving. Raised from a signal handler
    while numba runs, a KeyboardInterrupt lands in numba's callbacks: lost there (the map went on and
    was written) or turned into a SystemError traceback. Off the main thread, or with SIGINT ignored,
    nothing is held."""
    came: list[int] = []

    def interrupted() -> None:
        if came:
            raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous in (signal.SIG_IGN, None):
        yield interrupted
        return
    signal.signal(signal.SIGINT, lambda signum, frame: came.append(signum))
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)
    interrupted()


def _projected(
    vectors: np.ndarray, seed: int, laid_out: int, say: Callable[[str], None], interrupted: Callable[[], None]
) -> Projection:
    """``project``'s work: ``say`` reports a step, ``interrupted`` raises KeyboardInterrupt after a Ctrl-C
    (checked at each step, each epoch reported and each block of neighbours)."""
    n = len(vectors)
    unit = _unit(vectors)
    landmarks = (
        np.arange(n) if n <= laid_out else np.sort(np.random.default_rng(seed).choice(n, laid_out, replace=False))
    )
    laid = unit[landmarks]
    k = min(NEIGHBOURS, len(laid) - 1)
    say("finding neighbours")
    indices, distances = _nearest(laid, laid, k, itself=True, on_rows=lambda done: interrupted())
    say("laying out")
    xy = _layout(laid, indices, distances, seed, say)
    say("clustering")
    cluster = _clusters(xy)
    if n == len(landmarks):
        return Projection(xy=xy, cluster=cluster)
    return _placed(unit, landmarks, Projection(xy=xy, cluster=cluster), say, interrupted)


def _unit(vectors: np.ndarray) -> np.ndarray:
    unit = np.asarray(vectors, dtype=np.float32).copy()
    norms = np.linalg.norm(unit, axis=1, keepdims=True)
    np.divide(unit, norms, out=unit, where=norms > 0)
    return unit


def _nearest(
    queries: np.ndarray,
    points: np.ndarray,
    k: int,
    *,
    itself: bool = False,
    on_rows: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's ``k`` nearest ``points`` by cosine distance (unit vectors), nearest first, ties by
    index; ``itself``: the queries are the points, each its own nearest whatever rounding says.
    ``on_rows`` hears how many queries are done after each block."""
    if not 0 < k <= len(points):
        raise ValueError(f"cannot find {k} nearest among {len(points)} points")
    n = len(queries)
    indices = np.empty((n, k), dtype=np.int32)
    similarities = np.empty((n, k), dtype=np.float32)
    scan = _nearest_in_blocks()
    block = max(1, min(_BLOCK, _BLOCK_VALUES // len(points)))
    for start in range(0, n, block):
        stop = min(start + block, n)
        similarity = queries[start:stop] @ points.T
        if itself:
            similarity[np.arange(stop - start), np.arange(start, stop)] = np.inf
        scan(similarity, k, indices[start:stop], similarities[start:stop])
        if on_rows is not None:
            on_rows(stop)
    if itself:
        similarities[:, 0] = 1.0
    return indices, np.clip(1.0 - similarities, 0.0, 2.0)


@cache
def _nearest_in_blocks() -> Callable[..., None]:
    """The compiled scan of a block of similarities for each row's k largest (numba, which umap-learn
    brings; compiled once per machine, cached): an argpartition and a sort of each row are ~4x slower,
    on one core."""
    numba = _quietly_import("numba")

    @numba.njit(parallel=True, cache=True, nogil=True)
    def scan(similarity, k, indices, best):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
        for row in numba.prange(similarity.shape[0]):
            values, found, kept = similarity[row], indices[row], best[row]
            filled = 0
            for j in range(values.shape[0]):
                value = values[j]
                if filled == k:
                    if value <= kept[k - 1]:  # a tie keeps the lower index
                        continue
                    at = k - 1
                else:
                    at = filled
                    filled += 1
                while at > 0 and kept[at - 1] < value:
                    kept[at], found[at] = kept[at - 1], found[at - 1]
                    at -= 1
                kept[at], found[at] = value, j

    return scan


def _placed(
    unit: np.ndarray,
    landmarks: np.ndarray,
    laid: Projection,
    say: Callable[[str], None],
    interrupted: Callable[[], None],
) -> Projection:
    """Every point of ``unit``: the ``landmarks`` where ``laid`` put them, each other point at the mean
    of its nearest landmarks weighted by UMAP's membership strengths (as umap-learn's ``transform``
    starts a new point), in the cluster that holds most of that weight (-1 counts as one)."""
    from umap.umap_ import smooth_knn_dist

    others = np.ones(len(unit), dtype=bool)
    others[landmarks] = False
    said = [0]

    def progress(done: int) -> None:
        failpoint("map-place")
        interrupted()
        if done - said[0] >= _PLACED_STEP or done == len(unit):
            said[0] = done
            say(f"placing the points, {done:,}/{len(unit):,}")

    # Every point against the landmarks (the landmarks' own rows go unused: a few percent more work, and
    # no copy of the other points' vectors).
    k = min(NEIGHBOURS, len(landmarks))
    say(f"placing the points, 0/{len(unit):,}")
    indices, distances = _nearest(unit, unit[landmarks], k, on_rows=progress)
    indices, distances = indices[others], distances[others]
    # umap-learn's transform: local connectivity 0 (rho 0), so a weight is exp(-distance / sigma).
    sigmas, rhos = smooth_knn_dist(distances, float(k), local_connectivity=0.0)
    weights = np.exp(-np.maximum(distances - rhos[:, None], 0.0) / sigmas[:, None]).astype(np.float32)
    weights /= weights.sum(axis=1, keepdims=True)
    xy = np.empty((len(unit), 2), dtype=np.float32)
    xy[landmarks] = laid.xy
    xy[others] = np.einsum("nk,nkd->nd", weights, laid.xy[indices])
    cluster = np.empty(len(unit), dtype=np.int32)
    cluster[landmarks] = laid.cluster
    cluster[others] = _voted(laid.cluster[indices], weights)
    return Projection(xy=xy, cluster=cluster)


def _voted(clusters: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """For each row, the cluster (-1 included) with the most weight among its columns; ties: the lower."""
    chosen = np.empty(len(clusters), dtype=np.int32)
    kinds = int(clusters.max()) + 2  # -1 and 0..max, at c + 1
    rows = max(1, _BLOCK_VALUES // kinds)
    for start in range(0, len(clusters), rows):
        part = slice(start, start + rows)
        n = len(clusters[part])
        votes = np.zeros((n, kinds), dtype=np.float32)
        np.add.at(
            votes, (np.repeat(np.arange(n), clusters.shape[1]), clusters[part].ravel() + 1), weights[part].ravel()
        )
        chosen[part] = votes.argmax(axis=1) - 1
    return chosen


def _layout(
    unit: np.ndarray, indices: np.ndarray, distances: np.ndarray, seed: int, say: Callable[[str], None]
) -> np.ndarray:
    umap = _quietly_import("umap")
    with warnings.catch_warnings():
        # "n_jobs value 1 overridden to 1 by setting random_state": the fixed seed is the point.
        warnings.simplefilter("ignore", UserWarning)
        reducer = umap.UMAP(
            n_neighbors=indices.shape[1],
            metric="cosine",
            precomputed_knn=(indices, distances, None),
            random_state=seed,
            n_jobs=1,
            # Its progress bar, written into _Epochs as "done/total": minutes of epochs at 1M points.
            tqdm_kwds={"disable": False, "file": _Epochs(say), "bar_format": "{n}/{total}", "mininterval": 2.0},
        )
        failpoint("map-layout")
        xy = reducer.fit_transform(unit)
    return np.asarray(xy, dtype=np.float32)


class _Epochs:
    """A file for umap-learn's progress bar: each "done/total" it writes becomes a step "laying out,
    epoch done/total" (written every two seconds at most; a layout of seconds says nothing)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.said = -1

    def write(self, text: str) -> int:
        found = re.search(r"(\d+)/(\d+)", text)
        if found and 0 < int(found[1]) < int(found[2]) and int(found[1]) != self.said:
            self.said = int(found[1])
            self.say(f"laying out, epoch {found[1]}/{found[2]}")
        return len(text)

    def flush(self) -> None:
        pass


def _clusters(xy: np.ndarray) -> np.ndarray:
    from sklearn.cluster import HDBSCAN

    # Groups of at least 1% of the points (and of five), with a point's density read from its five
    # nearest: the default (density from min_cluster_size points) merged the movies' 1,639 genre
    # strings into 4 blobs, leaf selection split clearly separate groups into pieces; this keeps
    # separate groups whole and gives the movies 39 groups.
    size = max(FEWEST, len(xy) // 100)
    found = HDBSCAN(min_cluster_size=size, min_samples=FEWEST, copy=True).fit_predict(xy.astype(np.float64))

    # Numbered by size, the largest 0 (ties: the one with the first point first), so that the same
    # groups get the same numbers whatever order HDBSCAN found them in.
    def size_then_first(c: int) -> tuple[int, int]:
        members = np.flatnonzero(found == c)
        return -len(members), int(members[0])

    numbered = sorted((int(c) for c in np.unique(found) if c >= 0), key=size_then_first)
    renumber = np.full(int(found.max()) + 2, -1, dtype=np.int32)  # index c + 1: -1 stays -1
    renumber[np.array(numbered, dtype=np.int64) + 1] = np.arange(len(numbered), dtype=np.int32)
    return renumber[found + 1]


def cluster_labels(cluster: np.ndarray, texts: Sequence[str | None], *, words: int = 3) -> dict[int, str]:
    """A label for each cluster (not -1): its ``words`` most distinctive words among ``texts``
    (one per row, aligned with ``cluster``), by class-based TF-IDF: a word's share of its cluster's
    words, weighted by how rare it is across clusters. Words are letters (numbers and punctuation
    are not), lower-cased, without the commonest English words. Ties go to the word first in
    alphabetical order; a cluster whose texts hold no word is labelled "cluster N"."""
    counts: dict[int, Counter[str]] = {}
    for c, text in zip(cluster.tolist(), texts, strict=True):
        if c < 0:
            continue
        bag = counts.setdefault(c, Counter())
        if text:
            bag.update(w for w in (w.lower() for w in _WORD.findall(text)) if w not in _COMMON)
    everywhere: Counter[str] = Counter()
    for bag in counts.values():
        everywhere.update(bag)
    average = sum(everywhere.values()) / max(1, len(counts))
    labels = {}
    for c, bag in sorted(counts.items()):
        total = sum(bag.values())
        if total == 0:
            labels[c] = f"cluster {c}"
            continue
        score = {w: (n / total) * math.log(1 + average / everywhere[w]) for w, n in bag.items()}
        top = sorted(score, key=lambda w: (-score[w], w))[:words]
        labels[c] = ", ".join(top)
    return labels
