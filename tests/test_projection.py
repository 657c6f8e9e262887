"""embedsql.projection: real UMAP and HDBSCAN on vectors whose answer is known."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from embedsql.maps import _by_rows
from embedsql.projection import FEWEST, NEIGHBOURS, _Epochs, _nearest, _voted, cluster_labels, project


def _groups(groups: int, per: int, dimensions: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``groups`` clearly separate clouds of ``per`` points: each around its own axis."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dimensions)[:groups] * 10
    vectors = np.concatenate([c + rng.normal(size=(per, dimensions)) for c in centres]).astype(np.float32)
    return vectors, np.repeat(np.arange(groups), per)


@pytest.mark.parametrize(("groups", "per", "dimensions", "seed"), [(4, 40, 24, 7), (5, 60, 32, 8), (3, 100, 16, 9)])
def test_clearly_separate_groups_become_one_cluster_each(groups: int, per: int, dimensions: int, seed: int) -> None:
    vectors, truth = _groups(groups, per, dimensions, seed)
    projection = project(vectors)
    assert projection.xy.shape == (groups * per, 2)
    assert projection.xy.dtype == np.float32
    assert np.isfinite(projection.xy).all()
    # Every point in a cluster, each group in one cluster of its own; the groups are the same size,
    # so the clusters are numbered in the order of their first point.
    assert np.array_equal(projection.cluster, truth)


def test_the_same_vectors_give_the_same_map_to_the_bit() -> None:
    vectors, _ = _groups(3, 30, 12, seed=1)
    first, again = project(vectors), project(vectors.copy())
    assert np.array_equal(first.xy, again.xy)
    assert np.array_equal(first.cluster, again.cluster)
    other = project(vectors, seed=7)
    assert not np.array_equal(first.xy, other.xy)


def test_length_does_not_matter_only_direction() -> None:
    # Embeddings compare by cosine: a vector scaled by any positive factor is the same point.
    vectors, _ = _groups(3, 30, 12, seed=2)
    scales = np.random.default_rng(3).uniform(0.5, 20, size=(len(vectors), 1)).astype(np.float32)
    assert np.array_equal(project(vectors).cluster, project(vectors * scales).cluster)


def test_clusters_are_numbered_largest_first() -> None:
    rng = np.random.default_rng(4)
    sizes = [20, 70, 45]
    vectors = np.concatenate([np.eye(10)[i] * 10 + rng.normal(size=(n, 10)) for i, n in enumerate(sizes)])
    cluster = project(vectors.astype(np.float32)).cluster
    assert np.array_equal(cluster, np.repeat([2, 0, 1], sizes))


def _exact(queries: np.ndarray, points: np.ndarray, k: int, itself: bool) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest by cosine in float64 (nearest first, ties by index) and all distances."""
    distance = 1 - queries.astype(np.float64) @ points.T.astype(np.float64)
    if itself:
        np.fill_diagonal(distance, -1)  # each point is its own nearest
    return np.argsort(distance, axis=1, kind="stable")[:, :k], distance


def _unit_rows(n: int, dimensions: int, seed: int) -> np.ndarray:
    unit = np.random.default_rng(seed).normal(size=(n, dimensions)).astype(np.float32)
    return unit / np.linalg.norm(unit, axis=1, keepdims=True)


@pytest.mark.parametrize(("n", "dimensions"), [(FEWEST, 3), (17, 8), (2048, 8), (2049, 5), (5000, 8)])
def test_neighbours_are_exactly_the_nearest_by_cosine(n: int, dimensions: int) -> None:
    unit = _unit_rows(n, dimensions, seed=n)
    k = min(NEIGHBOURS, n - 1)
    indices, distances = _nearest(unit, unit, k, itself=True)
    assert indices.shape == distances.shape == (n, k)
    assert indices.dtype == np.int32
    assert distances.dtype == np.float32
    expected, distance = _exact(unit, unit, k, itself=True)
    assert (indices[:, 0] == np.arange(n)).all()
    assert (distances[:, 0] == 0).all()
    assert (np.diff(distances, axis=1) >= 0).all()
    # The k nearest, at their distances: float32 products may order two neighbours within ~1e-7 of
    # each other either way, so rows with such a near tie are compared by distance only.
    nearest = np.take_along_axis(distance, expected, 1)
    np.testing.assert_allclose(distances[:, 1:], nearest[:, 1:], atol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(distance, indices, 1)[:, 1:], nearest[:, 1:], atol=1e-5)
    clear = (np.diff(nearest, axis=1) > 1e-5).all(axis=1)
    assert clear.mean() > 0.9
    assert np.array_equal(indices[clear], expected[clear])


@pytest.mark.parametrize(("queries", "points", "k"), [(1, 1, 1), (300, 40, 15), (3000, 4000, 15), (50, 7, 7)])
def test_neighbours_among_other_points_and_their_progress(queries: int, points: int, k: int) -> None:
    among = _unit_rows(points, 6, seed=points)
    asked = _unit_rows(queries, 6, seed=queries + 1)
    done: list[int] = []
    indices, distances = _nearest(asked, among, k, on_rows=done.append)
    expected, distance = _exact(asked, among, k, itself=False)
    nearest = np.take_along_axis(distance, expected, 1)
    np.testing.assert_allclose(distances, nearest, atol=1e-5)
    clear = (np.diff(nearest, axis=1) > 1e-5).all(axis=1)
    assert np.array_equal(indices[clear], expected[clear])
    # Block by block, the last block ends the count.
    assert done == sorted(done)
    assert done[-1] == queries
    assert len(done) == -(-queries // min(2048, 8_000_000 // points))


def test_equal_similarities_go_to_the_lower_index() -> None:
    # Points 0, 2 and 4 are the same direction; 1 and 3 another: every query ties among them.
    among = np.array([[1, 0], [0, 1], [2, 0], [0, 3], [5, 0]], dtype=np.float32)
    among /= np.linalg.norm(among, axis=1, keepdims=True)
    asked = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32) / np.array([[1], [1], [np.sqrt(2)]], dtype=np.float32)
    indices, _ = _nearest(asked, among, 4)
    # The third query is as near to all five: the four lowest.
    assert indices.tolist() == [[0, 2, 4, 1], [1, 3, 0, 2], [0, 1, 2, 3]]


def test_above_the_laid_out_count_the_others_are_placed_among_the_landmarks() -> None:
    vectors, truth = _groups(4, 90, 24, seed=11)
    steps: list[str] = []
    placed = project(vectors, laid_out=100, on_step=steps.append)
    assert placed.xy.shape == (360, 2)
    assert np.isfinite(placed.xy).all()
    # Every point, placed or laid out, in its own group's cluster.
    assert len(set(zip(placed.cluster.tolist(), truth.tolist(), strict=True))) == 4
    assert (placed.cluster >= 0).all()
    assert steps[-1] == "placing the points, 360/360"
    assert steps[:3] == ["finding neighbours", "laying out", "clustering"]
    # The landmarks are a seeded sample laid out as UMAP lays out those vectors alone.
    landmarks = np.sort(np.random.default_rng(42).choice(360, 100, replace=False))
    alone = project(vectors[landmarks])
    assert np.array_equal(placed.xy[landmarks], alone.xy)
    assert np.array_equal(placed.cluster[landmarks], alone.cluster)
    # Each other point lies among its group's landmarks: inside their bounding box.
    for group in range(4):
        mine = landmarks[truth[landmarks] == group]
        low, high = placed.xy[mine].min(axis=0), placed.xy[mine].max(axis=0)
        others = np.setdiff1d(np.flatnonzero(truth == group), landmarks)
        assert ((placed.xy[others] >= low) & (placed.xy[others] <= high)).all()
    # The same vectors and seed: the same map, to the bit; another seed, other landmarks.
    again = project(vectors.copy(), laid_out=100)
    assert np.array_equal(placed.xy, again.xy)
    assert np.array_equal(placed.cluster, again.cluster)
    assert not np.array_equal(placed.xy, project(vectors, laid_out=100, seed=7).xy)


@pytest.mark.parametrize(("n", "laid_out"), [(40, FEWEST), (60, 12), (61, 16)])
def test_a_few_landmarks_are_each_others_neighbours_and_everyones(n: int, laid_out: int) -> None:
    vectors, _ = _groups(2, n // 2, 8, seed=n)
    vectors = np.concatenate([vectors, vectors[-1:] * 3 + 1])[:n]  # an odd one near the last group
    placed = project(vectors, laid_out=laid_out)
    landmarks = np.sort(np.random.default_rng(42).choice(n, laid_out, replace=False))
    assert np.array_equal(placed.xy[landmarks], project(vectors[landmarks]).xy)
    assert np.isfinite(placed.xy).all()
    assert placed.cluster.shape == (n,)


def test_neighbours_are_never_more_than_the_points() -> None:
    unit = _unit_rows(4, 3, seed=0)
    with pytest.raises(ValueError, match="cannot find 5 nearest among 4 points"):
        _nearest(unit, unit, 5)


@pytest.mark.parametrize("laid_out", [0, FEWEST - 1])
def test_too_few_to_lay_out_is_refused(laid_out: int) -> None:
    with pytest.raises(ValueError, match=f"at least {FEWEST} points to lay out, got laid_out={laid_out}"):
        project(np.eye(8, dtype=np.float32), laid_out=laid_out)


def test_a_placed_point_joins_the_cluster_with_most_of_its_weight() -> None:
    clusters = np.array([[0, 1, 1], [2, -1, -1], [-1, 3, 3], [1, 0, 2], [5, 5, 0]], dtype=np.int32)
    weights = np.array(
        [[0.6, 0.2, 0.2], [0.5, 0.3, 0.2], [0.2, 0.4, 0.4], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4]], dtype=np.float32
    )
    # Ties (the second row: 0.5 for -1 and for 2) go to the lower number, -1 first.
    assert _voted(clusters, weights).tolist() == [0, -1, 3, 0, 5]


@pytest.mark.parametrize("n", [0, 1, FEWEST - 1])
def test_too_few_vectors_make_no_map(n: int) -> None:
    with pytest.raises(ValueError, match=f"at least {FEWEST} distinct vectors, got {n}"):
        project(np.ones((n, 4), dtype=np.float32))


def test_labels_are_each_clusters_most_distinctive_words() -> None:
    cluster = np.array([0, 0, 0, 1, 1, -1, 2, 2])
    texts = [
        "Comedy|Romance",
        "Comedy|Drama",
        "comedy romance drama",
        "Horror|Thriller",
        "horror",
        "Western",  # in no cluster: never in a label
        None,
        "",
    ]
    assert cluster_labels(cluster, texts) == {0: "comedy, drama, romance", 1: "horror, thriller", 2: "cluster 2"}
    assert cluster_labels(cluster, texts, words=1) == {0: "comedy", 1: "horror", 2: "cluster 2"}


def test_a_word_everywhere_gives_way_to_the_distinctive_ones() -> None:
    cluster = np.array([0, 0, 1, 1])
    texts = ["film noir", "film noir", "film western", "film western"]
    # "film" is in every cluster: rarer words rank first, and ties go in alphabetical order.
    assert cluster_labels(cluster, texts, words=2) == {0: "noir, film", 1: "western, film"}


def test_words_are_letters_not_numbers_or_punctuation() -> None:
    cluster = np.array([0, 0])
    texts = ["Sci-Fi (1999) rock'n'roll", "l'été 42 — über"]
    assert cluster_labels(cluster, texts, words=10) == {0: "l'été, rock'n'roll, sci-fi, über"}


def test_the_commonest_words_label_nothing() -> None:
    cluster = np.array([0, 0, 1])
    texts = ["The Lord of the Rings", "The Return of the King", "And Then There Were None"]
    assert cluster_labels(cluster, texts, words=10) == {0: "king, lord, return, rings", 1: "none"}


def test_without_the_map_extra_it_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['umap'] = None\n"
        "from embedsql.errors import ConfigError\n"
        "from embedsql.projection import require\n"
        "try:\n    require()\nexcept ConfigError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == (
        "embedsql map needs umap-learn, which is not installed. Install the map extra: pip install 'embedsql[map]'\n"
    )
    every = code.replace("sys.modules['umap'] = None", "sys.modules.update(umap=None, sklearn=None, matplotlib=None)")
    out = subprocess.run([sys.executable, "-c", every], capture_output=True, text=True, check=True).stdout
    assert out == (
        "embedsql map needs umap-learn, scikit-learn and matplotlib, which are not installed. "
        "Install the map extra: pip install 'embedsql[map]'\n"
    )


@given(st.lists(st.integers(min_value=-1, max_value=6), max_size=60))
def test_clusters_are_numbered_again_by_their_rows(found: list[int]) -> None:
    numbered = _by_rows(np.array(found, dtype=np.int32)).to_pylist()
    # -1 stays -1; the same clusters, only renamed: 0 the most rows, ties by the first row.
    assert [n == -1 for n in numbered] == [f == -1 for f in found]
    pairs = {(f, n) for f, n in zip(found, numbered, strict=True) if f >= 0}
    assert len(pairs) == len({f for f, _ in pairs}) == len({n for _, n in pairs})
    kept = [n for n in numbered if n >= 0]
    assert sorted(set(kept)) == list(range(len(set(kept))))
    order = sorted(set(kept), key=lambda n: (-kept.count(n), numbered.index(n)))
    assert order == sorted(set(kept))


def test_umaps_progress_bar_becomes_steps_of_the_layout() -> None:
    said: list[str] = []
    epochs = _Epochs(said.append)
    for text in ["0/200", "\r12/200", "\r12/200", "\r  150/200 ", "\r200/200", "\n", "no numbers"]:
        assert epochs.write(text) == len(text)
    epochs.flush()
    assert said == ["laying out, epoch 12/200", "laying out, epoch 150/200"]
