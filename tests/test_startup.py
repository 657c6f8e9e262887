"""Starting a command, planning a job, loading its results and searching them never import pandas.

pyarrow imports pandas (when it is installed) the first time it is asked to make an array from Python
values, to check whether they are a pandas object: ~0.5 s of every command, paid by most of the
people embedsql is for. Each case runs in a fresh interpreter that records every attempt to import
pandas, whether or not pandas is installed there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from helpers import texts_table

# Runs CLI commands in-process, one after the other, under a finder that notes each attempt to import
# pandas, then prints them.
_PROBE = """
import importlib.abc, json, sys

asked = []

class Probe(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "pandas":
            asked.append(name)
        return None

sys.meta_path.insert(0, Probe())
from click.testing import CliRunner
from embedsql.cli import cli

results = [CliRunner().invoke(cli, args) for args in json.loads(sys.argv[1])]
print(json.dumps({"exit_codes": [r.exit_code for r in results], "asked": asked, "output": [r.output for r in results]}))
"""


_RUN = ["run", "select id, body from docs", "--db", "d.duckdb"]
_SEARCH = ["search", "word 7", "--table", "docs_embeddings", "--show", "select id from docs", "--db", "d.duckdb"]


@pytest.mark.parametrize(
    "commands",
    [
        [["--help"]],
        [[*_RUN, "--dry-run"]],
        [["jobs", "--format", "csv", "--db", "d.duckdb"]],
        [["config"]],
        [_RUN],  # the offline model's vectors loaded as every runner's are
        [_RUN, _SEARCH],
    ],
    ids=["help", "dry-run", "jobs", "config", "run", "search"],
)
def test_a_command_imports_no_pandas(tmp_path: Path, commands: list[list[str]]) -> None:
    # Texts over 200 bytes: planning hashes them in Python (the SQL function that pyarrow answers for).
    texts_table(tmp_path / "d.duckdb", {i: f"{'word ' * 60}{i}" for i in range(50)})

    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(commands)], capture_output=True, text=True, cwd=tmp_path, check=True
    )

    outcome = json.loads(done.stdout.splitlines()[-1])
    assert outcome["exit_codes"] == [0] * len(commands), outcome["output"]
    assert outcome["asked"] == []
    if _RUN in commands:
        con = duckdb.connect(str(tmp_path / "d.duckdb"), read_only=True)
        try:
            assert con.sql("SELECT count(*) FROM docs_embeddings").fetchall() == [(50,)]
        finally:
            con.close()
    if _SEARCH in commands:  # ten hits, each a key of the table
        lines = outcome["output"][-1].splitlines()
        assert len(lines) == 12
        assert {int(line.split()[0]) for line in lines[2:]} <= set(range(50))
