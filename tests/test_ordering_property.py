"""Property: whatever the arrival order, duplicates, delays, Marketo failures and replays, the final
lead state equals applying the consent events in timestamp order (newest consent per attribute wins).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import requests_mock as rm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.governor import Governor
from connector.marketo import MarketoClient, TokenCache
from connector.settings import WorkerSettings
from connector.sqlite_store import SqliteStore
from connector.worker import Worker
from tests.conftest import INSTANCE, Clock, make_integration, pending_event

LEADS = f"{INSTANCE}/rest/v1/leads.json"
TOKEN = f"{INSTANCE}/identity/oauth/token"
PARTITIONS = f"{INSTANCE}/rest/v1/leads/partitions.json"  # what the circuit's probe asks once Marketo failed
ATTRIBUTES = ("consentNewsletter", "consentGeolocation", "consentMarketing")
FAILURES = ("ok", "ok", "ok", "611", "606", "604", "lost", "5xx")


@dataclass(frozen=True)
class Consent:
    lead: int
    at: int  # seconds; unique per lead so "newest" is well defined
    values: tuple[tuple[str, bool], ...]

    def stamp(self) -> str:
        return f"2026-01-01T00:{self.at // 60:02d}:{self.at % 60:02d}.000000Z"


@st.composite
def scenarios(draw: st.DrawFn, max_leads: int = 6, max_events: int = 40) -> tuple[list[Consent], list[int], list[str]]:
    leads = draw(st.integers(1, max_leads))
    count = draw(st.integers(1, max_events))
    consents = []
    used: set[tuple[int, int]] = set()
    for _ in range(count):
        lead = draw(st.integers(0, leads - 1))
        at = draw(st.integers(0, 3599).filter(lambda t, lead=lead: (lead, t) not in used))
        used.add((lead, at))
        attrs = draw(st.lists(st.sampled_from(ATTRIBUTES), min_size=1, max_size=3, unique=True))
        consents.append(Consent(lead, at, tuple((a, draw(st.booleans())) for a in attrs)))
    # arrival: a shuffled order with duplicates (redeliveries), cut into bursts by delays
    arrival = draw(st.permutations(list(range(count))))
    duplicates = draw(st.lists(st.integers(0, count - 1), max_size=count))
    for index in duplicates:
        arrival.insert(draw(st.integers(0, len(arrival))), index)
    failures = draw(st.lists(st.sampled_from(FAILURES), min_size=0, max_size=60))
    return consents, arrival, failures


class FakeMarketo:
    """Applies Sync Leads calls to a dict of leads; fails calls according to a script."""

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.leads: dict[str, dict[str, Any]] = {}
        self.ids: dict[str, int] = {}  # Marketo lead ids are stable once assigned

    def __call__(self, request: Any, context: Any) -> dict[str, Any]:
        mode = self.script.pop(0) if self.script else "ok"
        body = request.json()
        if mode in ("611", "606", "604"):
            return {"requestId": "r#1", "success": False, "errors": [{"code": mode, "message": "scripted"}]}
        if mode == "5xx":
            context.status_code = 503
            return {}
        results = []
        for record in body["input"]:
            email = record["email"].lower()
            lead = self.leads.setdefault(email, {})
            lead.update({k: v for k, v in record.items() if k != "email"})
            lead_id = self.ids.setdefault(email, len(self.ids) + 1)
            results.append({"id": lead_id, "status": "updated"})
        if mode == "lost":  # applied by Marketo, but the answer never arrives
            raise requests.exceptions.ReadTimeout("scripted: response lost")
        return {"requestId": "r#2", "success": True, "result": results}


def expected_state(consents: list[Consent]) -> dict[str, dict[str, bool]]:
    state: dict[str, dict[str, bool]] = {}
    for consent in sorted(consents, key=lambda c: c.at):
        state.setdefault(f"lead{consent.lead}@x.com", {}).update(dict(consent.values))
    return state


def run(consents: list[Consent], arrival: list[int], failures: list[str]) -> None:
    clock = Clock()
    marketo = FakeMarketo(failures)
    with tempfile.TemporaryDirectory() as tmp, rm.Mocker() as m:
        m.get(TOKEN, json={"access_token": "t", "token_type": "bearer", "expires_in": 3600, "scope": "s"})
        m.post(LEADS, json=marketo)
        m.get(PARTITIONS, json={"requestId": "p", "success": True, "result": [{"id": 1, "name": "Default"}]})
        store = SqliteStore(Path(tmp) / "c.db")
        governor = Governor(store, clock=clock, sleep=clock.sleep)
        tokens = TokenCache()
        worker = Worker(
            store,
            type("R", (), {"get": staticmethod(lambda _id: make_integration())})(),
            governor,
            settings=WorkerSettings(retry_delays=(1.0, 1.0, 1.0, 1.0, 1.0), rate_backoff=2.0),
            clients=lambda i: MarketoClient(
                i.instance, i.client_id, i.client_secret, tokens=tokens, gate=governor.gate(i.instance)
            ),
            clock=clock,
            sleep=clock.sleep,
        )
        for position, index in enumerate(arrival):
            consent = consents[index]
            store.add_event(
                pending_event(
                    f"lead{consent.lead}@x.com",
                    dict(consent.values),
                    consent.stamp(),
                    key=f"event-{index}",
                    received_at=clock(),
                )
            )
            if position % 3 == 2:  # a delay: the worker runs between bursts
                worker.drain()
                clock.advance(1.5)
        for _ in range(200):  # keep going, replaying dead letters, until everything settled
            worker.drain()
            clock.advance(3.0)
            counts = store.counts().get("acme", {})
            if counts.get("dead"):
                store.replay(None, clock())
            elif not counts.get("pending"):
                break
        counts = store.counts().get("acme", {})
        store.close()
    assert not counts.get("pending") and not counts.get("dead"), counts
    assert marketo.leads == expected_state(consents)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(scenarios())
def test_final_state_equals_timestamp_order(scenario: tuple[list[Consent], list[int], list[str]]) -> None:
    run(*scenario)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(scenarios(max_leads=20, max_events=120))
def test_final_state_equals_timestamp_order_many_leads(scenario: tuple[list[Consent], list[int], list[str]]) -> None:
    run(*scenario)
