"""Token counts in cl100k_base: embedsql's chunked counting against tiktoken's own, text by text.

The reference is ``encode_ordinary`` of an encoding built independently in ``batch_rules`` (the
local OpenAI server counts with it too): a text's count must not depend on its neighbours, on the
chunk it was counted in, or on special-token strings inside it.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedsql.models import MODELS
from embedsql.tokens import count_tokens, truncate

from batch_rules import ENCODING

MODEL = MODELS["text-embedding-3-small"]
# Pieces that cl100k's pre-tokenizer treats specially at the edges of a text: trailing whitespace
# (`\s+$`), newlines, apostrophe suffixes, digit runs, punctuation runs, and the special tokens.
EDGES = [
    " ",
    "  ",
    "\n",
    "\r\n",
    "\t",
    "'s",
    "'LL",
    "123",
    "4567",
    "!!",
    "?\n",
    "<|endoftext|>",
    "<|endoftext",
    "|>",
    "<|fim_prefix|>",
    "é",
    "日本",
    "🙂",
    "a",
    "Z",
]


def reference(texts: list[str]) -> list[int]:
    return [len(ENCODING.encode_ordinary(t)) for t in texts]


@settings(max_examples=200)
@given(st.lists(st.lists(st.sampled_from(EDGES) | st.text(max_size=12), max_size=6).map("".join), max_size=40))
def test_each_text_counts_as_it_would_alone(texts: list[str]) -> None:
    counts = count_tokens(MODEL, texts)

    assert counts.dtype == np.int64
    assert counts.tolist() == reference(texts)


def test_a_text_holding_the_separator_counts_as_plain_text() -> None:
    texts = ["before", "a <|endoftext|> inside", "<|endoftext|>", "after  "]

    assert count_tokens(MODEL, texts).tolist() == reference(texts) == [1, 8, 7, 2]


def test_many_texts_are_counted_in_chunks_on_threads_in_order() -> None:
    # ~2.6M characters: three chunks, counted on as many threads as there are cores.
    texts = [f"Adventure|Animation|Children {i} {'Comedy ' * (i % 7)}\n" for i in range(50_000)]

    counts = count_tokens(MODEL, texts)

    assert counts.tolist() == reference(texts)
    assert int(counts.sum()) == sum(reference(texts))


def test_a_one_core_machine_counts_every_chunk_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    texts = [f"text number {i}, " * 5 for i in range(40_000)]  # ~3.6M characters: four chunks

    assert count_tokens(MODEL, texts).tolist() == reference(texts)


def test_no_texts_no_counts() -> None:
    assert count_tokens(MODEL, []).tolist() == []


def test_truncate_cuts_at_the_limit_and_leaves_short_texts_alone() -> None:
    long = "word " * 9_000

    cut = truncate(MODEL, long)

    assert len(ENCODING.encode_ordinary(cut)) == MODEL.max_tokens
    assert long.startswith(cut)
    assert truncate(MODEL, "short text") == "short text"
