"""fastokens, the optional accelerator of cl100k_base counts, against tiktoken: exactly the same count
for every text. Runs where fastokens is installed (the ``test`` extra installs it)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedsql.tokens import count_fast, count_tiktoken, fast_cl100k_base

from batch_rules import ENCODING

pytestmark = pytest.mark.skipif(fast_cl100k_base() is None, reason="fastokens is not installed")

# Pieces that cl100k's pre-tokenizer treats specially: whitespace runs (and `\s+$` at the end), newlines,
# contractions in both cases, digit runs (split by three), punctuation runs, code, emoji with
# modifiers and joiners, scripts without spaces, and the special tokens as plain text.
PIECES = [
    " ",
    "   ",
    "\n",
    "\r\n",
    "\n\n\n",
    "\t\t",
    "\u3000",
    "\u00a0",
    "'s",
    "'LL",
    "'Ve",
    "1",
    "12345678901",
    "3.14159",
    "!!!",
    "?\n",
    "def f(x):\n    return x**2  # square\n",
    '{"a": [1, 2]}',
    "<|endoftext|>",
    "<|endoftext",
    "|>",
    "<|fim_prefix|>",
    "<|endofprompt|>",
    "é",
    "e\u0301",
    "日本語のテキスト",
    "한국어",
    "مرحبا",
    "🙂",
    "👍🏽",
    "👩‍👩‍👧",
    "🇫🇷",
    "\u200b",
    "\ufeff",
    "the",
    "Hello",
]
_text = st.lists(st.sampled_from(PIECES) | st.text(max_size=16), max_size=12).map("".join)
# Long texts: a piece repeated into runs of thousands of characters (whitespace, digits, one word).
_long = st.tuples(st.sampled_from(PIECES), st.integers(1, 3000)).map(lambda p: p[0] * p[1])


@settings(max_examples=300)
@given(st.lists(_text | _long | st.text(), max_size=30))
def test_fastokens_counts_as_tiktoken(texts: list[str]) -> None:
    expected = [len(ENCODING.encode_ordinary(t)) for t in texts]

    assert count_fast(texts).tolist() == expected
    assert count_tiktoken(texts).tolist() == expected


def test_a_special_token_inside_a_text_is_plain_text() -> None:
    texts = ["<|endoftext|>", "a<|endoftext|>b", "<|fim_middle|><|endofprompt|>"]

    assert count_fast(texts).tolist() == [len(ENCODING.encode_ordinary(t)) for t in texts] == [7, 9, 13]
