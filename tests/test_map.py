"""embedsql map: the map table in DuckDB, its record and reuse, the page and the picture, bad input."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import embedsql
from embedsql.cli import cli
from embedsql.maps import _grouped
from embedsql.projection import _held_interrupts

from helpers import FakeTime, fetch

GROUPS = {"apple": "fruit", "volvo": "car", "python": "language"}
PER = 30
DIMENSIONS = 1536


@pytest.fixture
def mapped(tmp_path: Path, fake_time: FakeTime) -> Path:
    """A table embedsql wrote (``docs_embeddings``, 90 rows) whose vectors are then set to three clearly
    separate groups of 30: rows 1-30 around one axis (texts about apples), 31-60 (volvos), 61-90 (python)."""
    db = tmp_path / "m.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE docs (id INTEGER, body VARCHAR, kind VARCHAR)")
    rows = []
    for g, (word, kind) in enumerate(GROUPS.items()):
        rows += [(g * PER + i + 1, f"{word} note {g * PER + i + 1}", kind) for i in range(PER)]
    con.executemany("INSERT INTO docs VALUES (?, ?, ?)", rows)
    con.close()
    embedsql.run("select id, body from docs", db=db, **fake_time)
    _set_vectors(db, _group_vectors(seed=1))
    return db


def _group_vectors(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.eye(DIMENSIONS, dtype=np.float32)[: len(GROUPS)] * 10
    return np.concatenate([c + rng.normal(size=(PER, DIMENSIONS)) for c in centres]).astype(np.float32)


def _set_vectors(db: Path, vectors: np.ndarray) -> None:
    con = duckdb.connect(str(db))
    try:
        con.execute("CREATE TEMP TABLE v (id INTEGER, e FLOAT[1536])")
        con.executemany("INSERT INTO v VALUES (?, ?)", [(i + 1, v.tolist()) for i, v in enumerate(vectors)])
        con.execute("UPDATE docs_embeddings SET embedding = v.e FROM v WHERE v.id = docs_embeddings.id")
    finally:
        con.close()


def _map(db: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["map", *args, "--db", str(db)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _tables(db: Path) -> dict[str, list[str]]:
    """Every user table's rows (the ledger aside), to show that a refused command changed none (as
    text: a NaN equals no NaN)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [
            r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()
        ]
        return {n: sorted(repr(r) for r in con.execute(f'SELECT * FROM "{n}"').fetchall()) for n in sorted(names)}
    finally:
        con.close()


def test_the_map_table_has_each_rows_key_place_and_cluster(mapped: Path) -> None:
    code, out, err = _map(mapped, "docs_embeddings")

    assert code == 0, err
    assert out == (f"docs_embeddings_map in {mapped}: 90 rows, 90 distinct vectors, 3 clusters (laid out now)\n")
    # The layout's epochs are reported too when it takes seconds (a busy machine): steps only here.
    assert [line for line in err.splitlines() if ", epoch " not in line] == [
        "mapping: reading the vectors",
        "mapping: finding neighbours",
        "mapping: laying out",
        "mapping: clustering",
        "mapping: labelling the clusters",
        "mapping: writing the map table",
    ]
    assert fetch(
        mapped, "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'docs_embeddings_map'"
    ) == [("id", "INTEGER"), ("x", "FLOAT"), ("y", "FLOAT"), ("cluster", "INTEGER"), ("cluster_label", "VARCHAR")]
    rows = fetch(mapped, "SELECT id, x, y, cluster, cluster_label FROM docs_embeddings_map ORDER BY id")
    assert [r[0] for r in rows] == list(range(1, 91))
    assert all(np.isfinite(r[1]) and np.isfinite(r[2]) for r in rows)
    # Each group one cluster of its own; the groups are the same size, so numbered by their first row.
    assert [r[3] for r in rows] == [0] * PER + [1] * PER + [2] * PER
    # Labels: the words of the embedded texts that only that group has ("note" is in every one).
    labels = {r[3]: r[4] for r in rows}
    for c, word in enumerate(GROUPS):
        assert labels[c].split(", ")[0] == word
    assert fetch(mapped, "SELECT cluster_label, count(*) FROM docs_embeddings_map GROUP BY 1 ORDER BY 1") == sorted(
        (labels[c], PER) for c in range(3)
    )
    # Recorded with the job that wrote the vectors.
    job = fetch(mapped, "SELECT job_id FROM embedsql.targets")[0][0]
    assert fetch(mapped, "SELECT table_name, source_table, job_id, rows, points, sample FROM embedsql.maps") == [
        ('"docs_embeddings_map"', '"docs_embeddings"', job, 90, 90, None)
    ]


def test_the_same_table_gives_the_same_map_and_an_unchanged_one_is_reused(mapped: Path) -> None:
    assert _map(mapped, "docs_embeddings")[0] == 0
    assert _map(mapped, "docs_embeddings", "--into", "again")[0] == 0
    first = fetch(mapped, "SELECT id, x, y, cluster, cluster_label FROM docs_embeddings_map ORDER BY id")
    assert fetch(mapped, "SELECT id, x, y, cluster, cluster_label FROM again ORDER BY id") == first

    code, out, err = _map(mapped, "docs_embeddings")
    assert (code, out) == (
        0,
        f"docs_embeddings_map in {mapped}: 90 rows, 90 distinct vectors, 3 clusters "
        "(reused: its vectors have not changed)\n",
    )
    assert "laying out" not in err
    assert fetch(mapped, "SELECT id, x, y, cluster, cluster_label FROM docs_embeddings_map ORDER BY id") == first

    # One vector changed: laid out again.
    con = duckdb.connect(str(mapped))
    con.execute(
        "UPDATE docs_embeddings SET embedding = (SELECT embedding FROM docs_embeddings WHERE id = 2) WHERE id = 1"
    )
    con.close()
    code, out, _ = _map(mapped, "docs_embeddings")
    assert (code, out) == (
        0,
        f"docs_embeddings_map in {mapped}: 90 rows, 89 distinct vectors, 3 clusters (laid out now)\n",
    )
    again = fetch(mapped, "SELECT id, x, y FROM docs_embeddings_map ORDER BY id")
    assert again[0][1:] == again[1][1:]  # the same vector, the same point


def test_the_map_does_not_depend_on_the_order_the_rows_are_stored_in(mapped: Path) -> None:
    # Rows 1 and 2, and 31 to 33, share vectors: the same points, whichever row comes first on disk.
    con = duckdb.connect(str(mapped))
    con.execute(
        "UPDATE docs_embeddings SET embedding = (SELECT embedding FROM docs_embeddings WHERE id = 2) WHERE id = 1"
    )
    con.execute(
        "UPDATE docs_embeddings SET embedding = (SELECT embedding FROM docs_embeddings WHERE id = 33) "
        "WHERE id IN (31, 32)"
    )
    con.close()
    assert _map(mapped, "docs_embeddings")[0] == 0
    first = fetch(mapped, "SELECT id, x, y, cluster, cluster_label FROM docs_embeddings_map ORDER BY id")
    for order in ("id DESC", "hash(id)", "embedding[7], id"):
        con = duckdb.connect(str(mapped))
        con.execute(f"CREATE TEMP TABLE stored AS SELECT * FROM docs_embeddings ORDER BY {order}")
        con.execute("DELETE FROM docs_embeddings")
        con.execute("INSERT INTO docs_embeddings SELECT * FROM stored")
        con.close()
        name = f"again_{len(order)}"
        code, out, _ = _map(mapped, "docs_embeddings", "--into", name)
        assert (code, out) == (0, f"{name} in {mapped}: 90 rows, 87 distinct vectors, 3 clusters (laid out now)\n")
        assert fetch(mapped, f"SELECT id, x, y, cluster, cluster_label FROM {name} ORDER BY id") == first
    assert first[0][1:] == first[1][1:]
    assert first[30][1:] == first[31][1:] == first[32][1:]


@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=40),
    st.sampled_from(["exact", "all collide", "some collide"]),
    st.randoms(use_true_random=False),
)
def test_rows_with_equal_vectors_are_one_point_whatever_their_hashes(
    which: list[int], hashing: str, shuffle: random.Random
) -> None:
    # Six distinct vectors (the last two differ by a tiny number), rows choosing among them.
    table = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, -1], [1, 1, 0], [1, 1, 1e-30]], dtype=np.float32)
    vectors = table[which]
    hashes = {
        "exact": np.array(which, dtype=np.uint64) * 7919,
        "all collide": np.zeros(len(which), dtype=np.uint64),
        "some collide": np.array(which, dtype=np.uint64) % 2,
    }[hashing]
    order = np.arange(len(which))
    shuffle.shuffle(order)
    point, some_row = _grouped(vectors, hashes, order)
    # Each distinct vector one point, numbered as their first rows come in ``order``.
    met: list[int] = []
    for row in order:
        if which[row] not in met:
            met.append(which[row])
    assert point.tolist() == [met.index(w) for w in which]
    assert [which[r] for r in some_row] == met


def test_labels_from_show_are_made_again_without_laying_out_again(mapped: Path) -> None:
    assert _map(mapped, "docs_embeddings")[0] == 0
    places = fetch(mapped, "SELECT id, x, y, cluster FROM docs_embeddings_map ORDER BY id")

    code, out, err = _map(mapped, "docs_embeddings", "--show", "select id, kind from docs")
    assert code == 0, err
    assert out.endswith("(reused: its vectors have not changed)\n")
    assert "labelling the clusters" in err
    assert "laying out" not in err
    assert fetch(mapped, "SELECT id, x, y, cluster FROM docs_embeddings_map ORDER BY id") == places
    assert fetch(mapped, "SELECT DISTINCT cluster, cluster_label FROM docs_embeddings_map ORDER BY 1") == [
        (0, "fruit"),
        (1, "car"),
        (2, "language"),
    ]
    assert fetch(mapped, "SELECT labels_from FROM embedsql.maps") == [("select id, kind from docs",)]


def test_a_sample_maps_that_many_rows_the_same_ones_each_time(mapped: Path) -> None:
    code, out, _ = _map(mapped, "docs_embeddings", "--sample", "40")
    assert code == 0
    assert out.startswith(f"docs_embeddings_map in {mapped}: 40 rows (--sample 40), 40 distinct vectors")
    first = fetch(mapped, "SELECT id FROM docs_embeddings_map ORDER BY id")
    assert len(first) == 40
    assert len({i for (i,) in first}) == 40
    assert set(first) <= {(i,) for i in range(1, 91)}
    assert _map(mapped, "docs_embeddings", "--sample", "40", "--into", "other")[0] == 0
    assert fetch(mapped, "SELECT id FROM other ORDER BY id") == first
    assert fetch(mapped, "SELECT sample FROM embedsql.maps ORDER BY table_name") == [(40,), (40,)]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.scripts: dict[str, str] = {}
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.references.append(value)
        if tag == "script":
            self._in = dict(attrs).get("id") or f"script{len(self.scripts)}"
            self.scripts[self._in] = ""

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            self.scripts[self._in] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in = None


def test_the_page_holds_its_data_and_reaches_for_nothing(mapped: Path, tmp_path: Path) -> None:
    con = duckdb.connect(str(mapped))
    con.execute("UPDATE docs SET kind = kind || ' </script><!-- ' || id WHERE id = 1")
    con.close()
    page = tmp_path / "out" / "map.html"
    page.parent.mkdir()
    code, out, err = _map(mapped, "docs_embeddings", "--show", "select id, body, kind from docs", "-o", str(page))

    assert code == 0, err
    assert out.endswith(f"  wrote {page}\n")
    assert "mapping: drawing map.html" in err
    html = page.read_text(encoding="utf-8")
    parsed = _Page()
    parsed.feed(html)
    assert parsed.references == []
    assert not re.search(r"https?://|//cdn|@import|url\(", html)
    data = json.loads(parsed.scripts["embedsql-data"])
    assert (data["rows"], data["points"]) == (90, 90)
    assert data["columns"] == ["id", "cluster", "cluster_label", "body", "kind"]
    assert data["values"][0][:3] == ["1", "2", "3"]
    assert data["values"][3][0] == "apple note 1"
    assert data["values"][4][0] == "fruit </script><!-- 1"  # kept exact, and harmless inside the page
    x = np.frombuffer(base64.b64decode(data["x"]), dtype="<f4")
    assert np.array_equal(
        x, np.array([r[0] for r in fetch(mapped, "SELECT x FROM docs_embeddings_map ORDER BY id")], np.float32)
    )
    cluster = np.frombuffer(base64.b64decode(data["cluster"]), dtype="<i4")
    assert cluster.tolist() == [c for (c,) in fetch(mapped, "SELECT cluster FROM docs_embeddings_map ORDER BY id")]
    assert [label["cluster"] for label in data["labels"]] == [0, 1, 2]
    assert [label["text"] for label in data["labels"]] == [
        r[0] for r in fetch(mapped, "SELECT DISTINCT cluster_label, cluster FROM docs_embeddings_map ORDER BY cluster")
    ]
    assert not list(tmp_path.glob("out/*.part"))


def test_the_picture_is_a_png(mapped: Path, tmp_path: Path) -> None:
    picture = tmp_path / "map.png"
    code, _, err = _map(mapped, "docs_embeddings", "-o", str(picture), "--sample", "60")
    assert code == 0, err
    head = picture.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (1200, 1200)


def test_the_python_function_returns_the_map(mapped: Path, tmp_path: Path) -> None:
    rows = embedsql.map("docs_embeddings", db=mapped, output=tmp_path / "m.png")
    assert rows.column_names == ["id", "x", "y", "cluster", "cluster_label"]
    assert [tuple(r.values()) for r in rows.to_pylist()] == fetch(
        mapped, "SELECT id, x, y, cluster, cluster_label FROM docs_embeddings_map ORDER BY id"
    )
    assert (tmp_path / "m.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["docs"],
            "Error: table docs was not written by embedsql, so its model is unknown (embedsql map docs). "
            "Tables embedsql wrote: docs_embeddings.\n",
        ),
        (
            ["Docs_Embedings"],
            "Error: table Docs_Embedings does not exist (embedsql map Docs_Embedings). "
            "Did you mean embedsql map docs_embeddings?\n",
        ),
        (
            ["nothing_here"],
            "Error: table nothing_here does not exist (embedsql map nothing_here). "
            "Tables embedsql wrote: docs_embeddings.\n",
        ),
        (
            ["docs_embeddings", "--color", "genre"],
            "Error: --color 'genre' is not a column of the job's query (pass --show to choose the columns). "
            "Colour by one of: cluster, cluster_label, body.\n",
        ),
        (
            ["docs_embeddings", "--show", "select id, kind from docs", "--color", "Kind"],
            "Error: --color 'Kind' is not a column of the --show query. Colour by one of: cluster, cluster_label, "
            "kind.\n",
        ),
        (
            ["docs_embeddings", "-o", "map.svg"],
            "Error: -o 'map.svg': embedsql map draws a page (.html) or a picture (.png); name the file with one of "
            "those extensions.\n",
        ),
        (
            ["docs_embeddings", "-o", "no/such/folder/map.png"],
            "Error: -o 'no/such/folder/map.png': 'no/such/folder' does not exist. Create the folder, or write the "
            "file elsewhere.\n",
        ),
        (
            ["docs_embeddings", "-o", "m.duckdb/map.html"],
            "Error: -o 'm.duckdb/map.html': 'm.duckdb' is a file, not a folder. Create the folder, or write the file "
            "elsewhere.\n",
        ),
        (
            ["docs_embeddings", "-o", "./m.duckdb"],
            "Error: -o 'm.duckdb' is the database itself; name another file for the map.\n",
        ),
        (
            ["docs_embeddings", "--into", "docs_embeddings"],
            "Error: --into docs_embeddings is the table being mapped; name another table for the map.\n",
        ),
        (
            ["docs_embeddings", "--into", "docs"],
            "Error: table docs already exists and was not written by embedsql map. Pass another --into, or drop it "
            'first (DROP TABLE "docs").\n',
        ),
        (
            ["docs_embeddings", "--show", "select count(*) AS n from docs"],
            "Error: the --show query does not return the key column(s) id and they cannot be added to it",
        ),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(mapped: Path, args: list[str], message: str) -> None:
    before = _tables(mapped)
    code, out, err = _map(mapped, *args)
    assert (code, out) == (1, "")
    assert err.startswith(message) if not message.endswith("\n") else err == message
    assert "Traceback" not in err
    assert _tables(mapped) == before
    assert fetch(mapped, "SELECT count(*) FROM embedsql.maps") == [(0,)]


def test_a_table_of_too_few_vectors_makes_no_map(tmp_path: Path, fake_time: FakeTime) -> None:
    db = tmp_path / "few.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE t AS SELECT i AS id, 'text ' || (i % 4) AS body FROM range(40) r(i)")
    con.close()
    embedsql.run("select id, body from t", db=db, **fake_time)
    before = _tables(db)
    code, out, err = _map(db, "t_embeddings")
    assert (code, out) == (1, "")
    assert err == (
        "mapping: reading the vectors\n"
        "Error: table t_embeddings has 4 distinct vector(s); a map needs at least 5. Embed more rows first "
        "(embedsql run).\n"
    )
    assert _tables(db) == before


def test_a_map_table_someone_else_made_again_is_not_overwritten(mapped: Path) -> None:
    assert _map(mapped, "docs_embeddings")[0] == 0
    con = duckdb.connect(str(mapped))
    con.execute("CREATE OR REPLACE TABLE docs_embeddings_map AS SELECT 1 AS mine")
    con.close()
    code, _, err = _map(mapped, "docs_embeddings")
    assert code == 1
    assert err == (
        "Error: table docs_embeddings_map already exists and was not written by embedsql map. Pass another --into, "
        'or drop it first (DROP TABLE "docs_embeddings_map").\n'
    )
    assert fetch(mapped, "SELECT * FROM docs_embeddings_map") == [(1,)]


def test_without_the_map_extra_the_command_says_what_to_install(mapped: Path) -> None:
    code = (
        "import sys; sys.modules['umap'] = None; sys.modules['sklearn'] = None\n"
        "from embedsql.cli import main\n"
        f"sys.argv = ['embedsql', 'map', 'docs_embeddings', '--db', {str(mapped)!r}]\n"
        "sys.exit(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "Error: embedsql map needs umap-learn and scikit-learn, which are not installed. "
        "Install the map extra: pip install 'embedsql[map]'\n"
    )


def test_quoted_names_and_a_composite_key(tmp_path: Path, fake_time: FakeTime) -> None:
    db = tmp_path / "odd.duckdb"
    con = duckdb.connect(str(db))
    con.execute('CREATE SCHEMA "Sch ema"')
    con.execute('CREATE TABLE "Sch ema"."Od""d T" ("Key Col" VARCHAR, k2 INTEGER, txt VARCHAR)')
    con.executemany(
        'INSERT INTO "Sch ema"."Od""d T" VALUES (?, ?, ?)',
        [(f"k'{i % 20}", i // 20, f"{word} {i}") for i, word in enumerate(["apple", "volvo", "python"] * 20)],
    )
    con.close()
    into = '"Sch ema"."Emb ""x"""'
    embedsql.run(
        'select "Key Col", k2, txt from "Sch ema"."Od""d T"', key=["Key Col", "k2"], into=into, db=db, **fake_time
    )
    before = fetch(db, 'SELECT * FROM "Sch ema"."Emb ""x""" ORDER BY ALL')

    code, out, err = _map(db, into, "--sample", "40")

    assert code == 0, err
    assert out.startswith(f'"Sch ema"."Emb ""x""_map" in {db}: 40 rows (--sample 40), 40 distinct vectors')
    rows = fetch(db, 'SELECT "Key Col", k2 FROM "Sch ema"."Emb ""x""_map" ORDER BY ALL')
    assert len(rows) == 40
    assert set(rows) <= set(fetch(db, 'SELECT "Key Col", k2 FROM "Sch ema"."Od""d T"'))
    assert fetch(db, 'SELECT * FROM "Sch ema"."Emb ""x""" ORDER BY ALL') == before
    assert fetch(db, "SELECT table_name, source_table, key_columns, sample FROM embedsql.maps") == [
        ('"Sch ema"."Emb ""x""_map"', '"Sch ema"."Emb ""x"""', ["Key Col", "k2"], 40)
    ]
    # The same spelled otherwise is the same table: reused, and recorded once.
    code, out, _ = _map(db, '"Sch ema"."Emb ""x"""', "--sample", "40", "--into", '"Sch ema"."Emb ""x""_MAP"')
    assert (code, out.endswith("(reused: its vectors have not changed)\n")) == (0, True)
    assert fetch(db, "SELECT count(*) FROM embedsql.maps") == [(1,)]


def test_the_page_says_when_it_shows_a_sample(mapped: Path, tmp_path: Path) -> None:
    page = tmp_path / "sample.html"
    assert _map(mapped, "docs_embeddings", "--sample", "50", "-o", str(page))[0] == 0
    parsed = _Page()
    parsed.feed(page.read_text(encoding="utf-8"))
    data = json.loads(parsed.scripts["embedsql-data"])
    assert data["rows"] == 50
    assert data["note"].startswith("a sample of 50 rows, 50 distinct vectors, 3 clusters.")


def test_the_database_is_free_while_the_vectors_are_laid_out(mapped: Path) -> None:
    # Another process writes the database while the map is being laid out (as a job's steps do
    # while its batches wait): it makes a table of the map's name, which the map then leaves alone.
    def meanwhile(event: object) -> None:
        if getattr(event, "step", "") == "laying out":
            code = (
                "import duckdb, sys; con = duckdb.connect(sys.argv[1]); "
                "con.execute('CREATE TABLE docs_embeddings_map AS SELECT 42 AS mine'); con.close()"
            )
            subprocess.run([sys.executable, "-c", code, str(mapped)], check=True, capture_output=True)

    with pytest.raises(embedsql.TargetError) as refused:
        embedsql.map("docs_embeddings", db=mapped, on_event=meanwhile)
    assert str(refused.value) == (
        "table docs_embeddings_map already exists and was not written by embedsql map. Pass another --into, "
        'or drop it first (DROP TABLE "docs_embeddings_map").'
    )
    assert fetch(mapped, "SELECT * FROM docs_embeddings_map") == [(42,)]
    assert fetch(mapped, "SELECT count(*) FROM embedsql.maps") == [(0,)]


# A map of the fixture's 90 vectors that lays out 40 of them and places the other 50, as above
# LAID_OUT (20,000) a map of a large table does.
_FEW_LAID_OUT = (
    "import sys, embedsql.projection as p; p.LAID_OUT = 40; from embedsql.__main__ import main; "
    "sys.argv[0] = 'embedsql'; main()"
)


@pytest.mark.parametrize(
    ("point", "laid_out", "last_step"),
    [
        ("map-layout", None, "mapping: laying out"),
        ("map-place:1", 40, "mapping: placing the points, 0/90"),
    ],
)
def test_ctrl_c_while_mapping_is_one_line_and_writes_nothing(
    mapped: Path, point: str, laid_out: int | None, last_step: str
) -> None:
    before = _tables(mapped)
    run = [sys.executable, "-c", _FEW_LAID_OUT] if laid_out else [sys.executable, "-m", "embedsql"]
    stopped = subprocess.run(
        [*run, "map", "docs_embeddings", "--db", str(mapped), "-o", str(mapped.with_suffix(".html"))],
        capture_output=True,
        text=True,
        env={**os.environ, "EMBEDSQL_FAILPOINT": f"{point}:int"},
        check=False,
    )
    assert (stopped.returncode, stopped.stdout) == (130, ""), stopped.stderr
    lines = [line for line in stopped.stderr.splitlines() if ", epoch " not in line]
    assert lines[-3:] == [last_step, "", "Interrupted: the command stopped before it finished."]
    assert "Traceback" not in stopped.stderr
    assert _tables(mapped) == before
    assert fetch(mapped, "SELECT count(*) FROM embedsql.maps") == [(0,)]
    assert not mapped.with_suffix(".html").exists()


def test_a_ctrl_c_while_compiled_code_runs_is_held_until_python_can_stop() -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt), _held_interrupts() as interrupted:  # noqa: PT012 - it waits
        interrupted()
        os.kill(os.getpid(), signal.SIGINT)
        # Nothing raised where the signal came (numba's callbacks would lose it) ...
        time.sleep(0.05)
        reached.append("after the signal")
        # ... but at the next check.
        interrupted()
        reached.append("after the check")
    assert reached == ["after the signal"]
    # And when no check comes, on leaving; afterwards Ctrl-C is Python's again.
    with pytest.raises(KeyboardInterrupt), _held_interrupts():  # noqa: PT012 - it waits
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        reached.append("left")
    assert reached == ["after the signal", "left"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize(
    ("expression", "type_name"),
    [
        ("to_seconds(id)", "INTERVAL"),
        ("('10:00:00+0' || (id % 10)::VARCHAR)::TIMETZ", "TIME WITH TIME ZONE"),
        ("[id]", "INTEGER[]"),
        ("id::DOUBLE", "DOUBLE"),
    ],
)
def test_a_table_made_by_hand_with_a_key_embedsql_refuses_is_one_line(
    mapped: Path, expression: str, type_name: str
) -> None:
    # Registered as embedsql's the way another tool might: the keys embedsql run would have refused.
    con = duckdb.connect(str(mapped))
    con.execute(f"CREATE TABLE odd AS SELECT {expression} AS k, embedding FROM docs_embeddings")
    con.execute(
        "INSERT INTO embedsql.targets SELECT '\"odd\"', model, dimensions, ['k'], [?], job_id, now() "
        "FROM embedsql.targets WHERE table_name = '\"docs_embeddings\"'",
        [type_name],
    )
    comment = con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'docs_embeddings'").fetchall()[0][0]
    con.execute(f"COMMENT ON TABLE odd IS '{comment}'")
    con.close()
    before = _tables(mapped)
    code, out, err = _map(mapped, "odd")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"Error: table odd has the key column 'k' of type {type_name}, which cannot serve as a key (supported: "
        "integers, DECIMAL, VARCHAR, UUID, DATE, TIME, TIMESTAMP, BOOLEAN and BLOB). Embed it again with a key "
        "of one of those types (embedsql run)."
    ]
    assert _tables(mapped) == before


def test_vectors_that_are_not_numbers_are_one_line(mapped: Path) -> None:
    con = duckdb.connect(str(mapped))
    con.execute(
        "UPDATE docs_embeddings SET embedding = list_transform(range(1536), lambda i: "
        "CASE WHEN i = 7 THEN 'nan'::FLOAT ELSE 0.5::FLOAT END)::FLOAT[1536] WHERE id IN (5, 9)"
    )
    con.execute(
        "UPDATE docs_embeddings SET embedding = list_transform(range(1536), lambda i: 'inf'::FLOAT)::FLOAT[1536] "
        "WHERE id = 40"
    )
    con.close()
    before = _tables(mapped)
    code, out, err = _map(mapped, "docs_embeddings")
    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == (
        "Error: table docs_embeddings holds 3 vector(s) with NaN or infinite numbers, e.g. the row where id = 5; "
        "no map can place them. Embed those rows again, or delete them from the table."
    )
    assert _tables(mapped) == before


def test_the_map_never_overwrites_the_database_or_another_tables_map(tmp_path: Path, mapped: Path) -> None:
    page = tmp_path / "db.html"
    page.write_bytes(mapped.read_bytes())
    before = page.read_bytes()
    result = CliRunner().invoke(cli, ["map", "docs_embeddings", "--db", str(page), "-o", str(page)])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"Error: -o {str(page)!r} is the database itself; name another file for the map.\n"
    assert page.read_bytes() == before

    assert _map(mapped, "docs_embeddings")[0] == 0
    con = duckdb.connect(str(mapped))
    con.execute("CREATE TABLE other_embeddings AS SELECT * FROM docs_embeddings")
    # What embedsql records of a table it wrote: the same as of docs_embeddings.
    (comment,) = con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'docs_embeddings'").fetchone()
    con.execute(f"COMMENT ON TABLE other_embeddings IS '{comment}'")
    con.execute(
        "INSERT INTO embedsql.targets SELECT '\"other_embeddings\"', model, dimensions, key_columns, key_types, "
        "job_id, now() FROM embedsql.targets"
    )
    con.close()
    mine = fetch(mapped, "SELECT * FROM docs_embeddings_map ORDER BY id")
    code, out, err = _map(mapped, "other_embeddings", "--into", "docs_embeddings_map")
    assert (code, out) == (1, "")
    assert err == (
        "Error: table docs_embeddings_map is the map of docs_embeddings, not of other_embeddings. Pass another "
        '--into, or drop it first (DROP TABLE "docs_embeddings_map").\n'
    )
    assert fetch(mapped, "SELECT * FROM docs_embeddings_map ORDER BY id") == mine
