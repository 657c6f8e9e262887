"""Tests for embedsql.local_model: the in-process all-MiniLM-L6-v2."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedsql.local_model import (
    DIMENSIONS,
    MAX_TOKENS,
    MODEL_NAME,
    LocalModel,
    load_local_model,
)

PANGRAM = "the quick brown fox jumps over the lazy dog "
LONG_TEXT = PANGRAM * 60  # 540 words, each one WordPiece token

VARIED_TEXTS = [
    "",
    "hello world",
    "A cat sits on the mat",
    "Adventure|Animation|Children|Comedy|Fantasy",
    "Documentary|War",
    "naïve café, Ünïcödé and 日本語 text",
    "🎉🐈 party cat 🎉",
    (
        "A much longer sentence that goes on for a while so that it needs a lot more "
        "padding when it shares a batch with the short ones above."
    ),
    PANGRAM * 20,
    LONG_TEXT,
]
# Cheaper companions for the tests that embed many times.
SHORT_TEXTS = VARIED_TEXTS[:8]


@pytest.fixture(scope="module")
def model() -> LocalModel:
    return load_local_model()


def test_constants() -> None:
    assert MODEL_NAME == "all-MiniLM-L6-v2"
    assert DIMENSIONS == 384
    assert MAX_TOKENS == 256


def test_shape_dtype_and_unit_length(model: LocalModel) -> None:
    assert model.count_tokens([LONG_TEXT])[0] > MAX_TOKENS
    vectors = model.embed(VARIED_TEXTS)
    assert vectors.shape == (len(VARIED_TEXTS), DIMENSIONS)
    assert vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    assert np.all(np.abs(np.linalg.norm(vectors, axis=1) - 1.0) < 1e-5)


def test_long_text_is_truncated_to_max_tokens(model: LocalModel) -> None:
    # [CLS] + 254 words + [SEP] is exactly what survives truncation.
    kept = " ".join(LONG_TEXT.split()[: MAX_TOKENS - 2])
    shorter = " ".join(LONG_TEXT.split()[: MAX_TOKENS - 20])
    long_vec, kept_vec, shorter_vec = model.embed([LONG_TEXT, kept, shorter])
    np.testing.assert_allclose(long_vec, kept_vec, rtol=0, atol=1e-6)
    assert np.abs(long_vec - shorter_vec).max() > 1e-4


@pytest.mark.parametrize(
    ("anchor", "near", "far"),
    [
        (
            "A cat sits on the mat",
            "A kitten is sitting on a rug",
            "Quarterly revenue grew by 5 percent",
        ),
        (
            "Adventure|Animation|Children|Comedy|Fantasy",
            "Animation|Children|Fantasy",
            "Documentary|War",
        ),
        (
            "How do I reset my password?",
            "I forgot my login credentials",
            "The weather is sunny today",
        ),
    ],
)
def test_semantic_sanity(model: LocalModel, anchor: str, near: str, far: str) -> None:
    a, n, f = model.embed([anchor, near, far])
    assert float(a @ n) > float(a @ f) + 0.2


def test_vector_does_not_depend_on_batch(model: LocalModel) -> None:
    alone = np.vstack([model.embed([text]) for text in VARIED_TEXTS])
    together = model.embed(VARIED_TEXTS)
    # Small batches mix lengths differently from one big batch.
    small_batches = LocalModel(threads=1, batch_size=3).embed(VARIED_TEXTS)
    assert np.abs(alone - together).max() <= 1e-5
    assert np.abs(alone - small_batches).max() <= 1e-5


@settings(max_examples=25)
@given(st.lists(st.text(max_size=200), min_size=1, max_size=8))
def test_vector_does_not_depend_on_batch_property(texts: list[str]) -> None:
    model = load_local_model()
    together = model.embed(texts + SHORT_TEXTS)[: len(texts)]
    alone = np.vstack([model.embed([text]) for text in texts])
    assert np.abs(alone - together).max() <= 1e-5


def test_order_preserved_when_shuffled(model: LocalModel) -> None:
    texts = SHORT_TEXTS * 3
    permutation = list(range(len(texts)))
    random.Random(7).shuffle(permutation)
    reference = model.embed(texts)
    shuffled = model.embed([texts[i] for i in permutation])
    assert np.abs(shuffled - reference[permutation]).max() <= 1e-5


def test_deterministic(model: LocalModel) -> None:
    np.testing.assert_array_equal(model.embed(VARIED_TEXTS), model.embed(VARIED_TEXTS))


def test_count_tokens(model: LocalModel) -> None:
    counts = model.count_tokens(["hello world", "Hello, World!", "", "unaffable", LONG_TEXT])
    assert counts.dtype == np.int64
    # [CLS] hello world [SEP]; [CLS] hello , world ! [SEP]; [CLS] [SEP];
    # [CLS] una ##ffa ##ble [SEP]; [CLS] + 540 words + [SEP], not truncated.
    assert counts.tolist() == [4, 6, 2, 5, 542]


def test_empty_input(model: LocalModel) -> None:
    vectors = model.embed([])
    assert vectors.shape == (0, DIMENSIONS)
    assert vectors.dtype == np.float32
    counts = model.count_tokens([])
    assert counts.shape == (0,)
    assert counts.dtype == np.int64


def test_single_string_is_rejected(model: LocalModel) -> None:
    with pytest.raises(TypeError, match="single string"):
        model.embed("hello world")
    with pytest.raises(TypeError, match="single string"):
        model.count_tokens("hello world")


@pytest.mark.parametrize(("kwargs", "message"), [({"threads": 0}, "threads"), ({"batch_size": 0}, "batch_size")])
def test_invalid_arguments(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LocalModel(**kwargs)


def test_load_local_model_is_cached() -> None:
    assert load_local_model() is load_local_model()
