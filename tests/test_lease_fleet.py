"""Two ``connector worker`` processes with a lease shorter than their waits for budget, on SQLite and PostgreSQL.

A 2 s lease, a budget of 2 calls per 1.5 s for the instance, batches of 4 and a sandbox answering
after 300 ms: eight senders queue for budget far longer than a lease, while consents for the same
leads keep arriving over real HTTP, out of order. Renewal keeps every waiting batch's leases and the
fence drops any event whose lease was lost, so no lead ever has two calls in flight (the sandbox's
``lead_overlaps``) and every lead ends holding its newest consent.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from connector.service import build
from connector.settings import Settings
from tests.e2e_helpers import start_intake
from tests.processes import Processes, consent_event, sandbox_config, sandbox_get, sandbox_post, wait_until

pytestmark = pytest.mark.slow

LEADS = 40
PER_LEAD = 4


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        yield str(request.getfixturevalue("pg_url"))
    else:
        yield f"sqlite:///{tmp_path / 'leases.db'}"


def test_workers_waiting_longer_than_their_lease_never_send_an_older_consent(db_url: str, tmp_path: Path) -> None:
    rng = random.Random(3)
    waves: list[list[tuple[str, str, bool, str]]] = [[] for _ in range(PER_LEAD)]
    latest: dict[str, bool] = {}
    for lead in range(LEADS):
        email = f"lease{lead}@example.com"
        for n in range(PER_LEAD):
            newsletter = rng.random() < 0.5
            # each wave carries one consent per lead, given at a random one of the lead's four times
            waves[n].append((email, f"l{lead}-{n}", newsletter, f"2026-01-01T00:{n:02d}:00.000Z"))
            latest[email] = newsletter
    for wave in waves:
        rng.shuffle(wave)
    rng.shuffle(waves)  # later waves often carry older consents

    env = {
        "CONNECTOR_DATABASE_URL": db_url,
        "CONNECTOR_LEASE_SECONDS": "2",
        "CONNECTOR_RATE_LIMIT": "2",
        "CONNECTOR_RATE_WINDOW": "1",
        "CONNECTOR_BATCH_SIZE": "4",
        "CONNECTOR_LINGER_MS": "100",
        "CONNECTOR_RETRY_DELAYS": "1,1,2,2,3",
    }
    with Processes(tmp_path, env=env, db_url=db_url) as procs:
        sandbox = procs.sandbox(limits=True)
        sandbox_post(sandbox.url, "faults", {"latency_ms": 300})
        service = build(Settings(database_url=db_url))
        service.registry.put("acme", sandbox_config(sandbox.url, upsert=True), "file")
        service.close()
        intake = start_intake(procs, env)
        workers = [procs.worker() for _ in range(2)]
        with requests.Session() as session:
            for wave in waves:
                for email, entity, newsletter, at in wave:
                    body = consent_event(email, entity, newsletter=newsletter, updated_at=at)
                    response = session.post(f"{intake.url}/webhooks/acme", json=body, timeout=30)
                    assert response.status_code == 202, response.text
                time.sleep(0.5)  # let the workers queue up for budget before the next wave

        def settled() -> dict[str, int] | None:
            status = procs.cli("status", "--json", db=True, check=True).stdout
            found: dict[str, int] = json.loads(status)["integrations"]["acme"]
            return found if found["pending"] == 0 else None

        counts = wait_until(settled, timeout=150, interval=1.0, what="every event final")
        assert counts["dead"] == 0 and counts["delivered"] + counts["skipped"] == LEADS * PER_LEAD, counts
        stats = sandbox_get(sandbox.url, "stats")
        assert stats["lead_overlaps"] == 0, stats["lead_overlap_examples"]
        assert not {"606", "615"} & set(stats.get("errors", {})), stats["errors"]
        leads = {lead["email"]: lead for lead in sandbox_get(sandbox.url, "leads")}
        wrong = {e: (v, leads.get(e, {}).get("consentNewsletter")) for e, v in latest.items()}
        wrong = {e: pair for e, pair in wrong.items() if pair[0] != pair[1]}
        assert not wrong, f"{len(wrong)} lead(s) not holding their newest consent: {list(wrong.items())[:5]}"
        assert all(w.alive for w in workers)
