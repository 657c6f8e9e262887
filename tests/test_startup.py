"""Starting a command, and planning a job, never import pandas.

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

import pytest

from helpers import texts_table

# Runs the CLI in-process under a finder that notes each attempt to import pandas, then prints them.
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

result = CliRunner().invoke(cli, json.loads(sys.argv[1]))
print(json.dumps({"exit_code": result.exit_code, "asked": asked, "output": result.output}))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["run", "select id, body from docs", "--dry-run", "--db", "d.duckdb"],
        ["jobs", "--format", "csv", "--db", "d.duckdb"],
        ["config"],
    ],
    ids=["help", "dry-run", "jobs", "config"],
)
def test_a_command_imports_no_pandas(tmp_path: Path, args: list[str]) -> None:
    # Texts over 200 bytes: planning hashes them in Python (the SQL function that pyarrow answers for).
    texts_table(tmp_path / "d.duckdb", {i: f"{'word ' * 60}{i}" for i in range(50)})

    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)], capture_output=True, text=True, cwd=tmp_path, check=True
    )

    outcome = json.loads(done.stdout.splitlines()[-1])
    assert outcome["exit_code"] == 0, outcome["output"]
    assert outcome["asked"] == []
