"""What the test_batch_* files share: a small table of texts, and the check that a target table holds
exactly the local OpenAI server's vector of every key's text."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fake_openai import expected_vector
from helpers import texts_table, vectors_by_key

MODEL = "text-embedding-3-small"
Q = "select movieId, genres from movies"


def assert_exact_table(db: Path, table: str, texts: dict[object, str], key: str, dimensions: int = 1536) -> None:
    """Every key has exactly the server's vector of its own text."""
    vectors = vectors_by_key(db, table, key)
    assert sorted(vectors) == sorted(texts)  # type: ignore[type-var]
    cache: dict[str, np.ndarray] = {}
    for k in vectors:
        text = texts[k]
        if text not in cache:
            cache[text] = expected_vector(MODEL, text, dimensions)
    # All rows compared at once: one call per row took seconds for the 62,423 rows of the movies.
    np.testing.assert_array_equal(np.stack(list(vectors.values())), np.stack([cache[texts[k]] for k in vectors]))


def small_db(path: Path, n: int = 40) -> tuple[Path, dict[int, str]]:
    texts = {i: f"document number {i} about {'cats' if i % 2 else 'dogs'}" for i in range(n)}
    return texts_table(path, texts), texts
