"""Issue 9.3: the config code is split by job into small modules, behind the one ``connector.config`` API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from connector import config

PACKAGE = Path(__file__).resolve().parent.parent / "connector"
MODULES = ["config", "config_files", "config_schema", "config_rules", "config_redact"]


@pytest.mark.parametrize("module", MODULES)
def test_each_config_module_is_under_400_lines(module: str) -> None:
    count = len((PACKAGE / f"{module}.py").read_text(encoding="utf-8").splitlines())
    assert count < 400, f"connector/{module}.py has {count} lines"


def test_every_config_name_used_elsewhere_is_still_there() -> None:
    """Each ``config.<name>`` the code, the tests and the benchmark use (``from connector import config``)."""
    used: set[str] = set()
    for top in ("connector", "tests", "bench"):
        for path in (PACKAGE.parent / top).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            imports_config = any(
                isinstance(n, ast.ImportFrom) and n.module == "connector" and any(a.name == "config" for a in n.names)
                for n in ast.walk(tree)
            )
            if imports_config:
                used |= {
                    n.attr
                    for n in ast.walk(tree)
                    if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "config"
                }
    assert {"parse", "load_file", "validate_files", "redact", "read_json_file", "check"} <= used  # the scan works
    missing = sorted(name for name in used if not hasattr(config, name))
    assert not missing, missing
    assert set(config.__all__) <= set(dir(config))
    assert config.SCHEMA_PATH.is_file()


@pytest.mark.parametrize("module", ["config_schema", "config_rules", "config_redact"])
def test_the_checks_import_no_os_network_or_database_module(module: str) -> None:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"os", "pathlib", "socket", "requests", "sqlite3", "flask"}, imported
