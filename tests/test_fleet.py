"""A fleet on one database: two intake processes and three workers, one killed mid-run, real HTTP throughout.

Run on every store that is meant for several processes (SQLite on one host, PostgreSQL across hosts):

- intake: two ``waitress`` processes serving ``connector.web:create_app`` (the WSGI app a fleet runs
  behind its load balancer); the integration is uploaded through the admin API of one of them;
- delivery: three ``connector worker`` processes, pointed at ``connector sandbox`` with Marketo's
  limits on (100 calls / 20 s, 10 concurrent) and some latency, so batches really overlap in time;
- traffic: a few thousand consents for a few hundred leads, posted in shuffled order (so older
  consents often arrive after newer ones) with duplicates, spread over both intakes;
- one worker is SIGKILLed while it holds leases and started again: a restarted worker frees the
  leases of the dead processes of its host at once (on another host they expire after the lease).

It then shows: every 202-acknowledged event ends delivered or skipped (none lost, none stuck, none
dead); Marketo answered no 606 or 615; the sandbox never saw two Sync Leads calls in flight for one
lead; every lead's final state in Marketo equals applying its consents in time order; and the
status counts agree whether read by ``connector status`` or by either intake's ``/status``.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e_helpers import start_intake
from tests.processes import Processes, sandbox_config, sandbox_get, sandbox_post, wait_until

pytestmark = pytest.mark.slow

LEADS = 300
EVENTS_PER_LEAD = 8
DUPLICATE_SHARE = 0.1
ADMIN_TOKEN = "fleet-admin-token-0123456789abcdef"
HEADER, SECRET = "X-Webhook-Secret", "fleet-webhook-secret-0123456789"
BASE = datetime(2026, 3, 1, tzinfo=UTC).timestamp()


def _email(lead: int) -> str:
    return f"fleet{lead:04d}@example.com"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _consent(lead: int, at: float, newsletter: bool, geolocation: bool, rng: random.Random) -> dict[str, Any]:
    return {
        "type": "event.created",
        "parameters": {
            "entity": {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "created_at": _iso(at),
                "updated_at": _iso(at),
                "status": "confirmed",
                "regulation": "gdpr",
                "user": {"id": f"didomi-{lead}", "organization_user_id": _email(lead)},
                "consents": {
                    "purposes": [
                        {"id": "newsletter", "enabled": newsletter},
                        {"id": "geolocation_data", "enabled": geolocation},
                    ]
                },
            }
        },
    }


@pytest.fixture(params=["sqlite", "postgres"])
def fleet_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for the fleet: SQLite (processes of one host), PostgreSQL (several hosts)."""
    if request.param == "postgres":
        yield str(request.getfixturevalue("pg_url"))
    else:
        yield f"sqlite:///{tmp_path / 'fleet.db'}"


def test_a_fleet_delivers_every_accepted_consent_in_time_order(tmp_path: Path, fleet_db_url: str) -> None:
    rng = random.Random(20261202)
    env = {
        "CONNECTOR_DATABASE_URL": fleet_db_url,
        "CONNECTOR_ADMIN_TOKEN": ADMIN_TOKEN,
        "CONNECTOR_LEASE_SECONDS": "60",
        "CONNECTOR_LINGER_MS": "400",
        "CONNECTOR_RETRY_DELAYS": "1,1,2,2,3",
    }
    with Processes(tmp_path, env=env, db_url=fleet_db_url) as procs:
        sandbox = procs.sandbox(limits=True)
        sandbox_post(sandbox.url, "leads", [{"email": _email(i), "firstName": f"F{i}"} for i in range(LEADS)])
        sandbox_post(sandbox.url, "faults", {"latency_ms": 40})

        intakes = [start_intake(procs, env), start_intake(procs, env)]
        document = sandbox_config(sandbox.url, webhook={"header": {"name": HEADER, "secret": SECRET}})
        answer = requests.put(
            f"{intakes[0].url}/integrations/fleet",
            json=document,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        workers = [procs.worker(db_url=fleet_db_url) for _ in range(3)]

        # Every lead gets EVENTS_PER_LEAD consents at distinct times; the last in time is what must win.
        bodies: list[bytes] = []
        latest: dict[int, tuple[float, bool, bool]] = {}
        for lead in range(LEADS):
            for n in range(EVENTS_PER_LEAD):
                at = BASE + lead + n * 3600 + rng.random()
                newsletter, geolocation = rng.random() < 0.5, rng.random() < 0.5
                bodies.append(json.dumps(_consent(lead, at, newsletter, geolocation, rng)).encode())
                if lead not in latest or at > latest[lead][0]:
                    latest[lead] = (at, newsletter, geolocation)
        duplicates = int(len(bodies) * DUPLICATE_SHARE)
        bodies += rng.sample(bodies, duplicates)
        rng.shuffle(bodies)

        sessions = [requests.Session() for _ in intakes]

        def post(index: int) -> tuple[int, int, str]:
            target = index % len(intakes)
            response = sessions[target].post(
                f"{intakes[target].url}/webhooks/fleet",
                data=bodies[index],
                headers={"Content-Type": "application/json", HEADER: SECRET},
                timeout=60,
            )
            payload = response.json()
            return response.status_code, int(payload.get("event_id", -1)), str(payload.get("status"))

        third = len(bodies) // 3
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(post, range(third)))
            # Kill one worker while it holds leases: its events must be reclaimed by the others.
            wait_until(lambda: sandbox_get(sandbox.url, "stats")["accepted"] > 2, timeout=60, what="first deliveries")
            workers[0].kill()
            answers += list(pool.map(post, range(third, len(bodies) // 2)))
            workers.append(procs.worker(db_url=fleet_db_url))  # its replacement frees the dead one's leases
            answers += list(pool.map(post, range(len(bodies) // 2, len(bodies))))

        assert {status for status, _id, _s in answers} == {202}
        accepted = {event_id for _status, event_id, _s in answers}
        assert sum(1 for _st, _id, s in answers if s == "duplicate") == duplicates
        assert len(accepted) == LEADS * EVENTS_PER_LEAD

        def settled() -> dict[str, Any] | None:
            doc = json.loads(procs.cli("status", "--json", db=True, check=True).stdout)
            counts = doc["integrations"]["fleet"]
            return doc if counts["pending"] == 0 else None

        status = wait_until(settled, timeout=240, interval=1.0, what="every event finished")
        counts = status["integrations"]["fleet"]
        assert counts["dead"] == 0, status
        # Every acknowledged event (distinct ids, one per consent) is in a final state: none lost, none stuck.
        assert counts["delivered"] + counts["skipped"] == len(accepted), status
        assert counts["ignored"] == 0, status

        stats = sandbox_get(sandbox.url, "stats")
        assert stats["errors"].get("606", 0) == 0 and stats["errors"].get("615", 0) == 0, stats["errors"]
        assert stats["lead_overlaps"] == 0, stats["lead_overlap_examples"]

        leads = {lead["email"]: lead for lead in sandbox_get(sandbox.url, "leads")}
        wrong = []
        for lead, (_at, newsletter, geolocation) in latest.items():
            record = leads[_email(lead)]
            if (record.get("consentNewsletter"), record.get("consentGeolocation")) != (newsletter, geolocation):
                wrong.append((_email(lead), record.get("consentNewsletter"), record.get("consentGeolocation")))
        assert wrong == [], f"{len(wrong)} leads do not hold their newest consent, e.g. {wrong[:5]}"

        # The same counts from any process: the CLI and both intakes' admin /status.
        for intake in intakes:
            remote = requests.get(
                f"{intake.url}/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
            ).json()
            assert remote["integrations"]["fleet"] == counts
        for worker in workers[1:]:
            assert worker.alive, worker.output()
