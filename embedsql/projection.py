"""Vectors -> a 2-D map: UMAP coordinates, HDBSCAN clusters and a readable label per cluster.

The math of ``embedsql map``, on NumPy arrays; reading the table and writing ``<table>_map`` are
the caller's. Embeddings are compared by cosine, so every vector is scaled to unit length first.

- Neighbours: each point's ``NEIGHBOURS`` nearest by cosine, computed here and handed to UMAP
  (``precomputed_knn``): exactly, by blocks of matrix products, up to ``EXACT_UP_TO`` points (umap-learn's
  own path for small data compares every pair through a Python callable: 12 s for 1,639 vectors,
  against 0.1 s here); above that with pynndescent, the approximate search UMAP itself uses.
- Layout: umap-learn (the reference implementation, by UMAP's authors), with a fixed seed so that the
  same vectors give the same map, to the bit.
- Clusters: scikit-learn's HDBSCAN on the 2-D layout (what a reader sees as a group is what is
  labelled); points in no dense group get cluster -1.
- Labels: a cluster's most distinctive words (class-based TF-IDF over the texts shown for its rows).

The heavy libraries live in the ``map`` extra: ``require`` says what to install when they are missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConfigError

__all__ = ["EXACT_UP_TO", "FEWEST", "NEIGHBOURS", "SEED", "Projection", "cluster_labels", "project", "require"]

# Each point's neighbourhood in the layout (UMAP's default).
NEIGHBOURS = 15
# The seed of every map: the same vectors give the same coordinates.
SEED = 42
# Up to this many points the neighbours are exact, by blocks of rows against all (~8M similarities a block).
EXACT_UP_TO = 50_000
# Fewer distinct vectors than this make no map: UMAP needs a neighbourhood, HDBSCAN a group.
FEWEST = 5

_BLOCK = 2048
_BLOCK_VALUES = 8_000_000
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


def project(vectors: np.ndarray, *, seed: int = SEED, on_step: Callable[[str], None] | None = None) -> Projection:
    """The 2-D layout and clusters of ``vectors`` (n x d), one row per distinct vector."""
    require()
    say = on_step or (lambda step: None)
    n = len(vectors)
    if n < FEWEST:
        raise ValueError(f"a map needs at least {FEWEST} distinct vectors, got {n}")
    unit = _unit(vectors)
    k = min(NEIGHBOURS, n - 1)
    say("finding neighbours")
    indices, distances = _neighbours(unit, k, seed)
    say("laying out")
    xy = _layout(unit, indices, distances, seed, say)
    say("clustering")
    return Projection(xy=xy, cluster=_clusters(xy))


def _unit(vectors: np.ndarray) -> np.ndarray:
    unit = np.asarray(vectors, dtype=np.float32).copy()
    norms = np.linalg.norm(unit, axis=1, keepdims=True)
    np.divide(unit, norms, out=unit, where=norms > 0)
    return unit


def _neighbours(unit: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each point's ``k`` nearest points by cosine distance, itself first, nearest first."""
    n = len(unit)
    if n > EXACT_UP_TO:
        from pynndescent import NNDescent

        index = NNDescent(unit, n_neighbors=k, metric="cosine", random_state=seed, low_memory=True)
        indices, distances = index.neighbor_graph
        return indices.astype(np.int32), distances.astype(np.float32)
    indices = np.empty((n, k), dtype=np.int32)
    distances = np.empty((n, k), dtype=np.float32)
    # Rows per block: at most _BLOCK_VALUES similarities at a time (and their sort's indices).
    block = max(1, min(_BLOCK, _BLOCK_VALUES // n))
    rows = np.arange(block)
    for start in range(0, n, block):
        stop = min(start + block, n)
        similarity = unit[start:stop] @ unit.T
        # A point is its own nearest, whatever rounding says of its similarity to itself.
        similarity[rows[: stop - start], np.arange(start, stop)] = np.inf
        np.negative(similarity, out=similarity)
        nearest = np.argpartition(similarity, k - 1, axis=1)[:, :k]
        np.negative(similarity, out=similarity)
        near = np.take_along_axis(similarity, nearest, axis=1)
        # Nearest first; ties by index, so that the order (and the map) does not depend on the sort.
        order = np.lexsort((nearest, -near), axis=1)
        indices[start:stop] = np.take_along_axis(nearest, order, axis=1)
        near = np.take_along_axis(near, order, axis=1)
        near[:, 0] = 1.0
        distances[start:stop] = np.clip(1.0 - near, 0.0, 2.0)
    return indices, distances


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
    # separate groups whole and gives the movies 36 groups.
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
