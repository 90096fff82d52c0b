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
