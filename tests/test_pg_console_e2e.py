"""End to end on PostgreSQL: ``connector serve --db postgresql://...`` with an admin token serves the console.

Real processes and real HTTP (``connector sandbox`` as Marketo, ``connector serve`` on the test's
PostgreSQL database): an event is delivered, then a browser-like session signs in and reads the
overview and the events search, both answered by the console's queries on PostgreSQL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e_helpers import Outbox
from tests.processes import Processes, consent_event, sandbox_post

pytestmark = pytest.mark.slow

ADMIN_TOKEN = "pg-console-admin-token-7c1e"
EMAIL = "pg.console@example.com"
CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


@pytest.fixture
def procs(tmp_path: Path, pg_url: str) -> Iterator[Processes]:
    env = {"CONNECTOR_ADMIN_TOKEN": ADMIN_TOKEN, "CONNECTOR_LINGER_MS": "20"}
    with Processes(tmp_path, env=env, db_url=pg_url) as started:
        yield started


def csrf(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def test_the_console_overview_and_events_search_work_on_postgresql(procs: Processes) -> None:
    assert procs.db_url.startswith("postgresql://")
    sandbox = procs.sandbox()
    sandbox_post(sandbox.url, "leads", [{"id": 1, "email": EMAIL}])
    config = json.loads((Path(__file__).parent.parent / "sample_configs" / "email.json").read_text())
    config["authentication"]["instance"] = sandbox.url
    server = procs.serve(configs=[procs.write_config("email", config)])
    answer = requests.post(f"{server.url}/webhooks/email", json=consent_event(EMAIL, "e-pg-console"), timeout=10)
    assert answer.status_code == 202, answer.text
    (delivered,) = Outbox(procs.db_url).wait_finished([answer.json()["event_id"]], 30, states=("delivered",))

    browser = requests.Session()
    assert browser.get(f"{server.url}/console/", timeout=10, allow_redirects=False).status_code in (302, 303)
    page = browser.get(f"{server.url}/console/sign-in", timeout=10)
    signed_in = browser.post(
        f"{server.url}/console/sign-in",
        data={"csrf_token": csrf(page.text), "token": ADMIN_TOKEN},
        timeout=10,
        allow_redirects=False,
    )
    assert signed_in.status_code == 303, signed_in.text

    overview = browser.get(f"{server.url}/console/", timeout=10)
    assert overview.status_code == 200, overview.text[:2000]
    assert "email" in overview.text and "<svg" in overview.text  # the integration's row and the activity chart
    found = browser.get(f"{server.url}/console/events", params={"lookup": EMAIL.upper()}, timeout=10)
    assert found.status_code == 200, found.text[:2000]
    assert f"/console/events/{delivered.id}" in found.text  # found by email in any case, on PostgreSQL
    none = browser.get(f"{server.url}/console/events", params={"lookup": "nobody@example.com"}, timeout=10)
    assert none.status_code == 200 and f"/console/events/{delivered.id}" not in none.text
    assert ADMIN_TOKEN not in overview.text + found.text
