"""A full disk or an unusable work folder: a clear error, nothing lost, and it goes on once there is room.

The full disk is real: a small tmpfs mounted for the test (which needs root, as CI and these
machines run; elsewhere the test says why it is skipped).
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

from embedsql.cli import cli

from fake_openai import FakeOpenAI, expected_vector
from helpers import fetch, texts_table


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB file system; `resize(n)` in the test grows it, keeping its files."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def resize(mount: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True)


def docs(path: Path, n: int, width: int) -> dict[int, str]:
    texts = {i: f"{i} " + "lorem ipsum dolor " * (width // 18) for i in range(n)}
    texts_table(path, texts)
    return texts


def test_a_full_disk_while_writing_shards(tmp_path: Path, small_disk: Path) -> None:
    db = tmp_path / "d.duckdb"
    docs(db, n=40, width=4000)  # ~160 KB of shards
    env = {"EMBEDSQL_WORK_DIR": str(small_disk)}

    full = CliRunner().invoke(
        cli,
        ["run", "select id, body from docs", "--db", str(db), "--dry-run", "--model", "text-embedding-3-small"],
        env=env,
    )
    failed = CliRunner().invoke(cli, ["run", "select id, body from docs", "--db", str(db)], env=env)

    assert full.exit_code == failed.exit_code == 1
    for result, folder in ((full, r"dry-run-\d{8}-\d{6}-[0-9a-f]{4}"), (failed, r"\d{8}-\d{6}-[0-9a-f]{4}")):
        assert re.fullmatch(
            f"Error: cannot write shard files in {re.escape(str(small_disk / 'd.duckdb'))}/{folder}: No space left "
            "on device \\(errno 28\\). Free some space there, or set EMBEDSQL_WORK_DIR to a folder with room.",
            result.stderr.splitlines()[-1],
        ), result.stderr
    assert fetch(db, "SELECT count(*) FROM embedsql.jobs") == [(0,)]
    assert fetch(db, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'docs_embeddings'") == [(0,)]

    resize(small_disk, "4m")
    again = CliRunner().invoke(cli, ["run", "select id, body from docs", "--db", str(db)], env=env)

    assert again.exit_code == 0, again.output
    assert fetch(db, "SELECT count(*) FROM docs_embeddings") == [(40,)]
    assert [p for p in small_disk.rglob("*") if p.is_file()] == []  # the failed plan's files were cleared


def test_a_full_disk_while_downloading_then_resume(tmp_path: Path, small_disk: Path, openai_server: FakeOpenAI) -> None:
    db = tmp_path / "d.duckdb"
    texts = docs(db, n=12, width=40)  # small shards; the results (8 KB of base64 a vector) do not fit
    env = {"EMBEDSQL_WORK_DIR": str(small_disk), "EMBEDSQL_POLL_INTERVAL": "0"}

    failed = CliRunner().invoke(cli, ["run", "select id, body from docs", "--db", str(db)], env=env)

    job_id = fetch(db, "SELECT job_id FROM embedsql.jobs")[0][0]
    assert failed.exit_code == 1
    assert failed.stderr.splitlines()[-1] == (
        f"Error: cannot write result file shard-00001.output.jsonl in {small_disk / 'd.duckdb' / job_id}: No space "
        "left on device (errno 28). Free some space there, or set EMBEDSQL_WORK_DIR to a folder with room. "
        f"Job {job_id} keeps its place: continue it with `embedsql resume {job_id}`."
    )
    assert fetch(db, "SELECT status FROM embedsql.jobs") == [("prepared",)]

    resize(small_disk, "4m")
    resumed = CliRunner().invoke(cli, ["resume", job_id, "--db", str(db)], env=env)

    assert resumed.exit_code == 0, resumed.output
    assert openai_server.batches_created == 1
    assert openai_server.inputs_by_text == Counter(dict.fromkeys(texts.values(), 1))
    for key, vector in fetch(db, "SELECT id, embedding FROM docs_embeddings"):
        np.testing.assert_array_equal(
            np.array(vector, np.float32),
            expected_vector("text-embedding-3-small", texts[key], 1536),  # type: ignore[index]
        )


def test_a_full_disk_while_duckdb_spills_the_query(tmp_path: Path, small_disk: Path) -> None:
    # Under a small memory limit DuckDB spills the planning query to `<db>.tmp`, here a full disk.
    db = tmp_path / "d.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE docs AS SELECT range AS id, repeat(md5(range::VARCHAR), 10) AS body FROM range(300000)")
    con.close()
    (tmp_path / "d.duckdb.tmp").symlink_to(small_disk)
    args = ["run", "select id, body from docs", "--db", str(db)]

    result = CliRunner().invoke(cli, args, env={"EMBEDSQL_MEMORY_LIMIT": "20MB"})

    assert result.exit_code == 1, result.output
    assert re.fullmatch(
        r"Error: DuckDB ran out of memory, and out of disk for its temporary files: failed to offload data block of "
        r"size [\d.]+ KiB \([^)]*\)\. Nothing of the step it was doing was kept\. Free some space on the disk of "
        r"the database \(DuckDB spills to the folder named like it, with \.tmp\), or raise embedsql's memory_limit "
        r"\(EMBEDSQL_MEMORY_LIMIT=2GB, say\), and run the command again\.",
        result.stderr.splitlines()[-1],
    ), result.stderr
    assert fetch(db, "SELECT count(*) FROM embedsql.jobs") == [(0,)]
    assert fetch(db, "SELECT count(*), sum(id) FROM docs") == [(300000, 44999850000)]


def test_a_work_folder_that_cannot_be_created(tmp_path: Path) -> None:
    db = tmp_path / "d.duckdb"
    docs(db, n=3, width=20)
    (tmp_path / "a-file").write_text("not a folder")

    result = CliRunner().invoke(
        cli, ["run", "select id, body from docs", "--db", str(db)], env={"EMBEDSQL_WORK_DIR": "a-file/work"}
    )

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: cannot write job folders in a-file/work: Not a directory (errno 20). a-file is a file, where a folder "
        "must be: move it, or set EMBEDSQL_WORK_DIR to another path."
    )
    assert fetch(db, "SELECT count(*) FROM embedsql.jobs") == [(0,)]
