"""The cache: one table of vectors per (model, dimensions), keyed by text hash.

A text embedded once with a model is never paid for again: every job first subtracts what the
cache holds. Cache tables live in schema ``embedsql`` and are listed in ``embedsql.caches``.

Each text is in its cache once. embedsql keeps it so, not an index: every insert adds only texts
the cache lacks (``store_vectors`` by an anti-join, a load by the texts it looked up before it
inserts, ``embedsql.load``). A PRIMARY KEY would hold every key in memory (~90 bytes a text): a
cache of 5 million texts outgrew the 512MB DuckDB is given, and each insert ran ~3x slower.
Caches made before keep their key, which does no harm below that size.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import arrays

__all__ = ["ensure_cache", "find_cache", "insert_new_vectors", "remove_vectors", "store_vectors", "vectors_table"]


def find_cache(con: duckdb.DuckDBPyConnection, model: str, dimensions: int) -> str | None:
    """Quoted name of the cache table for (model, dimensions), or None if there is none yet."""
    rows = con.execute(
        "SELECT table_name FROM embedsql.caches WHERE model = ? AND dimensions = ?", [model, dimensions]
    ).fetchall()
    return f'embedsql."{rows[0][0]}"' if rows else None


def ensure_cache(con: duckdb.DuckDBPyConnection, model: str, dimensions: int) -> str:
    """Quoted name of the cache table for (model, dimensions), created (and listed) if it is missing."""
    found = find_cache(con, model, dimensions)
    if found is not None:
        return found
    base = "cache_" + re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_") + f"_{dimensions}"
    taken = {r[0] for r in con.execute("SELECT table_name FROM embedsql.caches").fetchall()}
    name, n = base, 1
    while name in taken:  # two model names may fold to the same identifier
        n += 1
        name = f"{base}_{n}"
    con.execute(f'CREATE TABLE embedsql."{name}" (text_hash VARCHAR NOT NULL, embedding FLOAT[{dimensions}] NOT NULL)')
    con.execute("INSERT INTO embedsql.caches VALUES (?, ?, ?)", [model, dimensions, name])
    return f'embedsql."{name}"'


def vectors_table(custom_ids: pa.Array, vectors: np.ndarray) -> pa.Table:
    """An Arrow table (text_hash, embedding FLOAT[N]) over ``vectors`` without copying them."""
    embedding = pa.FixedSizeListArray.from_arrays(arrays.float32s(vectors), vectors.shape[1])
    return arrays.table({"text_hash": custom_ids, "embedding": embedding})


def store_vectors(con: duckdb.DuckDBPyConnection, table: str, custom_ids: pa.Array, vectors: np.ndarray) -> int:
    """Add vectors to a cache table; a text already there keeps its vector. Returns rows offered.

    For a few vectors at a time (``embed()``): it looks up every id in the whole cache. Loading a
    job's results goes through ``insert_new_vectors`` instead.
    """
    if len(custom_ids) == 0:
        return 0
    offered = len(custom_ids)
    custom_ids, vectors = _first_of_each(custom_ids, vectors)
    with _incoming(con, custom_ids, vectors):
        # An anti-join rather than INSERT OR IGNORE: it skips known texts before their vectors are
        # copied into the insert (about 1.6x faster for 1536-d vectors).
        con.execute(
            f"INSERT INTO {table} SELECT * FROM _embedsql_incoming "
            f"WHERE text_hash NOT IN (SELECT text_hash FROM {table})"
        )
    return offered


def insert_new_vectors(
    con: duckdb.DuckDBPyConnection, table: str, custom_ids: pa.Array, vectors: np.ndarray, *, known: set[str]
) -> set[str]:
    """Add the vectors of ids that are not in ``known`` (the caller's ids already in the cache, or
    stored before) with a plain insert; returns the ids added. The same id twice keeps its first
    vector. No look-up in the cache itself: its cost would grow with the cache, for every call."""
    custom_ids, vectors = _first_of_each(custom_ids, vectors)
    # Membership in the set itself: turning a growing ``known`` into an Arrow array for every batch
    # would cost more than the batch.
    new = np.fromiter((c not in known for c in custom_ids.to_pylist()), dtype=bool, count=len(custom_ids))
    if not new.all():
        custom_ids, vectors = custom_ids.filter(arrays.booleans(new)), vectors[new]
    if len(custom_ids):
        with _incoming(con, custom_ids, vectors):
            con.execute(f"INSERT INTO {table} SELECT * FROM _embedsql_incoming")
    return set(custom_ids.to_pylist())


def remove_vectors(con: duckdb.DuckDBPyConnection, table: str, custom_ids: set[str]) -> None:
    """Take the vectors of ``custom_ids`` out of ``table`` (ones the running transaction put in)."""
    if not custom_ids:
        return
    con.register("_embedsql_removed", arrays.table({"text_hash": arrays.strings(custom_ids)}))
    try:
        con.execute(f"DELETE FROM {table} WHERE text_hash IN (SELECT text_hash FROM _embedsql_removed)")
    finally:
        con.unregister("_embedsql_removed")


def _first_of_each(custom_ids: pa.Array, vectors: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """The same text twice in one answer: keep its first vector. Deduplicating here, on the ids,
    spares DuckDB from grouping the vectors themselves (DISTINCT ON over 6 KB rows is slow)."""
    if len(custom_ids) == 0 or pc.count_distinct(custom_ids).as_py() == len(custom_ids):
        return custom_ids, vectors
    _, first = np.unique(np.asarray(custom_ids.to_pylist(), dtype=object), return_index=True)
    first.sort()
    return custom_ids.take(arrays.int64s(first)), vectors[first]


@contextlib.contextmanager
def _incoming(con: duckdb.DuckDBPyConnection, custom_ids: pa.Array, vectors: np.ndarray) -> Iterator[None]:
    """The vectors as the view ``_embedsql_incoming`` for one statement.

    A reader over the batches, not the table: DuckDB keeps what is registered alive until the
    transaction ends, and a reader it has consumed holds no vectors any more (a table would keep
    every batch of a load's transaction in memory: ~300 MB per 50,000 1536-d vectors).
    """
    incoming = vectors_table(custom_ids, vectors)
    con.register("_embedsql_incoming", pa.RecordBatchReader.from_batches(incoming.schema, iter(incoming.to_batches())))
    del incoming
    try:
        yield
    finally:
        # After a failed insert the transaction is aborted and refuses even this; the failure matters.
        with contextlib.suppress(duckdb.Error):
            con.unregister("_embedsql_incoming")
