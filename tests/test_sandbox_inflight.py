"""The sandbox counts Sync Leads calls that hold a lead another call still holds (one batch per lead)."""

from __future__ import annotations

import threading

import requests

from connector.sandbox import SandboxConfig, SandboxServer, SandboxState
from connector.sandbox.inflight import LeadsInFlight, lead_keys


def test_lead_keys_are_the_lowercased_lookup_values() -> None:
    body = {"lookupField": "email", "input": [{"email": " Jane@Example.com"}, {"id": 3}, "junk"]}
    assert lead_keys(body) == ["email:jane@example.com"]
    assert lead_keys({"lookupField": "id", "input": [{"id": 7}]}) == ["id:7"]
    assert lead_keys([1, 2]) == []
    assert lead_keys({"input": "nope"}) == []


def test_an_entry_while_another_call_holds_the_lead_is_an_overlap() -> None:
    tracker = LeadsInFlight()
    first = tracker.enter(["email:a", "email:b"])
    second = tracker.enter(["email:b", "email:c"])
    assert tracker.snapshot()["lead_overlaps"] == 1
    tracker.leave(first)
    tracker.leave(second)
    tracker.enter(["email:b"])
    assert tracker.snapshot() == {"lead_overlaps": 1, "lead_overlap_examples": ["email:b"]}


def test_concurrent_calls_for_one_lead_show_in_stats() -> None:
    state = SandboxState(SandboxConfig(limits=False), leads=[{"email": "jane@example.com"}])
    with SandboxServer(state, "127.0.0.1", 0) as server:
        credentials = {
            "grant_type": "client_credentials",
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
        }
        token = requests.get(f"{server.url}/identity/oauth/token", params=credentials, timeout=10).json()[
            "access_token"
        ]
        requests.post(f"{server.url}/_sandbox/faults", json={"latency_ms": 300}, timeout=10)
        body = {"action": "updateOnly", "lookupField": "email", "input": [{"email": "JANE@example.com"}]}

        def call() -> None:
            requests.post(
                f"{server.url}/rest/v1/leads.json", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
            )

        threads = [threading.Thread(target=call) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = requests.get(f"{server.url}/_sandbox/stats", timeout=10).json()
        assert stats["lead_overlaps"] == 1
        assert stats["lead_overlap_examples"] == ["email:jane@example.com"]
        call()  # alone: no new overlap
        assert requests.get(f"{server.url}/_sandbox/stats", timeout=10).json()["lead_overlaps"] == 1
