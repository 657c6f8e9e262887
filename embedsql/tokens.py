"""Token counts, in the tokenizer of each model, from files shipped inside the package.

``tiktoken.get_encoding("cl100k_base")`` downloads its BPE table at run time, which fails offline,
so the table ships in ``embedsql/models/`` (MIT, see NOTICE.md) and is checked against its hash.

fastokens (the optional extra ``embedsql[fast]``) counts cl100k_base 3-4x faster than tiktoken
(100k texts of ~1.3 kB: 2.6 s instead of 8.2 s on 2 cores) with the same counts
(tests/test_tokens_fast.py), but loads its table in ~1 s against tiktoken's ~0.5 s: it is used,
when installed, once a call has enough text to win that back.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import numpy as np

from .models import ModelInfo

__all__ = ["cl100k_base", "count_fast", "count_tiktoken", "count_tokens", "fast_cl100k_base", "truncate"]

_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
# cl100k_base's split pattern and special tokens, as tiktoken_ext.openai_public defines them.
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_CL100K_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


@functools.cache
def cl100k_base():  # type: ignore[no-untyped-def]  # tiktoken is imported lazily, on first use
    """The cl100k_base encoding, built from the bundled table without touching the network."""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    path = resources.files("embedsql") / "models" / "cl100k_base.tiktoken"
    with resources.as_file(path) as file:
        ranks = load_tiktoken_bpe(str(file), expected_hash=_CL100K_SHA256)
    return tiktoken.Encoding(
        name="cl100k_base", pat_str=_CL100K_PATTERN, mergeable_ranks=ranks, special_tokens=_CL100K_SPECIAL
    )


def count_tokens(model: ModelInfo, texts: Sequence[str]) -> np.ndarray:
    """Tokens of each text in ``model``'s tokenizer, before any truncation (int64 array)."""
    if not texts:
        return np.zeros(0, dtype=np.int64)
    if model.tokenizer == "cl100k_base":
        return _count_cl100k(texts)
    from .local_model import load_local_model

    return load_local_model().count_tokens(texts)


# Texts are counted a chunk at a time: joined by the end-of-text special token into one string, which
# tiktoken cuts at every special token before it splits and merges the pieces between, so each text
# is tokenised exactly as on its own (encode_ordinary) and the separators give the counts. One call
# per chunk instead of one per text, numpy instead of a list of ints, and the chunks on threads (the
# encoder releases the GIL): in prepare's profile, 1M short texts took 2.0 s instead of 2.5 s.
_SEPARATOR = "<|endoftext|>"
_CHUNK_CHARS = 1_000_000
# Below this many characters, one thread: starting others costs more than they save.
_THREADED_CHARS = 50_000


# Characters of text in one call from which fastokens (if installed) is loaded: its table takes
# ~0.6 s more to load than tiktoken's, which counts ~8M characters of English in that time.
_FAST_FROM_CHARS = 8_000_000


@functools.cache
def fast_cl100k_base():  # type: ignore[no-untyped-def]  # fastokens is optional, imported lazily
    """cl100k_base in fastokens, from the bundled table; None when fastokens is not installed."""
    try:
        import fastokens
    except ImportError:
        return None
    path = resources.files("embedsql") / "models" / "cl100k_base.tiktoken"
    with resources.as_file(path) as file:
        cl100k_base()  # checks the table against its hash, as fastokens does not
        return fastokens.Tokenizer.from_tiktoken(str(file), pattern=_CL100K_PATTERN, special_tokens=_CL100K_SPECIAL)


def _count_cl100k(texts: Sequence[str]) -> np.ndarray:
    fast = fast_cl100k_base.cache_info().currsize > 0 or sum(map(len, texts)) >= _FAST_FROM_CHARS
    if fast and fast_cl100k_base() is not None:
        return count_fast(texts)
    return count_tiktoken(texts)


def count_fast(texts: Sequence[str]) -> np.ndarray:
    """Tokens of each text in cl100k_base by fastokens (which must be installed)."""
    # split_special_tokens: "<|endoftext|>" inside a text is plain text, as in encode_ordinary.
    _, offsets = fast_cl100k_base().encode_batch_flat(list(texts), split_special_tokens=True)
    return np.diff(np.frombuffer(offsets, dtype=np.uint64)).astype(np.int64)


def count_tiktoken(texts: Sequence[str]) -> np.ndarray:
    """Tokens of each text in cl100k_base by tiktoken."""
    if not texts:
        return np.zeros(0, dtype=np.int64)
    encoding = cl100k_base()
    separator = encoding.encode_single_token(_SEPARATOR)

    def count(chunk: Sequence[str]) -> np.ndarray:
        joined = _SEPARATOR.join(chunk) + _SEPARATOR
        # The separator cannot overlap itself, so a text that holds it shows as an extra occurrence;
        # such a chunk (data, not prompts: the string counts as plain text) is counted text by text.
        if joined.count(_SEPARATOR) != len(chunk):
            return np.fromiter((len(encoding.encode_ordinary(t)) for t in chunk), dtype=np.int64, count=len(chunk))
        tokens = encoding.encode_to_numpy(joined, allowed_special={_SEPARATOR}, disallowed_special=())
        ends = np.flatnonzero(tokens == separator).astype(np.int64)
        return np.diff(ends, prepend=-1) - 1

    workers = min(os.cpu_count() or 1, 8)
    chars = sum(map(len, texts)) + len(_SEPARATOR) * len(texts)
    parts = max(chars // _CHUNK_CHARS, workers if chars >= _THREADED_CHARS else 1)
    step = -(-len(texts) // parts)
    chunks = [texts[i : i + step] for i in range(0, len(texts), step)]
    workers = min(workers, len(chunks))
    if workers == 1:
        return np.concatenate([count(chunk) for chunk in chunks])
    with ThreadPoolExecutor(workers) as pool:
        return np.concatenate(list(pool.map(count, chunks)))


def truncate(model: ModelInfo, text: str) -> str:
    """``text`` cut to ``model.max_tokens`` tokens, exactly at a token boundary.

    The local model truncates its own input as sentence-transformers does, so its texts are sent
    whole; a cl100k text is cut by decoding its first ``max_tokens`` tokens.
    """
    if model.tokenizer != "cl100k_base":
        return text
    encoding = cl100k_base()
    tokens = encoding.encode_ordinary(text)
    if len(tokens) <= model.max_tokens:
        return text
    # Decoding a token prefix can end inside a multi-byte character; drop tokens until it does not.
    end = model.max_tokens
    while end > 0:
        try:
            return bytes(encoding.decode_bytes(tokens[:end])).decode("utf-8")
        except UnicodeDecodeError:
            end -= 1
    return ""
