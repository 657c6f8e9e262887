"""dbt projects: the database a project builds into, and ``{{ ref() }}``/``{{ source() }}`` in queries.

dbt writes ``target/manifest.json`` whenever it parses a project, with the relation each model, seed,
snapshot and source is built as. embedsql reads that file instead of importing dbt: it needs no dbt
at run time, and names resolve exactly as the last ``dbt parse`` (or ``build``) resolved them. The
profile (``profiles.yml``) names the DuckDB file the project builds into; that file becomes ``--db``.
Queries are rendered with Jinja, as dbt renders models, with ``ref``, ``source``, ``var`` and
``target`` defined; profiles may also use ``env_var``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import decode_text, user_path
from .errors import ConfigError, QueryError

__all__ = ["Relation", "check_built", "profile_database", "render_query", "resolve_query", "uses_jinja"]

# Folders whose files a parse reads (dbt_project.yml keys and their defaults).
_PARSED_PATHS = {
    "model-paths": ["models"],
    "seed-paths": ["seeds"],
    "snapshot-paths": ["snapshots"],
    "macro-paths": ["macros"],
    "analysis-paths": ["analyses"],
    "test-paths": ["tests"],
}
_PARSED_FILES = ("dbt_project.yml", "packages.yml", "dependencies.yml", "selectors.yml")
_RELATION_TYPES = ("model", "seed", "snapshot")
_DBT_CALL = re.compile(r"\{\{\s*(ref|source|var)\s*\(")


@dataclass(frozen=True)
class Relation:
    """A table or view a query names through dbt, and where dbt builds it."""

    call: str  # as written: ref('stg_movies')
    kind: str  # model, seed, snapshot or source
    name: str  # stg_movies, or raw.movies for a source
    sql: str  # "movies"."main"."stg_movies"
    database: str
    schema: str
    identifier: str
    # A dbt-duckdb source read from files (meta.external_location): sql is DuckDB's reader call.
    external: bool = False


def uses_jinja(sql: str) -> bool:
    """Whether ``sql`` holds a Jinja expression or statement for dbt to resolve."""
    return "{{" in sql or "{%" in sql


def resolve_query(sql: str, project_dir: Path | None, *, db: Path) -> tuple[str, list[Relation]]:
    """``sql`` rendered through the dbt project, if one is configured; refused if it calls ref(),
    source() or var() without one (it would reach DuckDB as a syntax error)."""
    if project_dir is not None:
        return render_query(sql, project_dir, db=db)
    call = _DBT_CALL.search(sql)
    if call:
        raise ConfigError(
            f"the query calls {call.group(1)}(), which only a dbt project can resolve. Pass --dbt-project DIR / "
            "EMBEDSQL_DBT_PROJECT (the folder of dbt_project.yml)."
        )
    return sql, []


def profile_database(
    project_dir: Path, target: str | None, *, environ: Mapping[str, str], cwd: Path
) -> tuple[Path, str]:
    """The DuckDB file of the project's profile at ``target`` (default: the profile's own), and a
    label saying where it came from. A relative path is relative to ``cwd``, as dbt opens it."""
    project = _project_file(project_dir)
    profile_name = project.get("profile")
    if not isinstance(profile_name, str) or not profile_name:
        raise ConfigError(
            f"{project_dir / 'dbt_project.yml'} names no profile. Add `profile: <name>` to it, as dbt requires."
        )
    path, profiles = _profiles_file(project_dir, environ=environ, cwd=cwd)
    profile = profiles.get(profile_name)
    if not isinstance(profile, dict):
        known = ", ".join(sorted(str(p) for p in profiles if p != "config")) or "none"
        raise ConfigError(
            f"profile {profile_name!r} (named in dbt_project.yml) is not in {path} (it has: {known}). "
            "Add it, or point DBT_PROFILES_DIR at the folder holding the right profiles.yml."
        )
    outputs = profile.get("outputs") or {}
    chosen = target or environ.get("DBT_TARGET") or _render(profile.get("target", "default"), environ, where=path)
    output = outputs.get(chosen) if isinstance(outputs, dict) else None
    if not isinstance(output, dict):
        known = ", ".join(sorted(outputs)) if isinstance(outputs, dict) else "none"
        raise ConfigError(
            f"target {chosen!r} is not an output of profile {profile_name!r} in {path} (it has: {known}). "
            "Pass --dbt-target NAME / EMBEDSQL_DBT_TARGET with one of those."
        )
    kind = _render(output.get("type", ""), environ, where=path)
    if kind != "duckdb":
        raise ConfigError(
            f"target {chosen!r} of profile {profile_name!r} is of type {kind!r}; embedsql works on DuckDB "
            "databases only. Pick a dbt-duckdb target with --dbt-target."
        )
    where = f"dbt profile {profile_name}, target {chosen}"
    raw = _render(output.get("path", ":memory:"), environ, where=path)
    if raw == ":memory:" or raw.startswith(("md:", "motherduck:")):
        raise ConfigError(
            f"{where} keeps its database at {raw!r}, which another process cannot open. Give the target a "
            "`path:` to a DuckDB file, or pass --db."
        )
    db = user_path(raw, f"the path of {where} in {path}")
    return (db if db.is_absolute() else cwd / db), where


def render_query(sql: str, project_dir: Path, *, db: Path) -> tuple[str, list[Relation]]:
    """``sql`` with its dbt references replaced by the relations the project's manifest names, and
    those relations. Every relation must live in ``db`` (its catalog is the file's stem)."""
    jinja2 = _jinja()
    project = _project_file(project_dir)
    manifest = _manifest(project_dir, project)
    relations: list[Relation] = []

    def ref(*args: str, version: Any = None, v: Any = None) -> str:
        if not 1 <= len(args) <= 2:
            raise QueryError(f"ref() takes a model name, or a package and a model name, got {len(args)} arguments.")
        relation = _find_node(manifest, project_dir, *args, version=version if version is not None else v)
        relations.append(relation)
        return relation.sql

    def source(source_name: str, table_name: str) -> str:
        relation = _find_source(manifest, project_dir, source_name, table_name)
        relations.append(relation)
        return relation.sql

    def var(name: str, default: Any = _MISSING) -> Any:
        values = project.get("vars") or {}
        if name in values:
            return values[name]
        if default is _MISSING:
            raise QueryError(
                f"var({name!r}) is not defined in the vars of {project_dir / 'dbt_project.yml'}; define it there "
                "or give the call a default: var('name', 'default')."
            )
        return default

    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    catalog = db.stem
    globals_ = {"ref": ref, "source": source, "var": var, "target": {"type": "duckdb", "database": catalog}}
    try:
        rendered = environment.from_string(sql, globals=globals_).render()
    except jinja2.UndefinedError as e:
        raise QueryError(
            f"the query uses something dbt-like that embedsql cannot render ({e.message}). Queries may use "
            "ref(), source(), var() and target; write other macros out in SQL."
        ) from e
    except jinja2.TemplateSyntaxError as e:
        raise QueryError(f"the query's Jinja is malformed at line {e.lineno}: {e.message}. Fix the query.") from e
    for relation in relations:
        if not relation.external and relation.database != catalog:
            raise ConfigError(
                f"{{{{ {relation.call} }}}} is built in database {relation.database!r}, but the database is "
                f"{str(db)!r} (catalog {catalog!r}). Drop --db so that embedsql uses the dbt profile's database, "
                "or run `dbt parse` for the target you mean (--dbt-target)."
            )
    return rendered, relations


def check_built(con: Any, relations: list[Relation]) -> None:
    """Refuse relations that the manifest knows but that were never built in the database."""
    for relation in relations:
        if relation.external:
            continue
        found = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = ? "
            "UNION ALL SELECT count(*) FROM duckdb_views() WHERE database_name = ? AND schema_name = ? "
            "AND view_name = ?",
            [relation.database, relation.schema, relation.identifier] * 2,
        ).fetchall()
        if not any(n for (n,) in found):
            fix = (
                f"run `dbt build --select {relation.name}` first"
                if relation.kind != "source"
                else "load that table first (a source is built outside the project)"
            )
            raise QueryError(f"{{{{ {relation.call} }}}} is {relation.sql}, which is not in the database yet: {fix}.")


_MISSING: Any = object()  # var() called without a default


def _jinja() -> Any:
    try:
        import jinja2
    except ImportError as e:  # pragma: no cover - dbt installs Jinja2; the error is for bare installs
        raise ConfigError("rendering a dbt project's Jinja needs Jinja2: pip install 'embedsql[dbt]'.") from e
    return jinja2


def _yaml(path: Path) -> Any:
    try:
        import yaml
    except ImportError as e:  # pragma: no cover - dbt installs PyYAML; the error is for bare installs
        raise ConfigError("reading a dbt project needs PyYAML: pip install 'embedsql[dbt]'.") from e
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}. Check the file's permissions.") from e
    text = decode_text(raw, name=str(path), fix="Save it as UTF-8 (dbt cannot read it either).")
    try:
        return yaml.safe_load(text) or {}
    except yaml.MarkedYAMLError as e:
        # PyYAML's own message spans lines, with the text it stopped at: one line, with where it stopped.
        mark = e.problem_mark or e.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        context = f" ({e.context})" if e.context else ""
        raise ConfigError(
            f"{path} is not valid YAML{at}: {e.problem}{context}. Fix the file (dbt cannot read it either)."
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}. Fix the file (dbt cannot read it either).") from None


def _project_file(project_dir: Path) -> dict[str, Any]:
    path = project_dir / "dbt_project.yml"
    if not path.is_file():
        raise ConfigError(
            f"{str(project_dir)!r} is not a dbt project: it has no dbt_project.yml. "
            "Pass --dbt-project / EMBEDSQL_DBT_PROJECT the folder that holds it."
        )
    data = _yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of settings, as dbt requires.")
    # The values embedsql reads, of the types dbt requires (dbt itself refuses others).
    wrong = [(key, "a text") for key in ("profile", "target-path") if key in data and not isinstance(data[key], str)]
    wrong += (
        [("vars", "a mapping of names to values")]
        if "vars" in data and not isinstance(data["vars"], dict | None)
        else []
    )
    wrong += [
        (key, "a list of folders")
        for key in _PARSED_PATHS
        if key in data and not (isinstance(data[key], list) and all(isinstance(f, str) for f in data[key]))
    ]
    if wrong:
        key, what = wrong[0]
        raise ConfigError(f"{key} in {path} must be {what}, as dbt requires; it is {data[key]!r}. Fix the file.")
    return data


def _profiles_file(project_dir: Path, *, environ: Mapping[str, str], cwd: Path) -> tuple[Path, dict[str, Any]]:
    """profiles.yml where dbt looks for it: DBT_PROFILES_DIR, the project, the current folder, ~/.dbt."""
    folders = [user_path(environ["DBT_PROFILES_DIR"], "DBT_PROFILES_DIR")] if environ.get("DBT_PROFILES_DIR") else []
    home = environ.get("HOME")
    folders += [project_dir, cwd] + ([Path(home) / ".dbt"] if home else [])
    for folder in folders:
        path = folder / "profiles.yml"
        if path.is_file():
            data = _yaml(path)
            if not isinstance(data, dict):
                raise ConfigError(f"{path} must be a mapping of profiles, as dbt requires.")
            return path, data
    unique: dict[Path, Path] = {}
    for folder in folders:
        unique.setdefault(folder.resolve(), folder)
    searched = ", ".join(str(f) for f in unique.values())
    raise ConfigError(
        f"no profiles.yml for dbt project {str(project_dir)!r} (looked in {searched}). "
        "Set DBT_PROFILES_DIR, or pass --db with the DuckDB file the project builds into."
    )


def _render(value: Any, environ: Mapping[str, str], *, where: Path) -> str:
    """A profile value, with ``{{ env_var('X', 'default') }}`` rendered as dbt renders it."""
    text = str(value)
    if not uses_jinja(text):
        return text
    jinja2 = _jinja()

    def env_var(name: str, default: str | None = None) -> str:
        if name in environ:
            return environ[name]
        if default is None:
            raise ConfigError(
                f"{where} uses env_var({name!r}), which is not set and has no default. Set {name}, as dbt needs too."
            )
        return default

    try:
        return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text).render(env_var=env_var)
    except jinja2.TemplateError as e:
        raise ConfigError(f"cannot render {text!r} in {where}: {e}. embedsql renders env_var() only.") from e


def _manifest(project_dir: Path, project: dict[str, Any]) -> dict[str, Any]:
    """The manifest of the last parse, refused when a file the parse reads changed since."""
    target_path = project_dir / str(project.get("target-path", "target"))
    path = target_path / "manifest.json"
    if not path.is_file():
        raise ConfigError(
            f"dbt project {str(project_dir)!r} has no manifest ({path}): embedsql resolves ref() and source() "
            f"through it. Run `dbt parse` in {project_dir} (dbt build writes it too), then run again."
        )
    parsed_at = path.stat().st_mtime
    newer = _newest_source(project_dir, project)
    if newer is not None and newer[0] > parsed_at:
        raise ConfigError(
            f"the dbt manifest {path} is stale: {newer[1]} changed after the last parse. Run `dbt parse` in "
            f"{project_dir}, then run again."
        )
    try:
        manifest = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"cannot read the dbt manifest {path}: {e} (cut short, or not written by dbt?). Run `dbt parse` in "
            f"{project_dir} to write it again."
        ) from e
    wrong = _manifest_shape(manifest)
    if wrong:
        raise ConfigError(
            f"the dbt manifest {path} is not as dbt writes it: {wrong}. Run `dbt parse` in {project_dir} to write "
            "it again."
        )
    adapter = manifest["metadata"].get("adapter_type")
    if adapter != "duckdb":
        raise ConfigError(
            f"the dbt manifest {path} was parsed for a {adapter!r} target; embedsql works on DuckDB. "
            "Run `dbt parse --target <a dbt-duckdb target>`."
        )
    return manifest


def _manifest_shape(manifest: Any) -> str | None:
    """What is wrong with the shape of ``manifest`` for what embedsql reads of it, or None: the one check,
    so that the look-ups below can trust every field they read."""
    if not isinstance(manifest, dict):
        return f"it holds {_kind(manifest)}, not an object"
    for key in ("metadata", "nodes", "sources"):
        if not isinstance(manifest.get(key), dict):
            return f"{key} is {_kind(manifest.get(key))}, not an object" if key in manifest else f"it has no {key}"
    disabled = manifest.get("disabled") or {}
    if not isinstance(disabled, dict) or not all(
        isinstance(group, list) and all(isinstance(n, dict) for n in group) for group in disabled.values()
    ):
        return "disabled is not an object of lists of nodes"
    relations = [
        (k, n)
        for k, n in manifest["nodes"].items()
        if not isinstance(n, dict) or n.get("resource_type") in _RELATION_TYPES
    ]
    for key, node in relations + list(manifest["sources"].items()):
        if not isinstance(node, dict):
            return f"{key} is {_kind(node)}, not an object"
        # relation_name is null for an ephemeral model, but always there.
        missing = [field for field in ("name", "relation_name", "database", "schema") if field not in node]
        if missing:
            return f"{key} has no {missing[0]}"
        texts = ["name", "database", "schema", "package_name", "source_name", "alias", "identifier", "relation_name"]
        wrong = [field for field in texts if node.get(field) is not None and not isinstance(node[field], str)]
        if wrong:
            return f"{wrong[0]} of {key} is {_kind(node[wrong[0]])}, not a text"
        config = node.get("config")
        metas = [config, node.get("meta"), config.get("meta") if isinstance(config, dict) else None]
        if not all(m is None or isinstance(m, dict) for m in metas):
            return f"config or meta of {key} is not an object"
    return None


def _kind(value: Any) -> str:
    """``value``'s JSON type, for messages: "a list", "a text", "null"."""
    if value is None:
        return "null"
    names = {dict: "an object", list: "a list", str: "a text", bool: "a boolean", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _newest_source(project_dir: Path, project: dict[str, Any]) -> tuple[float, Path] | None:
    paths = [project_dir / name for name in _PARSED_FILES]
    for key, default in _PARSED_PATHS.items():
        for folder in project.get(key, default) or []:
            root = project_dir / str(folder)
            if root.is_dir():
                for dirpath, _, files in os.walk(root):
                    paths += [Path(dirpath) / f for f in files]
    times = [(p.stat().st_mtime, p) for p in paths if p.is_file()]
    return max(times) if times else None


def _find_node(manifest: dict[str, Any], project_dir: Path, *args: str, version: Any) -> Relation:
    package, name = args if len(args) == 2 else (None, args[0])
    call = "ref(" + ", ".join(repr(a) for a in args) + (f", v={version!r}" if version is not None else "") + ")"
    nodes = [
        node
        for node in manifest.get("nodes", {}).values()
        if node.get("resource_type") in _RELATION_TYPES
        and node.get("name") == name
        and (package is None or node.get("package_name") == package)
    ]
    if version is not None:
        nodes = [n for n in nodes if str(n.get("version")) == str(version)]
    elif len(nodes) > 1 and all(n.get("version") is not None for n in nodes):
        nodes = [n for n in nodes if str(n.get("version")) == str(n.get("latest_version"))]
    if not nodes:
        disabled = [n for group in manifest.get("disabled", {}).values() for n in group if n.get("name") == name]
        if disabled:
            raise QueryError(
                f"{{{{ {call} }}}} names {disabled[0].get('resource_type')} {name!r}, which is disabled in dbt "
                f"project {str(project_dir)!r}. Enable it (config enabled: true) and build it."
            )
        known = [n.get("name") for n in manifest.get("nodes", {}).values() if n.get("resource_type") in _RELATION_TYPES]
        raise QueryError(
            f"{{{{ {call} }}}}: dbt project {str(project_dir)!r} has no model, seed or snapshot named {name!r}"
            f"{_did_you_mean(name, known)}. If you just added it, run `dbt parse`."
        )
    if len(nodes) > 1:
        packages = ", ".join(sorted(str(n.get("package_name")) for n in nodes))
        raise QueryError(
            f"{{{{ {call} }}}} is ambiguous: packages {packages} each have one. Name the package: "
            f"ref('<package>', {name!r})."
        )
    return _relation(nodes[0], call, nodes[0]["resource_type"], name)


def _find_source(manifest: dict[str, Any], project_dir: Path, source_name: str, table_name: str) -> Relation:
    call = f"source({source_name!r}, {table_name!r})"
    sources = list(manifest.get("sources", {}).values())
    for node in sources:
        if node.get("source_name") == source_name and node.get("name") == table_name:
            return _relation(node, call, "source", f"{source_name}.{table_name}")
    known = [f"{s.get('source_name')}.{s.get('name')}" for s in sources]
    raise QueryError(
        f"{{{{ {call} }}}}: dbt project {str(project_dir)!r} declares no source table {source_name}.{table_name}"
        f"{_did_you_mean(f'{source_name}.{table_name}', known)}. Declare it in a sources .yml file and run "
        "`dbt parse`."
    )


def _relation(node: dict[str, Any], call: str, kind: str, name: str) -> Relation:
    sql = node.get("relation_name")
    if not sql:
        raise QueryError(
            f"{{{{ {call} }}}} is an ephemeral {kind}: dbt builds no table or view for it. Materialise it as a view "
            "or table (config materialized='view') and build it."
        )
    return Relation(
        call=call,
        kind=kind,
        name=name,
        sql=sql,
        database=str(node.get("database")),
        schema=str(node.get("schema")),
        identifier=str(node.get("alias") or node.get("identifier") or node.get("name")),
        external="external_location" in {**(node.get("config") or {}).get("meta", {}), **(node.get("meta") or {})},
    )


def _did_you_mean(name: str, known: list[Any]) -> str:
    close = difflib.get_close_matches(name, [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
