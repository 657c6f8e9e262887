"""dbt: queries naming {{ ref() }}/{{ source() }}, the example project built by real dbt, the plugin.

dbt runs for real (dbt-core and dbt-duckdb are test dependencies) in a subprocess, in a copy of the
project under tmp_path; embedsql runs through its CLI.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner, Result

from embedsql.cli import cli
from embedsql.embed import text_hash
from embedsql.local_model import LocalModel

from helpers import REPO, fetch

DBT = Path(sys.executable).parent / "dbt"
PHRASE = "space adventure for kids"


def dbt(project: Path, *args: str) -> str:
    """Run dbt in ``project``; its output, after checking that it succeeded."""
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_USE_COLORS": "false"}
    done = subprocess.run(
        [str(DBT), *args], cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def embedsql(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


# -- the example project: dbt, then embedsql run, then dbt on the embeddings -------------------------


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """examples/movies_dbt and the data it reads, laid out as in the repository; the working directory."""
    project = tmp_path / "examples" / "movies_dbt"
    shutil.copytree(
        REPO / "examples" / "movies_dbt",
        project,
        ignore=shutil.ignore_patterns("target", "logs", "movies.duckdb*", ".embedsql"),
    )
    shutil.copytree(REPO / "data", tmp_path / "data")
    monkeypatch.chdir(project)
    return project


def test_the_example_project_builds_on_the_embeddings_of_a_ref(example: Path, model: LocalModel) -> None:
    dbt(example, "build", "--select", "+stg_movies")

    result = embedsql(
        "run",
        "select movie_id, genres from {{ ref('stg_movies') }}",
        "--dbt-project",
        ".",
        "--into",
        "movie_embeddings",
    )

    assert result.exit_code == 0, result.output
    db = example / "movies.duckdb"
    first = result.stdout.splitlines()[0]
    assert re.fullmatch(
        rf"movie_embeddings in {re.escape(str(db))}: 57,361 rows of all-MiniLM-L6-v2 FLOAT\[384\] \(job [\w-]+\)", first
    )
    assert "skipped rows         5,062 (5,062 NULL text)" in result.stdout

    output = dbt(example, "build")
    assert "PASS=6 WARN=0 ERROR=0 SKIP=0" in output

    # The vectors embedsql wrote are the model's, keyed by the staging model's ids.
    rows = fetch(
        db,
        "SELECT m.genres, e.embedding FROM movie_embeddings e JOIN stg_movies m USING (movie_id) "
        "WHERE m.movie_id IN (1, 2, 3, 260)",
    )
    for genres, vector in rows:
        assert np.array_equal(np.array(vector, np.float32), model.embed([genres])[0])

    # genre_neighbours: for each genre text, its five nearest others, as numpy ranks them.
    pairs = arrow(
        db, "SELECT DISTINCT m.genres, e.embedding FROM stg_movies m JOIN movie_embeddings e USING (movie_id)"
    )
    vectors = dict(zip(pairs["genres"].to_pylist(), matrix_of(pairs["embedding"]), strict=True))
    genres = sorted(vectors)
    position = {g: i for i, g in enumerate(genres)}
    matrix = np.array([vectors[g] for g in genres], np.float64)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    scores = matrix @ matrix.T
    # Each row's others by descending score, equal scores in name order (genres is sorted, so a stable
    # sort keeps ties in name order); a genre's own score goes last.
    others = -scores
    np.fill_diagonal(others, np.inf)
    ranked = np.argsort(others, axis=1, kind="stable")[:, :5]
    expected = {g: [genres[j] for j in ranked[i]] for i, g in enumerate(genres)}
    view = fetch(db, "SELECT genres, neighbour, similarity FROM genre_neighbours ORDER BY genres, rank")
    got: dict[str, list[str]] = {}
    for g, neighbour, similarity in view:
        got.setdefault(g, []).append(neighbour)
        assert similarity == pytest.approx(scores[position[g], position[neighbour]], abs=1e-5)
    assert len(got) == len(genres) == 1_638
    for g in genres:
        # Near-ties may swap places between float32 (DuckDB) and float64 (numpy): compare as sets,
        # and exactly where the fifth and sixth are apart.
        assert set(got[g]) == set(expected[g]) or _tied_at_the_edge(scores, genres, g, got[g])

    # space_adventures: embed() inside dbt, through the plugin, with the embeddings' own model and cache.
    phrase = model.embed([PHRASE])[0]
    adventures = fetch(db, "SELECT movie_id, similarity FROM space_adventures ORDER BY similarity DESC, movie_id")
    everything = arrow(db, "SELECT movie_id, embedding FROM movie_embeddings ORDER BY movie_id")
    ids = everything["movie_id"].to_numpy()
    all_vectors = matrix_of(everything["embedding"]).astype(np.float64)
    similarity = all_vectors @ phrase / np.linalg.norm(all_vectors, axis=1) / np.linalg.norm(phrase)
    best = sorted(zip(-similarity, ids, strict=True))[:10]
    assert [k for k, _ in adventures] == [int(k) for _, k in best]
    assert [s for _, s in adventures] == pytest.approx([-s for s, _ in best], abs=1e-5)
    cache = "embedsql.cache_all_minilm_l6_v2_384"
    cached = fetch(db, f"SELECT embedding FROM {cache} WHERE text_hash = '{text_hash(PHRASE)}'")
    assert np.array_equal(np.array(cached[0][0], np.float32), phrase)
    assert fetch(db, f"SELECT count(*) FROM {cache}") == [(1_638 + 1,)]

    # The other commands find the database through the project too.
    neighbours = embedsql(
        "sql",
        "select neighbour from {{ ref('genre_neighbours') }} where genres = 'Comedy, Romance' order by rank",
        "--dbt-project",
        ".",
        "--format",
        "csv",
    )
    assert neighbours.exit_code == 0, neighbours.output
    assert list(csv.reader(neighbours.stdout.splitlines())) == [["neighbour"], *([n] for n in got["Comedy, Romance"])]


def arrow(db: Path, sql: str) -> pa.Table:
    """Rows of ``sql`` from ``db`` as Arrow: 57,361 vectors as 22 million Python floats take seconds."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def matrix_of(vectors: pa.ChunkedArray) -> np.ndarray:
    """A column of FLOAT[N] vectors as a (rows, N) float32 matrix, exactly."""
    flat = vectors.combine_chunks().flatten().to_numpy()
    return flat.reshape(len(vectors), -1)


def _tied_at_the_edge(scores: np.ndarray, genres: list[str], g: str, got: list[str]) -> bool:
    i = genres.index(g)
    ranked = sorted((scores[i, j] for j in range(len(genres)) if j != i), reverse=True)
    return abs(ranked[4] - ranked[5]) < 1e-6 and all(scores[i, genres.index(n)] >= ranked[5] - 1e-6 for n in got)


# -- resolving references: a small project, parsed and built once --------------------------------------

PROFILES = """\
shop:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: "{{ env_var('SHOP_DB', 'shop.duckdb') }}"
    other:
      type: duckdb
      path: other.duckdb
    memory:
      type: duckdb
    warehouse:
      type: postgres
      host: localhost
"""
MODELS = {
    "customers.sql": "{{ config(materialized='table') }}\nselect 1 as id, 'likes jazz' as note "
    "union all select 2, 'reads science fiction'",
    "lazy.sql": "select 1 as id, 'never built' as note",
    "scratch.sql": "{{ config(materialized='ephemeral') }}\nselect 1 as id, 'inline' as note",
    "retired.sql": "{{ config(enabled=false) }}\nselect 1 as id",
    "sources.yml": "version: 2\nsources:\n  - name: raw\n    schema: main\n    tables:\n"
    "      - name: notes\n        identifier: raw_notes\n",
}


@pytest.fixture(scope="module")
def shop_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("shop")
    (project / "dbt_project.yml").write_text(
        "name: shop\nversion: '1.0'\nprofile: shop\nconfig-version: 2\nvars:\n  min_id: 2\n", encoding="utf-8"
    )
    (project / "profiles.yml").write_text(PROFILES, encoding="utf-8")
    (project / "models").mkdir()
    for name, text in MODELS.items():
        (project / "models" / name).write_text(text, encoding="utf-8")
    con = duckdb.connect(str(project / "shop.duckdb"))
    con.execute("CREATE TABLE raw_notes AS SELECT 7 AS id, 'wants a refund' AS body")
    con.close()
    dbt(project, "build", "--select", "customers")
    return project


@pytest.fixture
def shop(shop_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    project = tmp_path / "shop"
    shutil.copytree(shop_template, project)
    monkeypatch.chdir(project)
    return project


def vectors(db: Path, table: str) -> dict[int, np.ndarray]:
    return {k: np.array(v, np.float32) for k, v in fetch(db, f"SELECT id, embedding FROM {table}")}


def test_ref_source_and_var_resolve_to_the_relations_dbt_built(shop: Path, model: LocalModel) -> None:
    db = shop / "shop.duckdb"
    result = embedsql("run", "select id, note from {{ ref('customers') }}", "--dbt-project", ".")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"customers_embeddings in {db}: 2 rows")
    got = vectors(db, "customers_embeddings")
    assert set(got) == {1, 2}
    assert np.array_equal(got[1], model.embed(["likes jazz"])[0])
    assert np.array_equal(got[2], model.embed(["reads science fiction"])[0])

    result = embedsql(
        "run",
        "select id, body from {{ source('raw', 'notes') }} where id >= {{ var('min_id') }}",
        "--dbt-project",
        ".",
        "--into",
        "notes_embeddings",
    )
    assert result.exit_code == 0, result.output
    assert np.array_equal(vectors(db, "notes_embeddings")[7], model.embed(["wants a refund"])[0])

    # The job was recorded with the SQL dbt's names resolved to.
    assert fetch(db, "SELECT query FROM embedsql.jobs ORDER BY created_at") == [
        ('select id, note from "shop"."main"."customers"',),
        ('select id, body from "shop"."main"."raw_notes" where id >= 2',),
    ]
    listed = embedsql("jobs", "--dbt-project", ".", "--format", "csv")
    assert listed.exit_code == 0, listed.output
    assert len(listed.stdout.splitlines()) == 3


def test_env_var_in_the_profile_and_dbt_target_pick_the_database(shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copyfile(shop / "shop.duckdb", shop / "copy.duckdb")
    monkeypatch.setenv("SHOP_DB", "copy.duckdb")
    result = embedsql("run", "select id, note from {{ ref('customers') }}", "--dbt-project", ".", "--dry-run")
    assert result.exit_code == 1
    # The manifest's relations live in catalog "shop"; the profile now names copy.duckdb.
    assert result.stderr == (
        "Error: {{ ref('customers') }} is built in database 'shop', but the database is "
        f"'{shop / 'copy.duckdb'}' (catalog 'copy'). Drop --db so that embedsql uses the dbt profile's database, "
        "or run `dbt parse` for the target you mean (--dbt-target).\n"
    )
    monkeypatch.delenv("SHOP_DB")
    result = embedsql("run", "select 1 as id, 'x' as t", "--dbt-project", ".", "--dbt-target", "other", "--dry-run")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] + "\n" == (
        f"Error: database '{shop / 'other.duckdb'}' does not exist. Check --db / EMBEDSQL_DB: embedsql opens an "
        "existing DuckDB database (only the example, warehouse.duckdb, is built, from sql/warehouse.sql beside it).\n"
    )


ERRORS = [
    (
        ["run", "select id, note from {{ ref('customer') }}"],
        "{{ ref('customer') }}: dbt project '.' has no model, seed or snapshot named 'customer' (did you mean "
        "'customers'?). If you just added it, run `dbt parse`.",
    ),
    (
        ["run", "select * from {{ ref('lazy') }}"],
        '{{ ref(\'lazy\') }} is "shop"."main"."lazy", which is not in the database yet: run '
        "`dbt build --select lazy` first.",
    ),
    (
        ["run", "select * from {{ ref('scratch') }}"],
        "{{ ref('scratch') }} is an ephemeral model: dbt builds no table or view for it. Materialise it as a view "
        "or table (config materialized='view') and build it.",
    ),
    (
        ["run", "select * from {{ ref('retired') }}"],
        "{{ ref('retired') }} names model 'retired', which is disabled in dbt project '.'. Enable it "
        "(config enabled: true) and build it.",
    ),
    (
        ["run", "select * from {{ source('raw', 'note') }}"],
        "{{ source('raw', 'note') }}: dbt project '.' declares no source table raw.note (did you mean 'raw.notes'?). "
        "Declare it in a sources .yml file and run `dbt parse`.",
    ),
    (
        ["run", "select * from {{ ref('customers') }} where id > {{ var('max_id') }}"],
        "var('max_id') is not defined in the vars of dbt_project.yml; define it there or give the call a default: "
        "var('name', 'default').",
    ),
    (
        ["run", "select * from {{ ref('customers') }} {{ limit_rows(5) }}"],
        "the query uses something dbt-like that embedsql cannot render ('limit_rows' is undefined). Queries may "
        "use ref(), source(), var() and target; write other macros out in SQL.",
    ),
    (
        ["run", "select * from {{ ref('customers') }"],
        "the query's Jinja is malformed at line 1: unexpected '}'. Fix the query.",
    ),
    (
        ["run", "select * from {{ ref('customers') }}", "--dbt-target", "staging"],
        "target 'staging' is not an output of profile 'shop' in profiles.yml (it has: dev, memory, other, "
        "warehouse). Pass --dbt-target NAME / EMBEDSQL_DBT_TARGET with one of those.",
    ),
    (
        ["run", "select * from {{ ref('customers') }}", "--dbt-target", "warehouse"],
        "target 'warehouse' of profile 'shop' is of type 'postgres'; embedsql works on DuckDB databases only. "
        "Pick a dbt-duckdb target with --dbt-target.",
    ),
    (
        ["run", "select * from {{ ref('customers') }}", "--dbt-target", "memory"],
        "dbt profile shop, target memory keeps its database at ':memory:', which another process cannot open. "
        "Give the target a `path:` to a DuckDB file, or pass --db.",
    ),
]


@pytest.mark.parametrize(("args", "message"), ERRORS)
def test_references_that_cannot_resolve_are_explained(shop: Path, args: list[str], message: str) -> None:
    result = embedsql(*args, "--dbt-project", ".")
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-1] == f"Error: {message}"
    tables = fetch(shop / "shop.duckdb", "SELECT schema_name, table_name FROM duckdb_tables() ORDER BY ALL")
    assert [t for t in tables if t[0] != "embedsql"] == [("main", "customers"), ("main", "raw_notes")]
    if ("embedsql", "jobs") in tables:
        assert fetch(shop / "shop.duckdb", "SELECT count(*) FROM embedsql.jobs") == [(0,)]


def test_a_missing_or_stale_manifest_asks_for_dbt_parse(shop: Path) -> None:
    query = "select id, note from {{ ref('customers') }}"
    now = time.time()
    for path in [shop / "dbt_project.yml", *(shop / "models").iterdir()]:
        os.utime(path, (now - 90, now - 90))
    os.utime(shop / "target" / "manifest.json", (now - 60, now - 60))
    os.utime(shop / "models" / "customers.sql", (now - 30, now - 30))  # changed after the last parse
    result = embedsql("run", query, "--dbt-project", ".")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: the dbt manifest target/manifest.json is stale: models/customers.sql changed after the last "
        "parse. Run `dbt parse` in ., then run again.\n"
    )
    dbt(shop, "parse")
    assert embedsql("run", query, "--dbt-project", ".").exit_code == 0

    shutil.rmtree(shop / "target")
    result = embedsql("run", query, "--dbt-project", ".")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: dbt project '.' has no manifest (target/manifest.json): embedsql resolves ref() and source() "
        "through it. Run `dbt parse` in . (dbt build writes it too), then run again.\n"
    )


def test_a_query_calling_ref_needs_a_project(movies_db: Path, tmp_path: Path) -> None:
    result = embedsql("run", "select * from {{ ref('movies') }}")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: the query calls ref(), which only a dbt project can resolve. Pass --dbt-project DIR / "
        "EMBEDSQL_DBT_PROJECT (the folder of dbt_project.yml).\n"
    )
    result = embedsql("run", "select 1 as id, 'x' as t", "--dbt-project", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: '{tmp_path}' is not a dbt project: it has no dbt_project.yml. Pass --dbt-project / "
        "EMBEDSQL_DBT_PROJECT the folder that holds it.\n"
    )


def test_the_profile_is_found_where_dbt_looks(shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "profiles"
    elsewhere.mkdir()
    (shop / "profiles.yml").rename(elsewhere / "profiles.yml")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    result = embedsql("jobs", "--dbt-project", ".")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: no profiles.yml for dbt project '.' (looked in ., {tmp_path / 'home' / '.dbt'}). "
        "Set DBT_PROFILES_DIR, or pass --db with the DuckDB file the project builds into.\n"
    )
    monkeypatch.setenv("DBT_PROFILES_DIR", str(elsewhere))
    result = embedsql("run", "select id, note from {{ ref('customers') }}", "--dbt-project", ".")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"customers_embeddings in {shop / 'shop.duckdb'}: 2 rows")


def test_the_plugin_refuses_a_key_in_the_profile(shop: Path) -> None:
    profiles = (shop / "profiles.yml").read_text(encoding="utf-8")
    plugin = "      plugins:\n        - module: embedsql.dbt_plugin\n          config:\n            api_key: sk-abc\n"
    (shop / "profiles.yml").write_text(profiles.replace("shop.duckdb') }}\"\n", "shop.duckdb') }}\"\n" + plugin))
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    done = subprocess.run(
        [str(DBT), "run", "--select", "customers"], cwd=shop, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert (
        "the embedsql plugin's config in profiles.yml sets 'api_key': secrets do not belong in profiles.yml. "
        "Set OPENAI_API_KEY in the environment of dbt instead." in done.stdout
    )
    assert "sk-abc" not in done.stdout + done.stderr


def test_config_shows_the_database_the_profile_names(shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSQL_DBT_PROJECT", ".")
    monkeypatch.setenv("DBT_TARGET", "other")
    result = embedsql("config")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert (
        lines[0]
        == f"db                      {shop / 'other.duckdb'}  [dbt profile shop, target other; env EMBEDSQL_DB]"
    )
    assert lines[1] == "dbt_project             .  [environment; env EMBEDSQL_DBT_PROJECT]"


def test_the_plugin_embeds_inside_dbt_with_its_configured_model(shop: Path, model: LocalModel) -> None:
    profiles = (shop / "profiles.yml").read_text(encoding="utf-8")
    extra = (
        "      settings:\n        preserve_insertion_order: true\n"
        "      plugins:\n        - module: embedsql.dbt_plugin\n"
        "          config:\n            model: all-MiniLM-L6-v2\n"
    )
    (shop / "profiles.yml").write_text(profiles.replace("shop.duckdb') }}\"\n", "shop.duckdb') }}\"\n" + extra))
    (shop / "models" / "customer_vectors.sql").write_text(
        "{{ config(materialized='table') }}\nselect id, embed(note) as embedding from {{ ref('customers') }}",
        encoding="utf-8",
    )
    dbt(shop, "run", "--select", "customer_vectors")
    got = vectors(shop / "shop.duckdb", "customer_vectors")
    assert np.array_equal(got[1], model.embed(["likes jazz"])[0])
    assert np.array_equal(got[2], model.embed(["reads science fiction"])[0])
    # shop.duckdb has no ledger (no `embedsql run` there): the plugin does not start one, and caches nothing.
    assert fetch(shop / "shop.duckdb", "SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'embedsql'") == [(0,)]
