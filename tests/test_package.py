"""The package's promises about itself: its public API, module boundaries, docs and lint.

After changing a command's options or help, `python tests/test_package.py` rewrites the README's
command reference from `--help`.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import typing
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import embedsql
from embedsql.cli import cli

from helpers import REPO

COMMANDS = [[], ["run"], ["resume"], ["cancel"], ["status"], ["jobs"], ["search"], ["map"], ["sql"], ["config"]]


def test_public_api_is_pinned() -> None:
    assert sorted(embedsql.__all__) == [
        "BatchProgress",
        "ConfigError",
        "DatabaseError",
        "Detached",
        "EmbedsqlError",
        "InputError",
        "JobError",
        "JobStatus",
        "JobSummary",
        "LoadError",
        "Notice",
        "Outage",
        "Progress",
        "QueryError",
        "RemoteError",
        "RunResult",
        "Settings",
        "StorageError",
        "TargetError",
        "cancel",
        "connect",
        "job_status",
        "list_jobs",
        "load_settings",
        "map",
        "resume",
        "run",
        "search",
        "sql",
    ]
    assert all(hasattr(embedsql, name) for name in embedsql.__all__)


def _module_names() -> list[str]:
    package = REPO / "embedsql"
    return [
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for path in sorted(package.rglob("*.py"))
    ]


@pytest.mark.parametrize("name", _module_names())
def test_every_module_pins_its_public_names_both_ways(name: str) -> None:
    """A module's ``__all__`` names only what it has, and every public function, class and constant
    that the module defines itself is in it (a package's ``__init__`` may re-export more)."""
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert [n for n in exported if not hasattr(module, n)] == []
    assert len(set(exported)) == len(exported)
    tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
    defined = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            defined.add(node.name)
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        defined |= {t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()}
    # Commands reach users through the `embedsql` group, type variables are not API.
    public = {
        n
        for n in defined
        if not n.startswith("_") and not isinstance(getattr(module, n), click.Command | typing.TypeVar)
    }
    assert sorted(public - set(exported)) == []


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(["embedsql", *a]))
def test_readme_reference_equals_help(args: list[str]) -> None:
    result = CliRunner().invoke(cli, [*args, "--help"], prog_name="embedsql")
    title = " ".join(["embedsql", *args])
    readme = (REPO / "README.md").read_text(encoding="utf-8")

    block = re.search(rf"### `{re.escape(title)}`\n\n```\n(.*?)\n```", readme, re.S)

    assert result.exit_code == 0
    assert block is not None, f"README has no reference section for {title}"
    assert block.group(1) == result.output.rstrip()


def test_every_command_is_in_the_readme_and_has_an_example() -> None:
    assert sorted(cli.commands) == sorted(a[0] for a in COMMANDS if a)
    for command in cli.commands.values():
        assert command.help
        assert "Example:" in command.help


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quickstart = re.search(r"## Quickstart\n\n```bash\n(.*?)\n(.*?)\n```", readme, re.S)
    assert quickstart is not None
    assert quickstart.group(1) == 'pip install -e . && embedsql run "select movieId, genres from movies"'
    assert quickstart.group(2) in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def _imports(path: str) -> set[str]:
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_cli_imports_click_and_no_module_imports_openai_outside_its_runner() -> None:
    modules = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "embedsql").rglob("*.py"))
    assert "embedsql/cli.py" in modules
    for module in modules:
        imported = _imports(module)
        assert ("click" in imported) == (module == "embedsql/cli.py"), module
        assert "openai" not in imported or module == "embedsql/runners/openai.py", module


def test_the_library_does_not_load_click_or_the_model_on_import() -> None:
    code = (
        "import sys, embedsql, embedsql.pipeline; print(sorted({'click', 'onnxruntime', 'openai'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"


def test_ruff_finds_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *(p for p in ("embedsql", "tests", "bench") if (REPO / p).is_dir())],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _reference() -> str:
    blocks = []
    for args in COMMANDS:
        output = CliRunner().invoke(cli, [*args, "--help"], prog_name="embedsql").output
        blocks.append(f"### `{' '.join(['embedsql', *args])}`\n\n```\n{output.rstrip()}\n```\n")
    return "\n".join(blocks)


if __name__ == "__main__":
    readme = REPO / "README.md"
    text = readme.read_text(encoding="utf-8")
    start = text.index("### `embedsql`")
    end = text.index("## ", text.index("```", text.rindex("### `embedsql")) + 3)
    readme.write_text(text[:start] + _reference() + "\n" + text[end:], encoding="utf-8")
