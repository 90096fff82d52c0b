"""Several machines on one PostgreSQL: two intake processes, three workers, Marketo's limits on, a kill -9.

Over real HTTP: consents for 150 leads arrive out of order and partly twice, spread over both
intakes; one worker is killed mid-run and restarted. Every acknowledged event must end final, no 606/615 may be
provoked, no lead may ever be leased by two workers at once, and Marketo must end holding, for each
lead, the consent given last.
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import psycopg
import pytest
import requests

from connector.pg_store import PostgresStore
from connector.service import build
from connector.settings import Settings
from tests.e2e_helpers import start_intake
from tests.processes import Processes, consent_event, sandbox_config, sandbox_get, wait_until

pytestmark = pytest.mark.slow

LEADS = 150
PER_LEAD = 8


def _overlaps(url: str, stop: threading.Event, found: list[str]) -> None:
    """Sample the live leases: a lead whose events are leased by two owners at once is a violation."""
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            rows = conn.execute(
                "SELECT lead_key FROM events WHERE lease_until >= extract(epoch FROM now()) "
                "GROUP BY lead_key HAVING COUNT(DISTINCT lease_owner) > 1"
            ).fetchall()
            found.extend(r[0] for r in rows)
            time.sleep(0.02)


def test_two_intakes_and_three_workers_share_one_database(pg_url: str, tmp_path: Path) -> None:
    rng = random.Random(8)
    events = []  # (email, entity id, newsletter, updated_at)
    latest: dict[str, bool] = {}
    for lead in range(LEADS):
        email = f"fleet{lead}@example.com"
        for n in range(PER_LEAD):
            newsletter = rng.random() < 0.5
            events.append((email, f"f{lead}-{n}", newsletter, f"2026-01-01T00:{n:02d}:00.000Z"))
        latest[email] = events[-1][2]
    sends = events + rng.sample(events, len(events) // 10)  # a tenth delivered twice by Didomi
    rng.shuffle(sends)  # and out of order

    # The lease must outlast the longest wait for budget (a 20.5 s window) plus a call: a worker whose lease
    # expired while it waited would send an older consent after a newer one. The killed worker's leases are
    # freed at once by its replacement on the same host, so nothing waits for them to expire.
    env = {"CONNECTOR_LINGER_MS": "50", "CONNECTOR_LEASE_SECONDS": "60", "CONNECTOR_DATABASE_URL": pg_url}
    with Processes(tmp_path, env=env, db_url=pg_url) as procs:
        sandbox = procs.sandbox(limits=True)
        service = build(Settings(database_url=pg_url))
        service.registry.put("acme", sandbox_config(sandbox.url, upsert=True), "file")
        service.close()
        intakes = [start_intake(procs, env) for _ in range(2)]
        workers = [procs.worker() for _ in range(3)]
        stop, overlaps = threading.Event(), []  # type: threading.Event, list[str]
        sampler = threading.Thread(target=_overlaps, args=(pg_url, stop, overlaps), daemon=True)
        sampler.start()

        accepted: dict[str, int] = {}  # entity id -> event id
        errors: list[str] = []
        lock = threading.Lock()

        def send(part: list[tuple[str, str, bool, str]], intake_url: str) -> None:
            with requests.Session() as session:
                for email, entity, newsletter, at in part:
                    body = consent_event(email, entity, newsletter=newsletter, updated_at=at)
                    response = session.post(f"{intake_url}/webhooks/acme", json=body, timeout=30)
                    with lock:
                        if response.status_code == 202:
                            accepted[entity] = response.json()["event_id"]
                        else:
                            errors.append(f"{entity}: {response.status_code} {response.text}")

        threads = [threading.Thread(target=send, args=(sends[i::4], intakes[i % 2].url), daemon=True) for i in range(4)]
        for t in threads:
            t.start()
        store = PostgresStore(pg_url)
        try:
            wait_until(lambda: store.counts().get("acme", {}).get("delivered", 0) >= 100, 60, what="deliveries")
            workers[0].kill()  # kill -9 mid-run
            workers.append(procs.worker())  # restarted on this host: frees the dead one's leases at once
            for t in threads:
                t.join(120)
            assert not errors, errors[:5]
            assert len(accepted) == len(events)  # duplicates answered with the same event

            def settled() -> dict[str, int] | None:
                counts = store.counts().get("acme", {})
                return counts if counts.get("pending", 0) == 0 else None

            counts = wait_until(settled, 120, interval=0.5, what="every accepted event final")
            records = [store.get_event(i) for i in set(accepted.values())]
        finally:
            stop.set()
            sampler.join(10)
            store.close()
        assert all(r is not None and r.state in ("delivered", "skipped") for r in records), counts
        assert sum(counts.values()) == len(events)
        assert not overlaps, f"leads leased by two workers at once: {sorted(set(overlaps))[:5]}"
        stats = sandbox_get(sandbox.url, "stats")
        assert not {"606", "615"} & set(stats.get("errors", {})), stats
        leads = {lead["email"]: lead for lead in sandbox_get(sandbox.url, "leads")}
        assert set(leads) == set(latest)
        wrong = {
            e: (v, leads[e].get("consentNewsletter"))
            for e, v in latest.items()
            if leads[e].get("consentNewsletter") != v
        }
        assert not wrong, f"{len(wrong)} lead(s) not holding their last consent: {list(wrong.items())[:5]}"
        seen = [json.loads(procs.cli("status", "--json", db=True, check=True).stdout)["integrations"] for _ in range(2)]
        assert seen[0] == seen[1] and seen[0]["acme"]["pending"] == 0
        assert all(w.alive for w in workers[1:]) and all(i.alive for i in intakes)
        assert "released leases of 1 stopped process" in workers[-1].output()  # the kill left leases behind
