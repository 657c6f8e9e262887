"""Plan a job: snapshot key -> text hash, skip unusable texts, subtract the cache, write shards.

Everything row-sized runs inside DuckDB (hashing, dedup, the anti-join with the cache, rendering
request lines), and the query is read exactly once into a temporary table, so a query that is
slow or not deterministic is neither re-run nor seen twice with different rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from .cache import cache_table
from .errors import InputError, QueryError
from .ledger import Shard
from .models import ModelChoice
from .shards import ShardLimits, ShardWriter
from .source import Query, duck_message, quote, text_expression
from .target import HASH_COLUMN, SKIP_COLUMN
from .tokens import count_tokens

__all__ = ["Plan", "make_plan"]

_SOURCE = "_embedsql_source"
_TEXT = "__embedsql_text"
# Arrow batch size when streaming pending texts into shards: big enough to amortise Python work,
# small enough that a batch of long texts stays in the tens of MB.
_BATCH_ROWS = 20_000


@dataclass(frozen=True)
class Plan:
    """What a job will send: counts for the summary, and the shards written to disk."""

    total_rows: int
    skipped: dict[str, int]
    distinct_texts: int
    cached_texts: int
    tokens: int
    shards: list[Shard]


def make_plan(
    con: duckdb.DuckDBPyConnection,
    query: Query,
    *,
    job_id: str,
    rows_table: str,
    choice: ModelChoice,
    mode: str,
    directory: Path,
    limits: ShardLimits,
) -> Plan:
    """Snapshot the query into ``rows_table`` and write the texts the cache lacks into shards.

    Call inside a transaction: on any error nothing of the plan stays in the database.
    """
    keys = ", ".join(quote(k) for k in query.key_columns)
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {_SOURCE} AS
            SELECT {keys}, {HASH_COLUMN}, {SKIP_COLUMN}, CASE WHEN {SKIP_COLUMN} IS NULL THEN {_TEXT} END AS {_TEXT}
            FROM (
                SELECT *,
                       CASE WHEN {_TEXT} IS NULL THEN 'NULL text'
                            WHEN regexp_full_match({_TEXT}, '\\s*') THEN 'empty text' END AS {SKIP_COLUMN},
                       CASE WHEN {SKIP_COLUMN} IS NULL THEN substr(sha256({_TEXT}), 1, 32) END AS {HASH_COLUMN}
                FROM (SELECT {keys}, {text_expression(query)} AS {_TEXT} FROM (\n{query.sql}\n) AS q)
            )"""
        )
    except duckdb.Error as e:
        raise QueryError(f"the query failed: {duck_message(e)} Check the query and the data it reads.") from e
    total = _scalar(con, f"SELECT count(*) FROM {_SOURCE}")
    _check_keys(con, query, total, mode)

    con.execute(f"CREATE TABLE {rows_table} AS SELECT {keys}, {HASH_COLUMN}, {SKIP_COLUMN} FROM {_SOURCE}")
    skipped = dict(
        con.execute(
            f"SELECT {SKIP_COLUMN}, count(*) FROM {_SOURCE} WHERE {SKIP_COLUMN} IS NOT NULL GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    distinct = _scalar(con, f"SELECT count(DISTINCT {HASH_COLUMN}) FROM {_SOURCE}")
    cache = cache_table(con, choice.model.name, choice.dimensions, create=False)
    if cache is None:
        cached, unseen = 0, ""
    else:
        unseen = f"AND {HASH_COLUMN} NOT IN (SELECT text_hash FROM {cache})"
        cached = _scalar(
            con,
            f"SELECT count(DISTINCT {HASH_COLUMN}) FROM {_SOURCE} "
            f"WHERE {HASH_COLUMN} IN (SELECT text_hash FROM {cache})",
        )

    # base64 vectors are ~4x smaller to download than float lists; `dimensions` only when it shortens.
    fields = f"'model': {_literal(choice.model.name)}, 'encoding_format': 'base64'"
    if choice.dimensions != choice.model.dimensions:
        fields += f", 'dimensions': {int(choice.dimensions)}"
    pending = f"""
        SELECT custom_id, text,
               to_json({{'custom_id': custom_id, 'method': 'POST', 'url': '/v1/embeddings',
                         'body': {{'input': text, {fields}}}}}) || chr(10) AS line
        FROM (SELECT {HASH_COLUMN} AS custom_id, any_value({_TEXT}) AS text FROM {_SOURCE}
              WHERE {HASH_COLUMN} IS NOT NULL {unseen} GROUP BY 1)
        ORDER BY custom_id
    """
    model = choice.model

    def tokens_of(batch: pa.RecordBatch) -> np.ndarray:
        return count_tokens(model, batch.column("text").to_pylist())

    writer = ShardWriter(directory, job_id=job_id, limits=limits, count_tokens=tokens_of)
    shards = writer.write_all(con.sql(pending).to_arrow_reader(_BATCH_ROWS))
    con.execute(f"DROP TABLE {_SOURCE}")
    return Plan(
        total_rows=total,
        skipped=skipped,
        distinct_texts=distinct,
        cached_texts=cached,
        tokens=sum(s.tokens for s in shards),
        shards=shards,
    )


def _check_keys(con: duckdb.DuckDBPyConnection, query: Query, total: int, mode: str) -> None:
    keys = ", ".join(quote(k) for k in query.key_columns)
    shown = ", ".join(query.key_columns)
    if total == 0 and mode == "replace":
        raise InputError(
            "the query returned no rows; replacing the target with an empty table is almost certainly "
            "a mistake. Check the query's WHERE clause, or use --mode upsert to add nothing."
        )
    any_null = " OR ".join(f"{quote(k)} IS NULL" for k in query.key_columns)
    nulls = _scalar(con, f"SELECT count(*) FROM {_SOURCE} WHERE {any_null}")
    if nulls:
        raise InputError(
            f"the key ({shown}) is NULL in {nulls:,} of {total:,} rows; every row needs a key to join "
            f"its vector back. Filter them out (WHERE ... IS NOT NULL) or choose another --key."
        )
    dupes = con.execute(
        f"SELECT {keys}, count(*) AS n, count(*) OVER () AS keys FROM {_SOURCE} GROUP BY ALL HAVING n > 1 "
        f"ORDER BY n DESC, {keys} LIMIT 3"
    ).fetchall()
    if dupes:
        width = len(query.key_columns)
        examples = ", ".join(f"{_show(row[:width])} ({row[width]} rows)" for row in dupes)
        raise InputError(
            f"the key ({shown}) is not unique: {dupes[0][-1]:,} values appear more than once, e.g. {examples}. "
            "Make the key unique in the query, or name unique column(s) with --key."
        )


def _show(values: tuple[object, ...]) -> str:
    shown = [repr(v) if isinstance(v, str) else str(v) for v in values]
    return shown[0] if len(shown) == 1 else "(" + ", ".join(shown) + ")"


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchall()[0][0])


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
