"""End to end through a Marketo outage: ``connector serve`` against ``connector sandbox`` refusing connections.

Events accepted during the outage are delivered after it with no dead letter left, and
``connector status --json`` says the instance is unreachable (since when, next probe) while it lasts;
on SQLite and on PostgreSQL (the circuits are kept in the connector's database).
Short retry delays (1.5 s in all) make the events' own retries run out well inside the outage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKENDS
from tests.e2e_helpers import Outbox
from tests.processes import Processes, consent_event, sandbox_get, sandbox_post, wait_until

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 8
ENV = {
    "CONNECTOR_LINGER_MS": "20",
    "CONNECTOR_RETRY_DELAYS": "0.3,0.3,0.3,0.3,0.3",
    "CONNECTOR_RATE_BACKOFF": "0.5",
    "CONNECTOR_CIRCUIT_FIRST_PROBE": "0.5",
    "CONNECTOR_CIRCUIT_MAX_PROBE": "2",
}
PEOPLE = [{"id": i, "email": f"outage{i}@example.com"} for i in range(1, 7)]


@pytest.fixture(params=BACKENDS)
def procs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Processes]:
    db_url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    with Processes(tmp_path, env=ENV, db_url=db_url) as started:
        yield started


def status(procs: Processes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(procs.cli("status", "--json", db=True, check=True).stdout)
    return doc


@pytest.mark.parametrize(
    "failures",
    [
        "3",  # the circuit opens before any event's retries run out: they are held
        "8",  # the first event dies of the outage before it opens: replayed when it closes
    ],
)
def test_events_accepted_during_an_outage_are_delivered_after_it_with_no_dead_letter(
    procs: Processes, failures: str
) -> None:
    sandbox = procs.sandbox()
    sandbox_post(sandbox.url, "leads", PEOPLE)
    config = json.loads((Path(__file__).parent.parent / "sample_configs" / "email.json").read_text())
    config["authentication"]["instance"] = sandbox.url
    server = procs.serve(configs=[procs.write_config("email", config)], env={"CONNECTOR_CIRCUIT_FAILURES": failures})
    outbox = Outbox(procs.db_url)
    started = time.time()
    sandbox_post(sandbox.url, "faults", {"outage": {"mode": "refuse", "seconds": OUTAGE_SECONDS}})
    ids = []
    for n, person in enumerate(PEOPLE):  # accepted during the outage, spread over its first seconds
        answer = procs_post(server.url, consent_event(person["email"], f"e-outage-{failures}-{n}", newsletter=False))
        ids.append(answer)
        if n == 0 and failures == "8":  # its six attempts fail before the circuit opens: a dead letter
            assert outbox.wait_finished(ids, 10, states=("dead",))[0].attempt_count == 5
        time.sleep(0.5)

    down = wait_until(lambda: status(procs).get("unreachable_instances"), 10, 0.2, "instance shown unreachable")
    assert list(down) == [sandbox.url]
    assert started - 1 <= down[sandbox.url]["since"] <= time.time()
    assert down[sandbox.url]["next_probe_at"] >= down[sandbox.url]["since"]
    assert down[sandbox.url]["last_error"] == "network"

    records = outbox.wait_finished(ids, OUTAGE_SECONDS + 30, states=("delivered",))
    assert all(r.finished_at >= started + OUTAGE_SECONDS - 0.5 for r in records)  # after the outage
    wait_until(lambda: "unreachable_instances" not in status(procs), 10, 0.2, "circuit closed in status")
    assert status(procs)["integrations"]["email"]["dead"] == 0
    assert procs.cli("deadletters", "list", db=True, check=True).stdout.strip() == "no dead letters"
    leads = {lead["email"]: lead for lead in sandbox_get(sandbox.url, "leads") if lead.get("email")}
    assert all(leads[p["email"]]["consentNewsletter"] is False for p in PEOPLE)
    log = server.output()
    assert "unreachable since" in log and "reachable again" in log
    if failures == "8":
        assert "replayed" in [a.outcome for a in records[0].attempts]  # it died, then came back
    else:
        assert all(r.attempt_count <= 3 for r in records)  # held, not charged


def procs_post(server_url: str, body: Any) -> int:
    import requests

    response = requests.post(f"{server_url}/webhooks/email", json=body, timeout=10)
    assert response.status_code == 202, response.text
    event_id: int = response.json()["event_id"]
    return event_id
