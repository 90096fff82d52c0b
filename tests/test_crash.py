"""Crash safety: SIGKILL the real server mid-stream while Marketo is down; every 202 still lands once.

``connector serve`` runs as a subprocess on a SQLite outbox; the Marketo sandbox runs as another
subprocess in a 5xx outage. A thread streams distinct consent events at the webhook, mixed with
requests the server must refuse (wrong header secret 401, broken JSON 400, wrong content type 415),
each addressed to its own email so its effect would be visible. Mid-stream the server is SIGKILLed
and restarted on the same database and port; the stream goes on. Then the outage ends and the test
waits until ``connector status --json`` shows nothing pending, and reads the sandbox's leads:

- every event answered 202 reached Marketo, with its own consent value, as exactly one lead;
- no refused event did;
- events whose request got no answer (the connection dropped by the kill) may go either way;
- nothing is dead-lettered and no lead exists twice.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.processes import (
    Processes,
    RunningProcess,
    consent_event,
    sandbox_clear_faults,
    sandbox_config,
    sandbox_get,
    sandbox_post,
    wait_until,
)

HEADER = "X-Webhook-Secret"
SECRET = "crash-test-webhook-secret"
# Short retries, and many of them: an event keeps being retried through the whole outage (no dead
# letter within the test window) and is delivered within a second once Marketo is back.
RETRY_DELAYS = ",".join(["0.5"] * 200)
PER_PHASE = 40  # events answered 202 before the kill, and again after the restart


@dataclass
class Stream:
    """Posts events from a thread; sorts each by what the server answered."""

    url: str
    accepted: dict[str, bool] = field(default_factory=dict)  # email -> newsletter value
    refused: dict[str, int] = field(default_factory=dict)  # email -> status
    unanswered: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.accepted)

    def run(self) -> None:
        session = requests.Session()
        n = 0
        while not self.stop.is_set():
            n += 1
            self.send_one(session, n)
            time.sleep(0.01)
        session.close()

    def send_one(self, session: requests.Session, n: int) -> None:
        kind = ("ok", "ok", "ok", "wrong-secret", "ok", "ok", "broken-json", "ok", "text-plain")[n % 9]
        email = f"{kind}-{n}@example.com"
        newsletter = n % 2 == 0
        body = json.dumps(consent_event(email, f"crash-{n}", newsletter=newsletter)).encode()
        headers = {"Content-Type": "application/json", HEADER: SECRET}
        if kind == "wrong-secret":
            headers[HEADER] = SECRET + "-wrong"
        elif kind == "broken-json":
            body = body[:-2]
        elif kind == "text-plain":
            headers["Content-Type"] = "text/plain"
        try:
            response = session.post(f"{self.url}/webhooks/crash", data=body, headers=headers, timeout=5)
        except requests.RequestException:
            with self.lock:
                self.unanswered.add(email)
            session.close()  # a fresh connection next time
            return
        with self.lock:
            if response.status_code == 202:
                if kind != "ok":
                    self.errors.append(f"{kind} event {email} was accepted: {response.text}")
                self.accepted[email] = newsletter
            elif 400 <= response.status_code < 500:
                if kind == "ok":
                    self.errors.append(f"valid event {email} refused: {response.status_code} {response.text}")
                self.refused[email] = response.status_code
            else:
                self.errors.append(f"{email}: unexpected {response.status_code} {response.text}")


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    env = {"CONNECTOR_RETRY_DELAYS": RETRY_DELAYS, "CONNECTOR_LINGER_MS": "50"}
    with Processes(tmp_path, env=env) as started:
        yield started


def pending(procs: Processes) -> dict[str, int]:
    result = procs.cli("status", "--json", db=True, check=True)
    counts: dict[str, int] = json.loads(result.stdout)["integrations"]["crash"]
    return counts


@pytest.mark.slow
def test_sigkill_mid_stream_during_an_outage_loses_no_accepted_event_and_applies_none_refused(
    procs: Processes,
) -> None:
    sandbox = procs.sandbox()
    sandbox_post(sandbox.url, "faults", {"outage": {"mode": "5xx", "seconds": 600}})
    webhook = {"header": {"name": HEADER, "secret": SECRET}}
    config = procs.write_config("crash", sandbox_config(sandbox.url, upsert=True, webhook=webhook))
    server: RunningProcess = procs.serve(configs=[config])
    port = int(server.url.rsplit(":", 1)[1])

    stream = Stream(server.url)
    thread = threading.Thread(target=stream.run, name="webhook-stream", daemon=True)
    thread.start()
    try:
        wait_until(lambda: stream.count() >= PER_PHASE, 30, what=f"{PER_PHASE} events accepted")
        assert server.kill() == -signal.SIGKILL  # mid-stream: requests in flight lose their answer
        before_restart = stream.count()
        server = procs.serve(port=port)  # same --db, same port; configs come from the database
        wait_until(lambda: stream.count() >= before_restart + PER_PHASE, 30, what="events accepted after restart")
    finally:
        stream.stop.set()
        thread.join(timeout=10)
    assert not stream.errors, stream.errors
    assert stream.refused, "no refused request in the stream"
    assert set(stream.refused.values()) == {400, 401, 415}
    assert stream.unanswered, "the kill interrupted nothing"

    # Marketo was down the whole time: the accepted events are all still in the outbox.
    counts = pending(procs)
    assert counts["pending"] >= len(stream.accepted), counts
    assert counts["delivered"] == 0 and counts["dead"] == 0, counts
    assert sandbox_get(sandbox.url, "leads") == []

    sandbox_clear_faults(sandbox.url)  # Marketo is back
    wait_until(lambda: pending(procs)["pending"] == 0, 40, interval=0.5, what="outbox drained")
    counts = pending(procs)
    assert counts["dead"] == 0, counts

    leads = sandbox_get(sandbox.url, "leads")
    emails = [lead["email"] for lead in leads]
    assert len(emails) == len(set(emails)), "a lead was created twice"
    by_email = {lead["email"]: lead for lead in leads}
    missing = sorted(set(stream.accepted) - set(by_email))
    assert not missing, f"{len(missing)} event(s) answered 202 never reached Marketo: {missing[:5]}"
    wrong = {e: (v, by_email[e].get("consentNewsletter")) for e, v in stream.accepted.items()}
    assert all(v == got for v, got in wrong.values()), {e: p for e, p in wrong.items() if p[0] != p[1]}
    applied_refused = sorted(set(stream.refused) & set(by_email))
    assert not applied_refused, f"refused events reached Marketo: {applied_refused}"
    unexplained = set(by_email) - set(stream.accepted) - stream.unanswered
    assert not unexplained, f"leads from no accepted request: {sorted(unexplained)[:5]}"
    assert counts["delivered"] + counts["skipped"] >= len(stream.accepted)
