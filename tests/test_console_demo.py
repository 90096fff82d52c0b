"""``connector demo --keep``: the console stays usable after the scenario, until Ctrl-C (a real subprocess)."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.console_helpers import CSRF
from tests.processes import Processes, connector_command, wait_until

CONSOLE = re.compile(r"console\s+(http://\S+)/console/\s+admin token (\S+)")


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path) as started:
        yield started


@pytest.mark.slow
def test_demo_keep_leaves_the_console_usable_until_ctrl_c(procs: Processes) -> None:
    demo = procs.launch(
        "demo",
        connector_command("demo", "--keep"),
        ready_output=re.compile(r"still running: open http://\S+/console/"),
        timeout=90,
    )
    found = CONSOLE.search(demo.output())
    assert found, demo.output()
    base, token = found.group(1), found.group(2)
    assert "all 12 outcomes as expected" in demo.output()
    with requests.Session() as browser:
        page = browser.get(f"{base}/console/sign-in", timeout=10)
        csrf = CSRF.search(page.text)
        assert csrf
        signed_in = browser.post(
            f"{base}/console/sign-in", data={"csrf_token": csrf.group(1), "token": token}, timeout=10
        )
        assert signed_in.status_code == 200 and "<h1>Overview</h1>" in signed_in.text
        for integration in ("email", "upsert", "leadid"):
            assert f'data-integration="{integration}"' in signed_in.text
        events = browser.get(f"{base}/console/events?lookup=jane.doe@example.com", timeout=10).text
        assert "updated" in events
    demo.popen.send_signal(signal.SIGINT)
    wait_until(lambda: not demo.alive, 20, what="demo exit on Ctrl-C")
    assert demo.returncode == 0, demo.output()
