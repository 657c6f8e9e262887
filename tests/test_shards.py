"""Shards: valid Batch API input, cut by every limit, texts carried exactly."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import embedsql
from embedsql.cli import cli
from embedsql.local_model import LocalModel

from batch_rules import ENCODING, violations
from helpers import fetch, texts_table


def shard_files(work_dir: Path) -> list[Path]:
    return sorted(work_dir.glob("shard-*.jsonl"))


def requests(paths: list[Path]) -> list[dict[str, object]]:
    # JSONL lines end at "\n" only: str.splitlines() would also split inside texts holding U+0085 or U+2028.
    return [json.loads(line) for path in paths for line in path.read_text(encoding="utf-8").split("\n")[:-1]]


def test_dry_run_shards_are_valid_batch_input_and_the_database_is_untouched(tmp_path: Path, movies_db: Path) -> None:

    result = CliRunner().invoke(
        cli, ["run", "select movieId, genres from movies", "--model", "text-embedding-3-small", "--dry-run"]
    )

    assert result.exit_code == 0, result.output
    genres = [g for (g,) in fetch(movies_db, "SELECT DISTINCT genres FROM movies")]
    tokens = sum(len(ENCODING.encode_ordinary(g)) for g in genres)
    work_dir = next((tmp_path / ".embedsql" / "warehouse.duckdb").iterdir())
    assert result.stdout == (
        f"Dry run (job {work_dir.name.removeprefix('dry-run-')}): nothing was embedded and movies_embeddings "
        "was not touched.\n"
        "  rows                62,423\n"
        "  distinct texts       1,639\n"
        "  already cached           0\n"
        "  to embed             1,639 texts in 1 shard(s)\n"
        "  skipped rows             0\n"
        f"  tokens              {tokens:,} (counted exactly)\n"
        f"  est. cost          ${tokens / 1e6 * 0.01:,.4f} on the Batch API "
        f"(${tokens / 1e6 * 0.02:,.4f} at standard prices)\n"
        f"  shards          .embedsql/warehouse.duckdb/{work_dir.name} (kept until the next dry run)\n"
    )
    assert tokens == 14_855
    (shard,) = shard_files(work_dir)
    assert violations(shard) == []
    sent = requests([shard])
    assert sorted(r["body"]["input"] for r in sent) == sorted(genres)  # type: ignore[index]
    assert {r["body"]["model"] for r in sent} == {"text-embedding-3-small"}  # type: ignore[index]
    assert {r["body"]["encoding_format"] for r in sent} == {"base64"}  # type: ignore[index]
    # Only the (empty) ledger is created; the plan itself was rolled back.
    assert fetch(
        movies_db,
        "SELECT schema_name, table_name, estimated_size FROM duckdb_tables() "
        "WHERE schema_name <> 'embedsql' OR (estimated_size > 0 AND table_name <> 'meta')",
    ) == [("main", "movies", 62_423)]


def test_shards_split_by_lines(tmp_path: Path, movies_db: Path) -> None:
    result = embedsql.run(
        "select movieId, genres from movies",
        model="text-embedding-3-small",
        dimensions=256,
        dry_run=True,
        max_shard_lines=500,
    )

    paths = shard_files(result.work_dir)
    assert [len(p.read_text().splitlines()) for p in paths] == [500, 500, 500, 139]
    assert result.shards == 4
    assert all(violations(p, max_lines=500) == [] for p in paths)
    sent = requests(paths)
    assert len({r["custom_id"] for r in sent}) == 1639
    assert {r["body"]["dimensions"] for r in sent} == {256}  # type: ignore[index]


def test_shards_split_by_bytes(tmp_path: Path, movies_db: Path) -> None:
    result = embedsql.run(
        "select movieId, title from movies", model="text-embedding-3-small", dry_run=True, max_shard_bytes=100_000
    )

    paths = shard_files(result.work_dir)
    sizes = [p.stat().st_size for p in paths]
    assert max(sizes) <= 100_000
    assert min(sizes[:-1]) > 100_000 - 400  # each closed only when the next line would not fit
    assert all(violations(p, max_bytes=100_000) == [] for p in paths)
    titles = [t for (t,) in fetch(movies_db, "SELECT DISTINCT title FROM movies")]
    assert sorted(r["body"]["input"] for r in requests(paths)) == sorted(titles)  # type: ignore[index]
    recorded = fetch(
        movies_db, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'embedsql' AND table_name LIKE 'rows_%'"
    )
    assert recorded == [(0,)]


def test_the_ledger_records_each_shard_with_its_counts_and_checksum(tmp_path: Path, movies_db: Path) -> None:
    result = embedsql.run(
        "select movieId, genres from movies where movieId <= 2000", max_shard_lines=100, keep_files=True
    )

    ((work_dir,),) = fetch(movies_db, "SELECT work_dir FROM embedsql.jobs")
    assert work_dir == f".embedsql/warehouse.duckdb/{result.job_id}"
    assert result.shards > 1
    for path, lines, size, checksum in fetch(movies_db, "SELECT path, lines, bytes, sha256 FROM embedsql.shards"):
        content = (tmp_path / str(work_dir) / str(path)).read_bytes()
        assert (content.count(b"\n"), len(content), hashlib.sha256(content).hexdigest()) == (lines, size, checksum)


# Short texts of any Unicode, long ones (up to ~8,000 tokens), and very long repetitive ones.
one_text = st.one_of(
    st.text(min_size=1, max_size=300),
    st.text(min_size=1000, max_size=2000),
    st.builds(lambda word, n: (word + " ") * n, st.text('abcxyz"\\\n', min_size=1, max_size=8), st.integers(100, 800)),
).filter(lambda t: t.strip())
texts = st.lists(one_text, min_size=1, max_size=40)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(texts=texts)
def test_any_unicode_text_is_sent_exactly_as_it_is(texts: list[str]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        db = texts_table(Path(scratch) / "t.duckdb", dict(enumerate(texts)), table="t")

        result = embedsql.run(
            "select id, body from t", db=db, model="text-embedding-3-small", dry_run=True, max_shard_lines=7
        )

        paths = shard_files(result.work_dir)
        assert all(violations(p, max_lines=7) == [] for p in paths)
        sent = {r["custom_id"]: r["body"]["input"] for r in requests(paths)}  # type: ignore[index]
        assert sent == {hashlib.sha256(t.encode()).hexdigest()[:32]: t for t in texts}


@settings(max_examples=15, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(st.text(min_size=1, max_size=80).filter(lambda t: t.strip()), min_size=1, max_size=8))
def test_any_unicode_text_comes_back_with_its_own_vector(model: LocalModel, texts: list[str]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        db = texts_table(Path(scratch) / "t.duckdb", dict(enumerate(texts)), table="t")

        embedsql.run("select id, body from t", db=db)

        rows = fetch(db, "SELECT id, embedding FROM t_embeddings ORDER BY id")
    assert [key for key, _ in rows] == list(range(len(texts)))
    for key, vector in rows:
        np.testing.assert_array_equal(np.array(vector, dtype=np.float32), model.embed([texts[key]])[0])  # type: ignore[call-overload]


def test_dry_run_prices_can_be_overridden_in_the_config_file(tmp_path: Path, movies_db: Path) -> None:
    (tmp_path / "embedsql.toml").write_text('[prices]\n"text-embedding-3-small" = { batch = 1.0, standard = 3.0 }\n')

    result = CliRunner().invoke(
        cli, ["run", "select movieId, genres from movies", "--model", "text-embedding-3-small", "--dry-run"]
    )

    assert result.exit_code == 0, result.output
    assert "  tokens              14,855 (counted exactly)\n" in result.stdout
    assert "  est. cost          $0.0149 on the Batch API ($0.0446 at standard prices)\n" in result.stdout


def test_a_malformed_price_table_is_refused(tmp_path: Path, movies_db: Path) -> None:
    (tmp_path / "embedsql.toml").write_text('[prices]\n"text-embedding-3-small" = { batch = "cheap" }\n')

    result = CliRunner().invoke(cli, ["run", "select movieId, genres from movies", "--dry-run"])

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: prices for 'text-embedding-3-small' in embedsql.toml must give `batch` and/or `standard` in dollars "
        "per million tokens, got {'batch': 'cheap'}. For example:\n"
        '[prices]\n"text-embedding-3-small" = { batch = 0.01, standard = 0.02 }\n'
    )
