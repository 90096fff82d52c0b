"""The benchmark's smallest run still works end to end (sandbox limits on) and writes its JSON figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_smoke_writes_figures_without_rate_limit_errors(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())
    assert {"delivery", "intake", "intake_alone", "e2e", "naive", "comparison", "command"} <= set(results)

    delivery = results["delivery"]
    assert delivery["drained"] and delivery["states"].get("pending", 0) == 0
    assert delivery["lead_updates"] > 0 and delivery["marketo_calls"] > 0
    assert delivery["calls_per_event"] <= 1 / 250
    for phase in ("delivery", "intake", "e2e", "naive"):
        assert results[phase]["errors_606"] == 0, phase
        assert results[phase]["errors_615"] == 0, phase
    for phase in ("intake", "intake_alone"):
        intake = results[phase]
        assert intake["accepted"] == intake["events"] == intake["stored"]
        assert intake["events_per_s"] > 0 and intake["p99_ms"] is not None
    assert results["e2e"]["delivered"] > 0 and results["e2e"]["p95_ms"] is not None
    assert results["naive"]["events_sent"] > 0 and results["comparison"]["speedup"] > 1
    assert "delivery:" in run.stdout and "naive" in run.stdout
