"""Issue 9.2: the package works when installed as a wheel.

The schema and the demo's samples are package data (``connector/data``) read with importlib.resources;
the top-level ``schemas/`` and ``sample_configs/`` are the documented copies and must stay identical.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import connector
from connector import config, data, demo

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(connector.__file__).resolve().parent


def _tree(top: Path) -> dict[str, bytes]:
    return {str(p.relative_to(top)): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()}


def test_schema_and_samples_are_read_from_inside_the_package() -> None:
    assert Path(str(config.SCHEMA_PATH)).resolve().is_relative_to(PACKAGE)
    assert Path(str(demo.SAMPLES)).resolve().is_relative_to(PACKAGE)
    assert config.check({}) != []  # the packaged schema loads and validates


def test_packaged_schema_is_identical_to_schemas_dir() -> None:
    packaged = data.SCHEMA.read_bytes()
    assert packaged == (ROOT / "schemas" / "integration.schema.json").read_bytes(), (
        "copy schemas/integration.schema.json to connector/data/ (or back): the two must be identical"
    )


def test_packaged_samples_are_identical_to_sample_configs_dir() -> None:
    packaged = _tree(Path(str(data.SAMPLES)))
    documented = _tree(ROOT / "sample_configs")
    assert sorted(packaged) == sorted(documented), "connector/data/sample_configs/ must hold the same files"
    changed = [name for name in documented if packaged[name] != documented[name]]
    assert not changed, f"connector/data/sample_configs/ differs from sample_configs/ in {changed}"


def test_every_file_the_demo_reads_is_packaged() -> None:
    names = {f"{s.integration}.json" for s in demo.SCENARIO} | {f"payloads/{s.payload}" for s in demo.SCENARIO}
    for name in sorted(names | {"sandbox/leads.json"}):
        assert (data.SAMPLES / name).is_file(), name


@pytest.mark.slow
def test_wheel_installed_outside_the_checkout_validates_and_runs_the_demo() -> None:
    """The same check CI runs (.ci/wheel-check): build, install in a fresh venv in a temp dir, use it there."""
    result = subprocess.run(
        ["bash", str(ROOT / ".ci" / "wheel-check")],
        env={**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "email.json: OK (" in result.stdout
    assert f"all {len(demo.SCENARIO)} outcomes as expected" in result.stdout
    assert "wheel check: OK" in result.stdout
