"""Ctrl-C at any moment of an ``embedsql`` process, from its first imports to its exit: the normal result,
or one line saying it was interrupted and exit status 130, never a traceback.

The moments are not times: a SIGINT is sent as soon as the process reports (``python -X importtime``
writes a line as each import completes) that it has imported a given module, so it lands in what comes
next, whatever the machine's speed. The process runs the console script as ``pyproject.toml`` declares it,
and ``python -m embedsql``.

A Ctrl-C before Python has run the first line of embedsql's entry point (while the interpreter itself
starts) is Python's own, and is not tested.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hostile import QUERY, docs_db

from helpers import REPO

STARTED = "Interrupted: the command stopped before it started."
STOPPED = "Interrupted: the command stopped before it finished."
PLANNING = (
    "Interrupted before the job was recorded: nothing was written to the database and nothing was sent. "
    "Run the command again to start it."
)


def _console_script() -> list[str]:
    """The console script as pip writes it, for the entry point that pyproject.toml declares."""
    module, function = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"][
        "embedsql"
    ].split(":")
    code = f"import sys; from {module} import {function}; sys.argv[0] = 'embedsql'; sys.exit({function}())"
    return ["-c", code]


LAUNCHERS = {"console script": _console_script(), "python -m embedsql": ["-m", "embedsql"]}
# Modules the command imports after its entry point has started, in the order it needs them: the
# command line's (numpy, pyarrow, duckdb, click, the CLI), then, for `run`, the local model's.
BEFORE_THE_COMMAND = ["numpy", "pyarrow", "duckdb", "click", "embedsql.cli"]
DURING_RUN = ["embedsql.pipeline", "onnxruntime", "tokenizers", "embedsql.local_model"]


def interrupted_at(
    tmp_path: Path, launcher: list[str], args: list[str], module: str
) -> subprocess.CompletedProcess[str]:
    """Run embedsql with ``args``, and send it SIGINT once it has imported ``module``."""
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", *launcher, *args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    early = []
    for line in process.stderr:
        early.append(line)
        if line.startswith("import time:") and line.rsplit("|", 1)[1].strip() == module:
            process.send_signal(signal.SIGINT)
            break
    else:
        pytest.fail(f"embedsql never imported {module}: {''.join(early)[-2000:]}")
    out, rest = process.communicate(timeout=600)
    lines = "".join([*early, rest]).splitlines(keepends=True)
    err = "".join(line for line in lines if not line.startswith("import time:"))
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.parametrize("module", BEFORE_THE_COMMAND)
@pytest.mark.parametrize("launcher", list(LAUNCHERS))
@pytest.mark.parametrize(
    ("args", "normal"),
    [
        (["sql", "select 42 as answer", "--db", "d.duckdb", "--format", "csv"], "answer\n42\n"),
        (
            ["jobs", "--db", "d.duckdb", "--format", "csv"],
            "job,status,target,model,rows,texts_to_embed,billed_tokens,created\n",
        ),
        (["--version"], "embedsql, version 0.1.0\n"),
    ],
    ids=["sql", "jobs", "version"],
)
def test_ctrl_c_while_the_command_starts_is_one_line(
    tmp_path: Path, launcher: str, module: str, args: list[str], normal: str
) -> None:
    docs_db(tmp_path / "d.duckdb")

    done = interrupted_at(tmp_path, LAUNCHERS[launcher], args, module)

    assert "Traceback" not in done.stderr, done.stderr
    if done.returncode == 0:  # it had finished before the signal came
        assert (done.stdout, done.stderr) == (normal, "")
    else:
        assert (done.returncode, done.stdout) == (130, "")
        assert done.stderr in (f"\n{STARTED}\n", f"\n{STOPPED}\n"), done.stderr


@pytest.mark.parametrize("module", BEFORE_THE_COMMAND + DURING_RUN)
@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_ctrl_c_while_a_run_starts_is_one_message(tmp_path: Path, launcher: str, module: str) -> None:
    db = docs_db(tmp_path / "d.duckdb")

    done = interrupted_at(tmp_path, LAUNCHERS[launcher], ["run", QUERY, "--db", "d.duckdb"], module)

    assert "Traceback" not in done.stderr, done.stderr
    if done.returncode == 0:
        assert done.stdout.startswith("docs_embeddings in d.duckdb: 30 rows"), done.stdout
        return
    assert (done.returncode, done.stdout) == (130, ""), done.stderr
    last = done.stderr.strip().split("\n\n")[-1]
    assert last in (STARTED, STOPPED, PLANNING) or (
        last.startswith("Detached from job ") and "\nContinue with: embedsql resume " in last
    ), done.stderr
    assert db.exists()
