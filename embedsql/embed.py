"""``embed(text)`` inside DuckDB, and ``connect()``: a connection where it is registered.

``embed`` is a vectorised (Arrow) scalar function: DuckDB hands it a chunk of texts at a time, it
embeds each distinct text the cache lacks in one batch (the local model in process, OpenAI models
through the synchronous API), stores them in the same cache as ``embedsql run``, and returns
``FLOAT[N]``, so that ``array_cosine_similarity(embedding, embed('...'))`` works in plain SQL.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import duckdb.func
import numpy as np
import pyarrow as pa

from . import arguments, arrays, ledger
from .cache import ensure_cache, store_vectors
from .config import Settings
from .dbt_project import check_built, resolve_query
from .duck import duck_message
from .errors import ConfigError, QueryError
from .models import ModelChoice, choose_model, recorded_choice
from .source import blank
from .target import TargetName, TargetRecord, target_models, written_target
from .tokens import truncate
from .values import to_arrow

__all__ = [
    "Embedder",
    "connect",
    "open_with_embed",
    "query_model",
    "register",
    "sql",
    "table_model",
    "text_hash",
]


def text_hash(text: str) -> str:
    """The cache key of ``text``: as ``embedsql run`` computes it in SQL (sha256, first 32 hex digits)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class Embedder:
    """Texts to vectors of one model and size, through the database's cache.

    A database without a ledger (no ``embedsql run`` yet) has no cache, and gets none: ``embed()``
    there keeps its vectors in memory only, so that a query never creates embedsql's tables.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, choice: ModelChoice, settings: Settings) -> None:
        self.con = con
        self.choice = choice
        self.settings = settings
        self.memo: dict[str, np.ndarray] = {}
        self.cached = ledger.has_ledger(con)
        # dbt runs models in threads, each on its own cursor of one connection: one fill at a time.
        self._lock = threading.Lock()
        # Built on first need: texts found in the cache need neither the model nor an API key.
        self._compute: Callable[[list[str]], np.ndarray] | None = None
        self._api: Any = None

    def vectors(self, texts: list[str]) -> np.ndarray:
        """One row per text (texts must not be empty), from memory, the cache, or the model."""
        hashes = [text_hash(t) for t in texts]
        with self._lock:
            missing = {h: t for h, t in zip(hashes, texts, strict=True) if h not in self.memo}
            if missing:
                self._fill(missing)
            return np.stack([self.memo[h] for h in hashes]) if hashes else self._empty()

    def arrow(self, texts: pa.Array) -> pa.Array:
        """The DuckDB function: NULL or blank text gives NULL, never a zero vector (its cosine is NaN)."""
        values = texts.to_pylist()
        usable = [i for i, t in enumerate(values) if not blank(t)]
        matrix = np.zeros((len(values), self.choice.dimensions), np.float32)
        if usable:
            matrix[usable] = self.vectors([values[i] for i in usable])
        mask = np.ones(len(values), dtype=bool)
        mask[usable] = False
        return pa.FixedSizeListArray.from_arrays(
            arrays.float32s(matrix), self.choice.dimensions, mask=arrays.booleans(mask)
        )

    def _fill(self, missing: dict[str, str]) -> None:
        if not self.cached:
            self._compute_missing(missing)
            return
        # A cursor is a second connection to the same database: it may read and write the cache
        # while the query that called embed() is still running on the first.
        cursor = self.con.cursor()
        try:
            table = ensure_cache(cursor, self.choice.model.name, self.choice.dimensions)
            cursor.register("_embedsql_wanted", arrays.table({"h": arrays.strings(missing)}))
            found = cursor.sql(
                f"SELECT text_hash, embedding FROM {table} WHERE text_hash IN (SELECT h FROM _embedsql_wanted)"
            ).to_arrow_table()
            cursor.unregister("_embedsql_wanted")
            known = found["text_hash"].to_pylist()
            if known:
                flat = arrays.numbers(found["embedding"].combine_chunks().flatten())
                for h, vector in zip(known, flat.reshape(len(known), -1), strict=True):
                    self.memo[h] = vector
            computed = self._compute_missing(missing)
            if computed:
                store_vectors(cursor, table, arrays.strings(computed), np.stack([self.memo[h] for h in computed]))
        finally:
            cursor.close()

    def _compute_missing(self, missing: dict[str, str]) -> list[str]:
        """Embed the texts of ``missing`` that memory does not hold yet; returns their hashes."""
        todo = [h for h in missing if h not in self.memo]
        if todo:
            if self._compute is None:
                self._compute, self._api = _computer(self.choice, self.settings)
            vectors = self._compute([missing[h] for h in todo])
            for h, vector in zip(todo, vectors, strict=True):
                self.memo[h] = vector
        return todo

    def close(self) -> None:
        """Close the API client, if one was opened."""
        if self._api is not None:
            self._api.close()
            self._api = None

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.choice.dimensions), np.float32)


def _computer(choice: ModelChoice, settings: Settings) -> tuple[Callable[[list[str]], np.ndarray], Any]:
    """The function that embeds texts the cache lacks, and the API client it holds (or None)."""
    model = choice.model
    if model.provider == "local":
        from .local_model import load_local_model

        local = load_local_model()
        return local.embed, None
    from .runners.openai import OpenAIClient

    api = OpenAIClient(settings)
    dimensions = choice.dimensions if choice.dimensions != model.dimensions else None
    return lambda texts: api.embed([truncate(model, t) for t in texts], model=model.name, dimensions=dimensions), api


def query_model(con: duckdb.DuckDBPyConnection, settings: Settings, *, table: str | None = None) -> ModelChoice:
    """The model whose vectors a query compares with: ``table``'s, the one all targets share, or the
    one configured. An explicit model that differs from ``table``'s is an error naming both."""
    if table is not None:
        return table_model(*written_target(con, table), settings)
    if settings.model is not None:
        return choose_model(settings)
    models = target_models(con)
    if len(models) == 1:
        ((model, dimensions),) = models
        return recorded_choice(model, dimensions, "the model of this database's embeddings")
    if len(models) > 1:
        listed = ", ".join(f"{m} ({d}-d)" for m, d in models)
        raise ConfigError(f"this database holds vectors of several models ({listed}); pass --model to pick one.")
    return choose_model(settings)


def table_model(name: TargetName, recorded: TargetRecord, settings: Settings) -> ModelChoice:
    """The model of table ``name`` (as ``embedsql.targets`` records it); an explicit model that
    differs is an error naming both."""
    model, dimensions = recorded.model, recorded.dimensions
    if settings.model is not None and (settings.model, settings.dimensions or dimensions) != (model, dimensions):
        raise ConfigError(
            f"table {name} holds {dimensions}-d vectors of {model}, but --model asks for {settings.model}: "
            f"vectors of different models cannot be compared. Drop --model, or pass --model {model}."
        )
    return recorded_choice(model, dimensions, f"the model of table {name}")


def register(con: duckdb.DuckDBPyConnection, embedder: Embedder, *, name: str = "embed") -> None:
    """Make ``name(text)`` call ``embedder`` on ``con``."""
    con.create_function(
        name,
        embedder.arrow,
        [duckdb.sqltype("VARCHAR")],
        duckdb.sqltype(f"FLOAT[{embedder.choice.dimensions}]"),
        type=duckdb.func.ARROW,
        null_handling=duckdb.func.SPECIAL,  # NULL in, NULL out is ours to decide (blank text too)
        side_effects=False,
    )


def connect(
    db: str | Path | None = None, *, model: str | None = None, settings: Settings | None = None, **overrides: Any
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to ``db`` with ``embed(text)`` registered (the model of the database's
    embeddings, or ``model``). Close it when done; it holds the database like any connection."""
    return open_with_embed(db, model=model, settings=settings, **overrides)[0]


def sql(query: str, *, settings: Settings | None = None, **overrides: Any) -> pa.Table:
    """The rows of ``query``, run with ``embed(text)`` available (what ``embedsql sql`` prints).

    With a dbt project, ``{{ ref() }}`` and ``{{ source() }}`` are resolved first. A statement
    that returns no rows gives an empty table. ``overrides`` are settings (``db=``, ``model=``, ...).
    Columns keep their names and order, repeated names included. Every value is DuckDB's: a column
    of a type that Arrow would change (BIT, BIGNUM, TIME WITH TIME ZONE, UHUGEINT, also inside a
    list, struct, map or union) holds DuckDB's text of each value. The field metadata of such a
    column, and of a HUGEINT or JSON one, names the DuckDB type (``embedsql.values.DUCKDB_TYPE``).
    """
    query = arguments.text("query", query)
    settings = arguments.call_settings(settings, overrides, function=sql)
    with ledger.explained(settings.db):
        query, relations = resolve_query(query, settings.dbt_project, db=settings.db)
        con, embedder = open_with_embed(settings=settings)
        try:
            check_built(con, relations)
            try:
                relation = con.sql(query)  # None for a statement that returns no rows
                return to_arrow(relation) if relation is not None else pa.table({})
            except duckdb.Error as e:
                raise QueryError(f"{duck_message(e)} Check the SQL of the query.") from e
        finally:
            con.close()
            embedder.close()


def open_with_embed(
    db: str | Path | None = None, *, model: str | None = None, settings: Settings | None = None, **overrides: Any
) -> tuple[duckdb.DuckDBPyConnection, Embedder]:
    """``connect``, also returning the ``Embedder`` behind ``embed()`` (close both when done)."""
    settings = arguments.call_settings(settings, {"db": db, "model": model, **overrides}, function=connect)
    with ledger.explained(settings.db):
        # The user's SQL may write, and embed() writes the cache where there is one; neither starts a ledger.
        con = ledger.connect(settings.db, wait=settings.lock_wait, create_ledger=False)
        try:
            embedder = Embedder(con, query_model(con, settings), settings)
            register(con, embedder)
        except BaseException:
            con.close()
            raise
    return con, embedder
