"""Operations, against real processes: /metrics summed over the processes of ``connector serve``, and
JSON log lines whose context (integration, event_id, lead, marketo_request_id, code) are fields."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.processes import (
    SANDBOX_CLIENT_SECRET,
    Processes,
    consent_event,
    sandbox_config,
    sandbox_get,
    sandbox_post,
    wait_until,
)

pytestmark = pytest.mark.slow

ADMIN = "admin-token-for-ops-tests"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


@pytest.fixture
def procs(tmp_path: Path) -> Any:
    with Processes(tmp_path) as started:
        yield started


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text as ``{(name, labels): value}``."""
    found = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if not match or line.startswith("#"):
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        found[(match.group(1), labels)] = float(match.group(3))
    return found


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = requests.get(f"{url}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return samples(answer.text)


def _children(pid: int) -> dict[int, str]:
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found[int(child)] = Path(f"/proc/{child}/comm").read_text().strip()
    return found


def test_metrics_of_serve_with_two_intake_processes_sum_over_every_process(procs: Processes, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    sandbox = procs.sandbox()
    server = procs.serve(
        configs=[procs.write_config("acme", sandbox_config(sandbox.url, upsert=True))],
        extra_args=["--processes", "2"],
        env={"CONNECTOR_ADMIN_TOKEN": ADMIN, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
    )
    count = 30
    for i in range(count):  # a new connection each: the kernel spreads them over both intake processes
        answer = requests.post(
            f"{server.url}/webhooks/acme", json=consent_event(f"m{i}@example.com", f"m-{i}"), timeout=10
        )
        assert answer.status_code == 202
    bad = requests.post(
        f"{server.url}/webhooks/acme", data=b"{nope", headers={"Content-Type": "application/json"}, timeout=10
    )
    assert bad.status_code == 400
    wait_until(lambda: len(sandbox_get(sandbox.url, "leads")) >= count, 30, what="every lead delivered")

    intake = [pid for pid, name in _children(server.pid).items() if name == "conn-intake"]
    counted_by = {int(m.group(1)) for f in metrics_dir.iterdir() if (m := re.match(r"counter_(\d+)\.db$", f.name))}
    assert len(intake) == 2 and set(intake) <= counted_by  # both intake processes answered and counted

    instance = sandbox.url
    found = wait_until(
        lambda: (
            (s := scrape(server.url))
            and value(s, "connector_events", integration="acme", state="delivered") == count
            and value(s, "connector_circuit_state", instance=instance, state="closed") == 1
            and s
        ),
        20,
        what="delivered events and the circuit state in /metrics",
    )
    for _ in range(4):  # whichever process answers the scrape, the counters are the sums over all of them
        again = scrape(server.url)
        assert value(again, "connector_webhooks_total", integration="acme", status="202") == count
        assert value(again, "connector_webhooks_total", integration="acme", status="400") == 1
    assert value(found, "connector_intake_seconds_count", integration="acme") == count + 1
    # counted in the delivery process, shown by an intake process
    leads_calls = value(
        found, "connector_marketo_calls_total", instance=instance, endpoint="/rest/v1/leads.json", code="200"
    )
    assert leads_calls >= 1
    assert value(found, "connector_marketo_records_per_call_sum", instance=instance) == count
    assert (
        value(found, "connector_marketo_call_seconds_count", instance=instance, endpoint="/rest/v1/leads.json")
        == leads_calls
    )
    assert value(found, "connector_rate_budget_calls_total", instance=instance) >= leads_calls
    assert value(found, "connector_oldest_pending_seconds", integration="acme") == 0
    assert value(found, "connector_circuit_state", instance=instance, state="open") == 0
    assert server.stop() == 0


def test_json_logs_carry_context_as_fields_and_log_level_reaches_every_process(
    procs: Processes, tmp_path: Path
) -> None:
    sandbox = procs.sandbox()
    server = procs.serve(
        configs=[procs.write_config("acme", sandbox_config(sandbox.url, upsert=True))],
        extra_args=["--log-level", "debug"],
        env={"CONNECTOR_LOG_FORMAT": "json", "CONNECTOR_RETRY_DELAYS": "0.2,0.2,0.2,0.2,0.2"},
    )
    first = requests.post(f"{server.url}/webhooks/acme", json=consent_event("first@example.com", "e-1"), timeout=10)
    assert first.status_code == 202  # its delivery fetches the field catalogue: the faults below hit Sync Leads
    wait_until(lambda: sandbox_get(sandbox.url, "leads"), 20, what="the first lead delivered")
    sandbox_post(sandbox.url, "faults", {"errors": {"code": "603", "count": 1}})  # permanent: a dead letter
    dead = requests.post(f"{server.url}/webhooks/acme", json=consent_event("dead@example.com", "e-dead"), timeout=10)
    dead_id = dead.json()["event_id"]
    wait_until(lambda: "became dead letters" in server.output(), 20, what="a dead letter")
    sandbox_post(sandbox.url, "faults", {"errors": {"code": "608", "count": 1}})  # retryable: a retry, then delivered
    retried = requests.post(
        f"{server.url}/webhooks/acme", json=consent_event("retry@example.com", "e-retry"), timeout=10
    )
    wait_until(lambda: any(lead["email"] == "retry@example.com" for lead in sandbox_get(sandbox.url, "leads")), 20)
    assert server.stop() == 0

    lines = [line for line in server.stderr().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]  # every JSON-looking line parses
    assert records and all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r["level"] == "debug" for r in records)  # --log-level debug, in the delivery process too
    died = [r for r in records if r.get("code") == "603" and r.get("event_id") == dead_id]
    assert died and died[0]["integration"] == "acme" and "dead@example.com" in died[0]["lead"]
    assert died[0]["marketo_request_id"]
    retry = [r for r in records if r.get("code") == "608" and r.get("event_id") == retried.json()["event_id"]]
    assert retry and retry[0]["integration"] == "acme" and retry[0]["level"] == "warning"
    calls = [r for r in records if r.get("marketo_path") == "/rest/v1/leads.json" and r.get("code") == "200"]
    assert calls and all(r["marketo_request_id"] for r in calls)
    assert SANDBOX_CLIENT_SECRET not in server.output()


def test_serve_under_waitress_with_two_processes_also_delivers_and_counts(procs: Processes, tmp_path: Path) -> None:
    sandbox = procs.sandbox()
    server = procs.serve(
        configs=[procs.write_config("acme", sandbox_config(sandbox.url, upsert=True))],
        extra_args=["--server", "waitress", "--processes", "2"],
        env={"CONNECTOR_ADMIN_TOKEN": ADMIN},
    )
    assert "2 intake processes, waitress" in server.stderr()
    assert sorted(_children(server.pid).values()) == ["conn-delivery", "conn-intake", "conn-intake"]
    for i in range(10):
        answer = requests.post(
            f"{server.url}/webhooks/acme", json=consent_event(f"w{i}@example.com", f"w-{i}"), timeout=10
        )
        assert answer.status_code == 202
    wait_until(lambda: len(sandbox_get(sandbox.url, "leads")) >= 10, 30, what="every lead delivered")
    assert value(scrape(server.url), "connector_webhooks_total", integration="acme", status="202") == 10
    assert server.stop() == 0


def test_serve_stops_with_an_error_when_its_delivery_process_dies(procs: Processes) -> None:
    sandbox = procs.sandbox()
    server = procs.serve(configs=[procs.write_config("acme", sandbox_config(sandbox.url, upsert=True))])
    children = _children(server.pid)
    (delivery,) = [pid for pid, name in children.items() if name == "conn-delivery"]
    os.kill(delivery, signal.SIGKILL)  # intake without delivery would only fill the outbox: stop, be restarted
    assert server.popen.wait(timeout=20) == 1
    assert "delivery process exited unexpectedly" in server.stderr()
    for child in children:
        assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text().lower()
