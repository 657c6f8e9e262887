"""`embedsql run` end to end on real DuckDB files with the bundled model."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

import embedsql
from embedsql.cli import cli
from embedsql.local_model import LocalModel

from helpers import REPO, fetch, make_db, vectors_by_key

JOB_ID = r"\d{8}-\d{6}-[0-9a-f]{4}"
LOCAL_NOTICE = (
    "Model: all-MiniLM-L6-v2 (384-d): no OPENAI_API_KEY configured, so the offline default "
    "(set OPENAI_API_KEY or pass --model text-embedding-3-small to use OpenAI).\n"
)


def test_quickstart_builds_the_warehouse_and_embeds_each_genre_string_once(
    tmp_path: Path, genre_vectors: dict[str, np.ndarray]
) -> None:
    (tmp_path / "sql").mkdir()
    (tmp_path / "data").mkdir()
    shutil.copyfile(REPO / "sql" / "warehouse.sql", tmp_path / "sql" / "warehouse.sql")
    shutil.copyfile(REPO / "data" / "movies.csv", tmp_path / "data" / "movies.csv")

    first = CliRunner().invoke(cli, ["run", "select movieId, genres from movies"])

    assert first.exit_code == 0, first.output
    assert re.fullmatch(
        rf"movies_embeddings in warehouse.duckdb: 62,423 rows of all-MiniLM-L6-v2 FLOAT\[384\] \(job {JOB_ID}\)\n"
        r"  rows                62,423\n"
        r"  distinct texts       1,639\n"
        r"  from cache               0\n"
        r"  embedded             1,639\n"
        r"  skipped rows             0\n"
        r"  time +\d+\.\d s\n",
        first.stdout,
    ), first.stdout
    assert first.stderr.startswith(
        LOCAL_NOTICE + "Built the example warehouse warehouse.duckdb from sql/warehouse.sql.\n"
    )
    # Off a terminal, progress is a few lines, and the total once.
    assert first.stderr.count("embedded 1,639/1,639 texts\n") == 1
    db = tmp_path / "warehouse.duckdb"
    assert fetch(
        db,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'movies_embeddings' ORDER BY ordinal_position",
    ) == [("movieId", "INTEGER"), ("embedding", "FLOAT[384]")]
    genres = dict(fetch(db, "SELECT movieId, genres FROM movies"))
    vectors = vectors_by_key(db, "movies_embeddings", "movieId")
    assert len(vectors) == len(genres) == 62_423
    # All 62,423 rows at once (a call per row took 12 s of CPU).
    np.testing.assert_array_equal(
        np.stack(list(vectors.values())), np.stack([genre_vectors[genres[m]] for m in vectors])
    )

    second = CliRunner().invoke(cli, ["run", "select movieId, genres from movies"])

    assert second.exit_code == 0, second.output
    assert "  from cache           1,639\n  embedded                 0\n" in second.stdout
    assert fetch(db, "SELECT count(*), count(DISTINCT job_id) FROM embedsql.jobs WHERE status = 'complete'") == [(2, 2)]
    # Only the latest job's key -> text hash snapshot is kept.
    assert fetch(db, "SELECT 'rows_' || max(job_id) FROM embedsql.jobs") == fetch(
        db, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'embedsql' AND table_name LIKE 'rows_%'"
    )
    assert fetch(db, "SELECT sum(lines) FROM embedsql.shards") == [(1639,)]
    assert not (tmp_path / ".embedsql").exists()


def docs_db(path: Path) -> Path:
    return make_db(
        path,
        """
        CREATE TABLE docs (id INTEGER, body VARCHAR);
        INSERT INTO docs VALUES (1, 'red apples'), (2, 'green pears'), (3, 'ripe bananas'), (4, 'sour lemons');
    """,
    )


def test_upsert_adds_and_changes_rows_and_leaves_the_others(tmp_path: Path, model: LocalModel) -> None:
    db = docs_db(tmp_path / "docs.duckdb")
    embedsql.run("select id, body from docs", db=db)
    before = vectors_by_key(db, "docs_embeddings")
    con = duckdb.connect(str(db))
    con.execute("UPDATE docs SET body = 'yellow pears' WHERE id = 2; INSERT INTO docs VALUES (5, 'fresh figs')")
    con.close()

    result = embedsql.run("select id, body from docs where id >= 2", db=db, mode="upsert")

    after = vectors_by_key(db, "docs_embeddings")
    assert sorted(after) == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(after[1], before[1])
    for key, text in {2: "yellow pears", 3: "ripe bananas", 4: "sour lemons", 5: "fresh figs"}.items():
        np.testing.assert_array_equal(after[key], model.embed([text])[0])
    assert (result.rows, result.cached_texts, result.embedded_texts, result.target_rows) == (4, 2, 2, 4)


def test_replace_removes_rows_no_longer_in_the_query(tmp_path: Path, model: LocalModel) -> None:
    db = docs_db(tmp_path / "docs.duckdb")
    embedsql.run("select id, body from docs", db=db)

    result = embedsql.run("select id, body from docs where id in (2, 3)", db=db, mode="replace")

    after = vectors_by_key(db, "docs_embeddings")
    assert sorted(after) == [2, 3]
    np.testing.assert_array_equal(after[3], model.embed(["ripe bananas"])[0])
    assert (result.embedded_texts, result.cached_texts) == (0, 2)


def test_texts_of_any_shape_are_sent_exactly_and_unusable_ones_skipped(tmp_path: Path, model: LocalModel) -> None:
    texts = {
        1: "She said \"hi\" and left; it's O'Brien's",
        2: "line one\nline two\r\n\ttabbed",
        3: "emoji 🚀🔥 and ünïcödé — 日本語のテキスト",
        4: 'back\\slash and {"json": [1, 2]}',
        5: "word " * 3000,
        6: None,
        7: "",
        8: "  \n\t ",
        9: "  padded text  ",
    }
    db = tmp_path / "t.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE t (id INTEGER, body VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(texts.items()))
    con.close()

    result = embedsql.run("select id, body from t", db=db)

    assert result.skipped == {"NULL text": 1, "empty text": 2}
    assert (result.rows, result.distinct_texts, result.embedded_texts, result.target_rows) == (9, 6, 6, 6)
    vectors = vectors_by_key(db, "t_embeddings")
    assert sorted(vectors) == [1, 2, 3, 4, 5, 9]
    for key in vectors:
        np.testing.assert_array_equal(vectors[key], model.embed([texts[key]])[0])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("ddl", "query", "key", "expected_types"),
    [
        (
            "CREATE TABLE t AS SELECT 42::INTEGER AS k, 'alpha' AS body UNION ALL SELECT 7, 'beta'",
            "select k, body from t",
            [],
            [("k", "INTEGER")],
        ),
        (
            "CREATE TABLE t AS SELECT 'doc-1' AS k, 'alpha' AS body UNION ALL SELECT 'doc-2', 'beta'",
            "select k, body from t",
            [],
            [("k", "VARCHAR")],
        ),
        (
            "CREATE TABLE t AS SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::UUID AS k, 'alpha' AS body "
            "UNION ALL SELECT 'b1ffcd88-1d1c-4ef8-bb6d-6bb9bd380a22'::UUID, 'beta'",
            "select k, body from t",
            [],
            [("k", "UUID")],
        ),
        (
            "CREATE TABLE t AS SELECT TIMESTAMPTZ '2024-01-01 10:00:00+00' AS k, 'alpha' AS body "
            "UNION ALL SELECT TIMESTAMPTZ '2024-01-01 11:00:00+00', 'beta'",
            "select k, body from t",
            [],
            [("k", "TIMESTAMP WITH TIME ZONE")],
        ),
        (
            "CREATE TABLE t AS SELECT DATE '2024-01-01' AS k, 'alpha' AS body "
            "UNION ALL SELECT DATE '2024-01-02', 'beta'",
            "select k, body from t",
            [],
            [("k", "DATE")],
        ),
        (
            "CREATE TABLE t AS SELECT 1::BIGINT AS a, 'x' AS b, 'alpha' AS body UNION ALL SELECT 1, 'y', 'beta'",
            "select a, b, body from t",
            ["a", "b"],
            [("a", "BIGINT"), ("b", "VARCHAR")],
        ),
    ],
)
def test_key_types_are_kept_in_the_target(
    tmp_path: Path, model: LocalModel, ddl: str, query: str, key: list[str], expected_types: list[tuple[str, str]]
) -> None:
    db = make_db(tmp_path / "k.duckdb", ddl)

    embedsql.run(query, db=db, key=key, into="t_vectors")

    columns = fetch(
        db,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 't_vectors' ORDER BY ordinal_position",
    )
    assert columns == [*expected_types, ("embedding", "FLOAT[384]")]
    keys = ", ".join(k for k, _ in expected_types)
    joined = fetch(db, f"SELECT s.body, v.embedding FROM t s JOIN t_vectors v USING ({keys}) ORDER BY s.body")
    assert [body for body, _ in joined] == ["alpha", "beta"]
    for body, vector in joined:
        np.testing.assert_array_equal(np.array(vector, dtype=np.float32), model.embed([body])[0])  # type: ignore[list-item]


def test_several_text_columns_are_joined_with_spaces_and_nulls_left_out(tmp_path: Path, model: LocalModel) -> None:
    db = make_db(
        tmp_path / "m.duckdb",
        """
        CREATE TABLE m (id INTEGER, title VARCHAR, year INTEGER, genres VARCHAR);
        INSERT INTO m VALUES (1, 'Toy Story', 1995, 'Animation'), (2, NULL, 1995, 'Drama'), (3, NULL, NULL, NULL);
    """,
    )

    result = embedsql.run("select id, title, year, genres from m", db=db)

    vectors = vectors_by_key(db, "m_embeddings")
    np.testing.assert_array_equal(vectors[1], model.embed(["Toy Story 1995 Animation"])[0])
    np.testing.assert_array_equal(vectors[2], model.embed(["1995 Drama"])[0])
    assert sorted(vectors) == [1, 2]
    assert result.skipped == {"NULL text": 1}


def test_key_and_text_options_pick_columns(tmp_path: Path, model: LocalModel) -> None:
    db = make_db(
        tmp_path / "m.duckdb",
        """
        CREATE TABLE m (title VARCHAR, id INTEGER, genres VARCHAR);
        INSERT INTO m VALUES ('Toy Story', 1, 'Animation'), ('Heat', 2, 'Crime');
    """,
    )

    result = CliRunner().invoke(
        cli, ["run", "select * from m", "--db", str(db), "--key", "id", "--text", "genres", "--into", "by_genre"]
    )

    assert result.exit_code == 0, result.output
    vectors = vectors_by_key(db, "by_genre")
    np.testing.assert_array_equal(vectors[2], model.embed(["Crime"])[0])


def test_query_from_a_file(tmp_path: Path, movies_db: Path) -> None:
    (tmp_path / "q.sql").write_text(
        "-- genres of early movies\nselect movieId, genres from movies where movieId <= 10\n"
    )

    result = CliRunner().invoke(cli, ["run", "-f", "q.sql", "--into", "early"])

    assert result.exit_code == 0, result.output
    assert fetch(movies_db, "SELECT count(*) FROM early") == [(10,)]


def test_python_api_returns_the_summary(tmp_path: Path, movies_db: Path) -> None:
    events: list[embedsql.Notice | embedsql.Progress] = []

    result = embedsql.run("select movieId, genres from movies where movieId <= 100", on_event=events.append)

    assert isinstance(result, embedsql.RunResult)
    assert (result.status, result.target, result.model, result.dimensions) == (
        "complete",
        "movies_embeddings",
        "all-MiniLM-L6-v2",
        384,
    )
    ((expected_rows,),) = fetch(movies_db, "SELECT count(*) FROM movies WHERE movieId <= 100")
    assert expected_rows == 99  # MovieLens ids have gaps
    assert (result.rows, result.target_rows, result.skipped, result.failed_texts) == (99, 99, {}, 0)
    assert result.distinct_texts == result.embedded_texts == result.sent_texts
    progress = [e for e in events if isinstance(e, embedsql.Progress) and e.stage == "embed"]
    assert progress[0] == embedsql.Progress("embed", 0, result.sent_texts)
    assert progress[-1] == embedsql.Progress("embed", result.sent_texts, result.sent_texts)
    assert fetch(movies_db, "SELECT model, dimensions, key_columns, key_types FROM embedsql.targets") == [
        ("all-MiniLM-L6-v2", 384, ["movieId"], ["INTEGER"])
    ]
    assert fetch(movies_db, "SELECT comment FROM duckdb_tables() WHERE table_name = 'movies_embeddings'") == [
        (f"embedsql: 384-d vectors of all-MiniLM-L6-v2, job {result.job_id}",)
    ]


def test_a_target_in_another_schema_and_a_quoted_name(tmp_path: Path, movies_db: Path) -> None:
    embedsql.run("select movieId, genres from movies where movieId <= 5", into="search.movie_vectors")
    embedsql.run("select movieId, genres from movies where movieId <= 5", into='"Movie Vectors; drop table movies"')

    assert fetch(movies_db, "SELECT count(*) FROM search.movie_vectors") == [(5,)]
    assert fetch(movies_db, 'SELECT count(*) FROM "Movie Vectors; drop table movies"') == [(5,)]
    assert fetch(movies_db, "SELECT count(*) FROM movies") == [(62_423,)]


def test_custom_ids_are_text_hashes_and_the_snapshot_maps_keys_to_them(tmp_path: Path) -> None:
    db = docs_db(tmp_path / "docs.duckdb")

    result = embedsql.run("select id, body from docs", db=db, keep_files=True)

    rows_table = f'embedsql."rows_{result.job_id}"'
    import hashlib

    expected = {
        i: hashlib.sha256(t.encode()).hexdigest()[:32]
        for i, t in [(1, "red apples"), (2, "green pears"), (3, "ripe bananas"), (4, "sour lemons")]
    }
    assert dict(fetch(db, f"SELECT id, __embedsql_hash FROM {rows_table}")) == expected
    shard = result.work_dir / "shard-00001.jsonl"
    import json

    assert sorted(json.loads(line)["custom_id"] for line in shard.read_text().splitlines()) == sorted(expected.values())


def test_unique_texts_shared_by_rows_are_embedded_once(tmp_path: Path) -> None:
    db = make_db(tmp_path / "d.duckdb", "CREATE TABLE d AS SELECT range AS id, 'same text' AS body FROM range(500)")

    result = embedsql.run("select id, body from d", db=db)

    assert (result.rows, result.distinct_texts, result.sent_texts, result.target_rows) == (500, 1, 1, 500)
    assert fetch(db, "SELECT count(DISTINCT embedding) FROM d_embeddings") == [(1,)]


def test_interrupted_job_resumes_without_redoing_computed_shards(tmp_path: Path, model: LocalModel) -> None:
    db = make_db(
        tmp_path / "r.duckdb", "CREATE TABLE r AS SELECT range AS id, 'text number ' || range AS body FROM range(50)"
    )
    seen: list[int] = []

    def stop_after_two_shards(event: object) -> None:
        if isinstance(event, embedsql.Progress) and event.stage == "embed":
            seen.append(event.done)
            if event.done >= 20:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embedsql.run(
            "select id, body from r", db=db, max_shard_lines=10, keep_files=True, on_event=stop_after_two_shards
        )

    ((job_id, status, work_dir),) = fetch(db, "SELECT job_id, status, work_dir FROM embedsql.jobs")
    assert status == "prepared"
    # Computed shards wait to be loaded together (not one transaction each); their results are on disk.
    assert fetch(db, "SELECT DISTINCT status FROM embedsql.shards") == [("written",)]
    results = sorted(p.name for p in (tmp_path / work_dir).glob("*.output.jsonl"))
    assert results == ["shard-00001.output.jsonl"]
    computed = (tmp_path / work_dir / results[0]).stat().st_mtime_ns
    assert fetch(db, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'r_embeddings'") == [(0,)]

    result = CliRunner().invoke(cli, ["resume", job_id, "--db", str(db)], env={"EMBEDSQL_KEEP_FILES": "1"})

    assert result.exit_code == 0, result.output
    assert (tmp_path / work_dir / results[0]).stat().st_mtime_ns == computed  # loaded, not computed again
    assert f"Resuming job {job_id} (all-MiniLM-L6-v2, 384-d) into r_embeddings.\n" in result.stderr
    vectors = vectors_by_key(db, "r_embeddings")
    assert sorted(vectors) == list(range(50))
    for key in (0, 19, 49):
        np.testing.assert_array_equal(vectors[key], model.embed([f"text number {key}"])[0])
    assert fetch(db, "SELECT status FROM embedsql.jobs") == [("complete",)]
    assert fetch(db, "SELECT sum(embedded) FROM embedsql.shards") == [(50,)]


def test_running_the_same_command_again_continues_the_unfinished_job(tmp_path: Path) -> None:
    db = make_db(tmp_path / "r.duckdb", "CREATE TABLE r AS SELECT range AS id, 'text ' || range AS body FROM range(30)")

    def stop(event: object) -> None:
        if isinstance(event, embedsql.Progress) and event.stage == "embed" and event.done >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embedsql.run("select id, body from r", db=db, max_shard_lines=10, on_event=stop)
    notices: list[object] = []

    result = embedsql.run("select id, body from r", db=db, max_shard_lines=10, on_event=notices.append)

    ((job_id,),) = fetch(db, "SELECT job_id FROM embedsql.jobs")
    assert result.job_id == job_id
    assert embedsql.Notice(f"Continuing unfinished job {job_id} for the same work.") in notices
    assert fetch(db, "SELECT count(*) FROM r_embeddings") == [(30,)]


def test_an_upsert_query_with_no_rows_changes_nothing(tmp_path: Path) -> None:
    db = docs_db(tmp_path / "docs.duckdb")
    embedsql.run("select id, body from docs", db=db)

    result = embedsql.run("select id, body from docs where id > 100", db=db, mode="upsert")

    assert (result.rows, result.target_rows) == (0, 0)
    assert fetch(db, "SELECT count(*) FROM docs_embeddings") == [(4,)]


def test_stray_uuid_keys_round_trip(tmp_path: Path) -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    db = tmp_path / "u.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE u (id UUID, body VARCHAR)")
    con.executemany("INSERT INTO u VALUES (?, ?)", [(i, f"doc {n}") for n, i in enumerate(ids)])
    con.close()

    embedsql.run("select id, body from u", db=db)

    assert sorted(r[0] for r in fetch(db, "SELECT id FROM u_embeddings")) == sorted(ids)


def test_running_out_of_duckdb_memory_says_how_to_give_it_more(tmp_path: Path) -> None:
    db = make_db(
        tmp_path / "m.duckdb", "CREATE TABLE docs AS SELECT range AS id, 'text ' || range AS body FROM range(20000)"
    )
    embedsql.ledger.connect(db).close()  # makes the ledger, memory to spare (`jobs` only reads)

    result = CliRunner().invoke(
        cli, ["run", "select id, body from docs", "--db", str(db)], env={"EMBEDSQL_MEMORY_LIMIT": "2MB"}
    )

    assert result.exit_code == 1
    message = result.stderr.splitlines()[-1]
    # DuckDB's own words, which depend on what it was doing when the limit came: allocating or pinning.
    assert message.startswith(
        (
            "Error: DuckDB ran out of memory: failed to allocate data of size ",
            "Error: DuckDB ran out of memory: failed to pin block of size ",
        )
    ), message
    assert message.endswith(
        " MiB used). Nothing of the step it was doing was kept. Raise embedsql's memory_limit "
        "(EMBEDSQL_MEMORY_LIMIT=2GB, say) and run the command again."
    ), message
    assert fetch(db, "SELECT count(*) FROM embedsql.jobs") == [(0,)]
    assert fetch(db, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'docs_embeddings'") == [(0,)]
