"""Lint and type checks run with the suite, so CI enforces them; plus the package's layering rules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import connector

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "connector"


@pytest.mark.slow
def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "connector", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "connector"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def imports_of(module: Path) -> set[str]:
    tree = ast.parse(module.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def transitive_imports(name: str, seen: set[str] | None = None) -> set[str]:
    """Every connector module *name* imports, directly or not (by reading the source, not importing)."""
    seen = set() if seen is None else seen
    path = PACKAGE / (name.removeprefix("connector.").replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE / name.removeprefix("connector.").replace(".", "/") / "__init__.py"
    if name in seen or not path.exists():
        return seen
    seen.add(name)
    for imported in imports_of(path):
        if imported.startswith("connector.") or imported == "connector":
            transitive_imports(imported, seen)
    return seen


def test_web_never_reaches_the_marketo_client() -> None:
    assert "connector.marketo" not in transitive_imports("connector.web")


def _third_party(module: str) -> set[str]:
    path = PACKAGE / (module.removeprefix("connector.").replace(".", "/") + ".py")
    return {i.split(".")[0] for i in imports_of(path)} if path.exists() else set()


def test_worker_never_reaches_flask() -> None:
    users = [m for m in transitive_imports("connector.worker") if _third_party(m) & {"flask", "werkzeug"}]
    assert users == []


@pytest.mark.parametrize("module", ["events", "mapping", "batching", "intake", "models", "errors"])
def test_the_core_is_pure(module: str) -> None:
    banned = {"flask", "requests", "sqlite3", "socket", "time", "os", "werkzeug"}
    used = {i.split(".")[0] for i in imports_of(PACKAGE / f"{module}.py")}
    assert not used & banned, f"connector.{module} imports {used & banned}"


def test_public_surface_is_pinned() -> None:
    assert sorted(connector.__all__) == ["ConnectorError", "__version__"]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph(*, lazy: bool) -> dict[str, set[str]]:
    """connector module -> the connector modules it imports (at import time, or also inside functions)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        nodes = ast.walk(tree) if lazy else iter(tree.body)
        targets: set[str] = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets.add(node.module)
                targets.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, path)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_no_import_cycles_among_connector_modules() -> None:
    assert cycles(import_graph(lazy=False)) == []


def test_the_storage_layer_is_in_no_cycle_even_through_imports_inside_functions() -> None:
    storage = {
        "connector.outbox",
        "connector.stores",
        "connector.sqlite_store",
        "connector.migrations",
        "connector.rows",
    }
    involved = [c for c in cycles(import_graph(lazy=True)) if set(c) & storage or any(".sqlite" in m for m in c)]
    assert involved == []


def test_the_storage_interface_imports_no_implementation() -> None:
    assert transitive_imports("connector.outbox") == {"connector.outbox"}
    assert not _third_party("connector.outbox") & {"sqlite3", "psycopg", "psycopg_pool"}
    assert transitive_imports("connector.rows") == {"connector.rows", "connector.outbox"}  # shared, driver-free
    assert not _third_party("connector.rows") & {"sqlite3", "psycopg", "psycopg_pool"}


@pytest.mark.parametrize("module", ["worker", "governor", "registry", "metrics", "audit", "intake", "batching"])
def test_callers_type_against_a_narrow_storage_protocol_not_an_implementation(module: str) -> None:
    imported = imports_of(PACKAGE / f"{module}.py")
    assert "connector.outbox.Store" not in imported
    assert not {i for i in imported if i.startswith(("connector.sqlite", "connector.stores", "connector.pg_store"))}
    assert "sqlite3" not in {i.split(".")[0] for i in imported}
