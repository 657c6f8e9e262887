"""A dbt project's files in a shape embedsql cannot use: a manifest that is not what dbt writes (a list,
without nodes, a node without relation_name, not JSON, cut short) and a dbt_project.yml or profiles.yml
that is not valid YAML or holds values of the wrong type. One line each, naming the file (and the line
where YAML gives one) and the fix, for every command that reads them and for the Python API.

The project is written by hand in tmp_path (tests/test_dbt.py runs real dbt, and is slow).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

import embedsql
from embedsql.cli import cli
from embedsql.errors import ConfigError

from helpers import fetch

CUSTOMERS = {
    "resource_type": "model",
    "name": "customers",
    "package_name": "shop",
    "relation_name": '"shop"."main"."customers"',
    "database": "shop",
    "schema": "main",
    "alias": "customers",
    "config": {"meta": {}},
    "meta": {},
}
MANIFEST: dict[str, Any] = {
    "metadata": {"adapter_type": "duckdb"},
    "nodes": {"model.shop.customers": CUSTOMERS},
    "sources": {},
    "disabled": {},
}
PROJECT = "name: shop\nprofile: shop\n"
PROFILES = "shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: shop.duckdb\n"
REF = "select id, note from {{ ref('customers') }}"
# Every command that resolves ref() through the manifest.
MANIFEST_COMMANDS = [
    ["run", REF],
    ["run", REF, "--dry-run"],
    ["sql", REF],
    ["search", "jazz", "--table", "customers_embeddings", "--show", REF],
]
# Every command that reads dbt_project.yml and profiles.yml (for the database).
PROJECT_COMMANDS = [
    *MANIFEST_COMMANDS,
    ["resume", "20260101-000000-abcd"],
    ["cancel", "20260101-000000-abcd"],
    ["jobs"],
    ["status"],
    ["sql", "select 1"],
]


def ids(commands: list[list[str]]) -> list[str]:
    return [
        " ".join(c[:1] + c[3:4] + (["dry-run"] if "--dry-run" in c else [])) + f"-{i}" for i, c in enumerate(commands)
    ]


@pytest.fixture(scope="module")
def shop_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dbt project as dbt leaves it after `dbt build` (its files, its manifest and its database), and
    customers_embeddings in it, for search."""
    project = tmp_path_factory.mktemp("shop")
    (project / "dbt_project.yml").write_text(PROJECT, encoding="utf-8")
    (project / "profiles.yml").write_text(PROFILES, encoding="utf-8")
    con = duckdb.connect(str(project / "shop.duckdb"))
    con.execute("CREATE TABLE customers AS SELECT * FROM (VALUES (1, 'likes jazz'), (2, 'reads')) t(id, note)")
    con.close()
    write_manifest(project, json.dumps(MANIFEST))
    embedsql.run(REF, dbt_project=project, db=project / "shop.duckdb")
    return project


@pytest.fixture
def shop(shop_template: Path, tmp_path: Path) -> Path:
    """A copy of the project in the test's own directory (the working directory)."""
    shutil.copytree(shop_template, tmp_path, dirs_exist_ok=True)
    return tmp_path


def write_manifest(project: Path, text: str) -> None:
    path = project / "target" / "manifest.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    later = (project / "dbt_project.yml").stat().st_mtime + 10  # newer than the files dbt parses
    os.utime(path, (later, later))


def state(project: Path) -> list[tuple[Any, ...]]:
    return fetch(project / "shop.duckdb", "SELECT * FROM customers ORDER BY id") + fetch(
        project / "shop.duckdb", "SELECT count(*) FROM embedsql.jobs"
    )


def test_the_hand_written_project_works(shop: Path) -> None:
    result = CliRunner().invoke(cli, ["sql", REF, "--dbt-project", ".", "--format", "csv"])

    assert (result.exit_code, result.stdout) == (0, "id,note\n1,likes jazz\n2,reads\n"), result.output


def _node(**changed: Any) -> dict[str, Any]:
    node = {**CUSTOMERS, **changed}
    return {k: v for k, v in node.items() if v is not ...}


# (id, manifest text, what is wrong with it)
MANIFESTS = [
    ("a list", "[1, 2]", "it holds a list, not an object"),
    ("a text", '"manifest"', "it holds a text, not an object"),
    ("no nodes", json.dumps({"metadata": {"adapter_type": "duckdb"}, "sources": {}}), "it has no nodes"),
    ("nodes a list", json.dumps({**MANIFEST, "nodes": [CUSTOMERS]}), "nodes is a list, not an object"),
    ("no metadata", json.dumps({"nodes": {}, "sources": {}}), "it has no metadata"),
    ("sources null", json.dumps({**MANIFEST, "sources": None}), "sources is null, not an object"),
    ("node a list", json.dumps({**MANIFEST, "nodes": {"model.shop.customers": []}}),
     "model.shop.customers is a list, not an object"),
    ("node without relation_name",
     json.dumps({**MANIFEST, "nodes": {"model.shop.customers": _node(relation_name=...)}}),
     "model.shop.customers has no relation_name"),
    ("node without schema", json.dumps({**MANIFEST, "nodes": {"model.shop.customers": _node(schema=...)}}),
     "model.shop.customers has no schema"),
    ("name a number", json.dumps({**MANIFEST, "nodes": {"model.shop.customers": _node(name=7)}}),
     "name of model.shop.customers is a number, not a text"),
    ("config a list", json.dumps({**MANIFEST, "nodes": {"model.shop.customers": _node(config=[])}}),
     "config or meta of model.shop.customers is not an object"),
    ("source without name", json.dumps({**MANIFEST, "sources": {"source.shop.raw.notes": {"relation_name": "x"}}}),
     "source.shop.raw.notes has no name"),
    ("disabled a list", json.dumps({**MANIFEST, "disabled": [1]}), "disabled is not an object of lists of nodes"),
]  # fmt: skip


@pytest.mark.parametrize("command", MANIFEST_COMMANDS, ids=ids(MANIFEST_COMMANDS))
@pytest.mark.parametrize(("text", "wrong"), [m[1:] for m in MANIFESTS], ids=[m[0] for m in MANIFESTS])
def test_a_manifest_of_another_shape_is_one_error(shop: Path, text: str, wrong: str, command: list[str]) -> None:
    write_manifest(shop, text)
    before = state(shop)

    result = CliRunner().invoke(cli, [*command, "--dbt-project", "."])

    assert (result.exit_code, result.stdout) == (1, ""), result.output
    assert result.stderr == (
        f"Error: the dbt manifest {Path('target/manifest.json')} is not as dbt writes it: {wrong}. Run `dbt parse` "
        "in . to write it again.\n"
    )
    assert state(shop) == before


UNREADABLE = {
    "not JSON": "manifest",
    "empty": "",
    "cut short": json.dumps(MANIFEST)[:40],
    "cut after an object": json.dumps(MANIFEST)[:-1],
    "not UTF-8": '{"metadata": "caf\xe9"}',
}


@pytest.mark.parametrize("command", MANIFEST_COMMANDS, ids=ids(MANIFEST_COMMANDS))
@pytest.mark.parametrize("case", list(UNREADABLE))
def test_a_manifest_that_is_not_json_is_one_error(shop: Path, case: str, command: list[str]) -> None:
    text = UNREADABLE[case]
    path = shop / "target" / "manifest.json"
    write_manifest(shop, "")
    path.write_bytes(text.encode("latin-1"))
    os.utime(path, (path.stat().st_mtime + 10,) * 2)
    with pytest.raises(ValueError, match=r".") as json_says:
        json.loads(path.read_bytes())
    before = state(shop)

    result = CliRunner().invoke(cli, [*command, "--dbt-project", "."])

    assert (result.exit_code, result.stdout) == (1, ""), result.output
    assert result.stderr == (
        f"Error: cannot read the dbt manifest {Path('target/manifest.json')}: {json_says.value} (cut short, or not "
        "written by dbt?). Run `dbt parse` in . to write it again.\n"
    )
    assert state(shop) == before


def test_an_ephemeral_model_is_still_told_apart_from_a_broken_manifest(shop: Path) -> None:
    write_manifest(shop, json.dumps({**MANIFEST, "nodes": {"model.shop.customers": _node(relation_name=None)}}))

    result = CliRunner().invoke(cli, ["sql", REF, "--dbt-project", "."])

    assert result.stderr == (
        "Error: {{ ref('customers') }} is an ephemeral model: dbt builds no table or view for it. Materialise it as "
        "a view or table (config materialized='view') and build it.\n"
    )


# (id, dbt_project.yml text, the message after "Error: ")
PROJECT_FILES = [
    ("bad indentation", "name: shop\nprofile: shop\n  models: x\n",
     "{path} is not valid YAML at line 3, column 9: mapping values are not allowed here. Fix the file (dbt cannot "
     "read it either)."),
    ("open bracket", "name: shop\nprofile: shop\nmodel-paths: [models\n",
     "{path} is not valid YAML at line 4, column 1: expected ',' or ']', but got '<stream end>' (while parsing a flow "
     "sequence). Fix the file (dbt cannot read it either)."),
    ("tab", "name: shop\n\tprofile: shop\n",
     "{path} is not valid YAML at line 2, column 1: found character '\\t' that cannot start any token (while "
     "scanning for the next token). Fix the file (dbt cannot read it either)."),
    ("not UTF-8", "name: caf\xe9\nprofile: shop\n",
     "{path} is not UTF-8 text: byte 0xe9 on line 1 cannot be decoded (Latin-1 or another legacy encoding?). Save it "
     "as UTF-8 (dbt cannot read it either)."),
    ("a list", "- name: shop\n", "{path} must be a mapping of settings, as dbt requires."),
    ("vars a list", PROJECT + "vars: [1, 2]\n",
     "vars in {path} must be a mapping of names to values, as dbt requires; it is [1, 2]. Fix the file."),
    ("model-paths a text", PROJECT + "model-paths: models\n",
     "model-paths in {path} must be a list of folders, as dbt requires; it is 'models'. Fix the file."),
    ("target-path a list", PROJECT + "target-path: [target]\n",
     "target-path in {path} must be a text, as dbt requires; it is ['target']. Fix the file."),
    ("profile a number", "name: shop\nprofile: 7\n",
     "profile in {path} must be a text, as dbt requires; it is 7. Fix the file."),
]  # fmt: skip


@pytest.mark.parametrize("command", PROJECT_COMMANDS, ids=ids(PROJECT_COMMANDS))
@pytest.mark.parametrize(("text", "message"), [p[1:] for p in PROJECT_FILES], ids=[p[0] for p in PROJECT_FILES])
def test_a_dbt_project_yml_that_cannot_be_used_is_one_error(
    shop: Path, text: str, message: str, command: list[str]
) -> None:
    (shop / "dbt_project.yml").write_bytes(text.encode("latin-1"))
    before = state(shop)

    result = CliRunner().invoke(cli, [*command, "--dbt-project", "."])

    assert (result.exit_code, result.stdout) == (1, ""), result.output
    assert result.stderr == f"Error: {message.replace('{path}', str(Path('dbt_project.yml')))}\n"
    assert state(shop) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("shop:\n  target: dev\n  outputs:\n    dev:\n  type: duckdb\n - x\n",
         "{path} is not valid YAML at line 6, column 2: expected <block end>, but found '<block sequence start>' "
         "(while parsing a block mapping). Fix the file (dbt cannot read it either)."),
        ("shop: {target: dev\n", "{path} is not valid YAML at line 2, column 1: expected ',' or '}', but got "
         "'<stream end>' (while parsing a flow mapping). Fix the file (dbt cannot read it either)."),
    ],
    ids=["block", "flow"],
)  # fmt: skip
def test_a_profiles_yml_that_is_not_yaml_is_one_error(shop: Path, text: str, message: str) -> None:
    (shop / "profiles.yml").write_text(text, encoding="utf-8")

    result = CliRunner().invoke(cli, ["jobs"], env={"EMBEDSQL_DBT_PROJECT": "."})
    config = CliRunner().invoke(cli, ["config"], env={"EMBEDSQL_DBT_PROJECT": "."})

    expected = f"Error: {message.replace('{path}', str(Path('profiles.yml')))}\n"
    assert (result.exit_code, result.stderr) == (1, expected)
    assert (config.exit_code, config.stderr) == (1, expected)


def test_the_python_api_raises_the_same_errors(shop: Path) -> None:
    write_manifest(shop, "[]")

    for call in (
        lambda: embedsql.run(REF, dbt_project=shop),
        lambda: embedsql.sql(REF, dbt_project=shop),
        lambda: embedsql.search("jazz", table="customers_embeddings", show=REF, dbt_project=shop),
    ):
        with pytest.raises(ConfigError) as raised:
            call()
        assert str(raised.value) == (
            f"the dbt manifest {shop / 'target' / 'manifest.json'} is not as dbt writes it: it holds a list, not an "
            f"object. Run `dbt parse` in {shop} to write it again."
        )
