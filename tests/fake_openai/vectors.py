"""What the server computes from a text alone: its vector and its token count.

Both are pure and cached, so a test can compute the exact vector the server returns for any key.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from batch_rules import ENCODING


def expected_vector(model: str, text: str, dimensions: int) -> np.ndarray:
    """The float32 unit vector the server returns for ``text`` embedded by ``model`` at ``dimensions``.

    Seeded with ``int.from_bytes(sha256(f"{model}\\0{dimensions}\\0{text}"), "big")``: a standard normal draw
    of numpy's ``default_rng``, L2-normalised. Without a ``dimensions`` request parameter the server uses
    the model's native dimensions.
    """
    return vector(model, text, dimensions).copy()


@functools.lru_cache(maxsize=4_096)
def vector(model: str, text: str, dimensions: int) -> np.ndarray:
    """:func:`expected_vector`, read-only and shared (what the server writes into its answers)."""
    digest = hashlib.sha256(f"{model}\0{dimensions}\0{text}".encode()).digest()
    draw = np.random.default_rng(int.from_bytes(digest, "big")).standard_normal(dimensions)
    unit = (draw / np.linalg.norm(draw)).astype(np.float32)
    unit.flags.writeable = False
    return unit


@functools.lru_cache(maxsize=65_536)
def token_count(text: str) -> int:
    """cl100k_base tokens of ``text``, as the server counts them (special tokens are plain text)."""
    return len(ENCODING.encode_ordinary(text))
