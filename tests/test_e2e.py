"""End to end over real HTTP: ``connector sandbox`` and ``connector serve`` (or intake + ``connector worker``)
run as subprocesses; the test posts webhooks to the connector and reads the sandbox's leads.

Short retry delays, linger, back-off and token lifetimes keep the file quick.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests

from connector.outbox import EventRecord
from tests.e2e_helpers import (
    Outbox,
    RecordingProxy,
    start_intake,
    start_partitioned_sandbox,
    start_worker,
)
from tests.processes import (
    SAMPLES,
    Processes,
    RunningProcess,
    consent_event,
    sandbox_clear_faults,
    sandbox_get,
    sandbox_post,
)

pytestmark = pytest.mark.slow

FAST_ENV = {
    "CONNECTOR_LINGER_MS": "20",
    "CONNECTOR_RETRY_DELAYS": "1,1,2,2,3",
    "CONNECTOR_RATE_BACKOFF": "0.5",
}
JANE: dict[str, Any] = {"id": 1, "email": "jane.doe@example.com", "firstName": "Jane"}
JOHN: dict[str, Any] = {"id": 2, "email": "john.smith@example.com", "firstName": "John"}
OLDER = "2024-05-02T09:12:44.120Z"
NEWER = "2024-05-03T08:05:30.250Z"


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path, env=FAST_ENV) as started:
        yield started


def sample_config(name: str, instance: str, **changes: Any) -> dict[str, Any]:
    """sample_configs/<name>.json pointed at *instance*; ``partition=...`` sets properties.partition."""
    doc: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    doc["authentication"]["instance"] = instance
    if "partition" in changes:
        doc["properties"]["partition"] = changes.pop("partition")
    doc.update(changes)
    return doc


def event_for(user: str, entity_id: str, *, newsletter: bool = True, at: str = OLDER) -> dict[str, Any]:
    return consent_event(user, entity_id, newsletter=newsletter, updated_at=at)


def post(server: RunningProcess, integration: str, body: Any) -> dict[str, Any]:
    response = requests.post(f"{server.url}/webhooks/{integration}", json=body, timeout=10)
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def queued(server: RunningProcess, integration: str, body: Any) -> int:
    answer = post(server, integration, body)
    assert answer["status"] == "queued", answer
    event_id: int = answer["event_id"]
    return event_id


def leads_by_email(sandbox_url: str) -> dict[str, dict[str, Any]]:
    return {lead["email"]: lead for lead in sandbox_get(sandbox_url, "leads") if lead.get("email")}


def seed(sandbox_url: str, leads: Sequence[dict[str, Any]]) -> None:
    sandbox_post(sandbox_url, "leads", list(leads))


def outcomes(record: EventRecord) -> list[str]:
    return [a.outcome for a in record.attempts]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- update-only, upsert, partitions, leadID -----------------------------------------------------------


def test_update_only_skips_unknown_user_and_upsert_creates_it(procs: Processes) -> None:
    sandbox = procs.sandbox()
    seed(sandbox.url, [JANE])
    server = procs.serve(
        configs=[
            procs.write_config("email", sample_config("email", sandbox.url)),
            procs.write_config("upsert", sample_config("upsert", sandbox.url)),
        ]
    )
    outbox = Outbox(procs.db_url)

    unknown = queued(server, "email", event_for("new.person@example.com", "e-unknown"))
    known = queued(server, "email", event_for("jane.doe@example.com", "e-jane"))
    skipped, updated = outbox.wait_finished([unknown, known], 20)
    assert skipped.state == "skipped"
    assert skipped.reason.startswith("unknown user")  # shown as "skipped: unknown user: ..."
    assert skipped.attempt_count == 0 and "retry" not in outcomes(skipped)
    assert updated.state == "delivered" and updated.reason == "updated"
    assert "new.person@example.com" not in leads_by_email(sandbox.url)  # updateOnly never creates

    created_id = queued(server, "upsert", event_for("new.person@example.com", "e-upsert"))
    (created,) = outbox.wait_finished([created_id], 20)
    assert created.state == "delivered" and created.reason == "created", created
    lead = leads_by_email(sandbox.url)["new.person@example.com"]
    assert created.lead_id == lead["id"]
    assert lead["consentNewsletter"] is True and lead["consentGeolocation"] is True
    assert lead["leadPartitionId"] == 1  # upsert.json names partition "Default"
    assert leads_by_email(sandbox.url)["jane.doe@example.com"]["consentNewsletter"] is True


def test_partition_name_places_new_lead_and_unknown_partition_is_reported(procs: Processes) -> None:
    sandbox = start_partitioned_sandbox(procs, ["Europe"])
    with RecordingProxy(sandbox.url) as proxy:
        server = procs.serve(
            configs=[
                procs.write_config("eu", sample_config("upsert", proxy.url, partition="Europe")),
                procs.write_config("nowhere", sample_config("upsert", proxy.url, partition="Nowhere")),
            ]
        )
        outbox = Outbox(procs.db_url)
        eu = queued(server, "eu", event_for("eu.person@example.com", "e-eu"))
        lost = queued(server, "nowhere", event_for("lost.person@example.com", "e-lost"))
        created, refused = outbox.wait_finished([eu, lost], 20)
        bodies = proxy.sync_bodies()

    assert created.state == "delivered" and created.reason == "created"
    leads = leads_by_email(sandbox.url)
    assert leads["eu.person@example.com"]["leadPartitionId"] == 2  # "Europe", not Default (1)
    sent = [b for b in bodies if b["input"][0]["email"] == "eu.person@example.com"]
    assert sent and all(b["action"] == "createOrUpdate" and b["partitionName"] == "Europe" for b in sent)

    assert refused.state == "dead"
    assert "1008" in refused.reason and "Nowhere" in refused.reason
    assert "lost.person@example.com" not in leads
    status = procs.cli("status", "--json", db=True, check=True)
    assert json.loads(status.stdout)["integrations"]["nowhere"]["dead"] == 1


def test_lead_id_lookup_updates_that_lead_by_id(procs: Processes) -> None:
    sandbox = procs.sandbox()
    seed(sandbox.url, [JANE, JOHN])
    with RecordingProxy(sandbox.url) as proxy:
        server = procs.serve(configs=[procs.write_config("leadid", sample_config("leadid", proxy.url))])
        outbox = Outbox(procs.db_url)
        by_id = queued(server, "leadid", event_for("2", "e-lead-2", newsletter=False))
        missing = queued(server, "leadid", event_for("999", "e-lead-999"))
        updated, unknown = outbox.wait_finished([by_id, missing], 20)
        bodies = proxy.sync_bodies()
    not_a_number = post(server, "leadid", event_for("jane.doe@example.com", "e-lead-x"))

    assert updated.state == "delivered" and updated.reason == "updated"
    assert updated.lead_id == 2
    leads = {lead["id"]: lead for lead in sandbox_get(sandbox.url, "leads")}
    assert leads[2]["consentNewsletter"] is False and leads[2]["consentGeolocation"] is True
    assert leads[1].get("consentNewsletter") is None  # the other lead is untouched
    assert bodies and all(b["lookupField"] == "id" and b["action"] == "updateOnly" for b in bodies)
    sent_ids = [record["id"] for body in bodies for record in body["input"]]
    assert 2 in sent_ids and all(type(i) is int for i in sent_ids)  # ids go out as JSON integers
    assert unknown.state == "skipped" and unknown.reason.startswith("unknown user")
    assert not_a_number["state"] == "skipped" and "lead id" in not_a_number["reason"]


# -- tokens, rate limits, outages ------------------------------------------------------------------------


def test_tokens_expiring_mid_run_cause_no_failed_attempt(procs: Processes) -> None:
    sandbox = procs.sandbox(token_ttl=2)
    people: list[dict[str, Any]] = [{"id": i, "email": f"person{i}@example.com"} for i in range(1, 13)]
    seed(sandbox.url, people)
    server = procs.serve(configs=[procs.write_config("email", sample_config("email", sandbox.url))])
    outbox = Outbox(procs.db_url)
    ids = []
    started = time.monotonic()
    for person in people:  # one event every 0.5 s for 6 s: three token lifetimes
        ids.append(queued(server, "email", event_for(person["email"], f"e-token-{person['id']}")))
        time.sleep(max(0.0, started + 0.5 * len(ids) - time.monotonic()))
    records = outbox.wait_finished(ids, 30)

    assert sandbox_get(sandbox.url, "stats")["tokens_issued"] >= 3  # tokens really expired mid-run
    assert [r.state for r in records] == ["delivered"] * len(ids)
    failed = {r.id: [(a.outcome, a.code, a.message) for a in r.attempts if a.outcome != "updated"] for r in records}
    assert failed == {r.id: [] for r in records}
    assert all(r.attempt_count == 0 for r in records)
    assert all(lead["consentNewsletter"] is True for lead in leads_by_email(sandbox.url).values())


def test_606_storm_is_survived_without_using_up_retries(procs: Processes) -> None:
    sandbox = procs.sandbox()
    people: list[dict[str, Any]] = [{"id": i, "email": f"storm{i}@example.com"} for i in range(1, 6)]
    seed(sandbox.url, people)
    server = procs.serve(
        configs=[procs.write_config("email", sample_config("email", sandbox.url))],
        env={"CONNECTOR_RATE_BACKOFF": "0.3"},
    )
    outbox = Outbox(procs.db_url)
    storm = 8  # more than the 5 retries: if 606 used up retries, events would die
    sandbox_post(sandbox.url, "faults", {"errors": {"code": "606", "count": storm}})
    ids = [queued(server, "email", event_for(p["email"], f"e-storm-{p['id']}", newsletter=False)) for p in people]
    records = outbox.wait_finished(ids, 40)

    assert [r.state for r in records] == ["delivered"] * len(ids), [r.last_error for r in records]
    stats = sandbox_get(sandbox.url, "stats")
    assert stats["errors"].get("606") == storm
    assert sandbox_get(sandbox.url, "faults")["errors"] is None  # the whole storm was spent on the connector
    assert any("rate_limited" in outcomes(r) for r in records)
    for record in records:
        assert "retry" not in outcomes(record) and "dead" not in outcomes(record)
        assert record.attempt_count == 0  # 606 does not use up a retry
    assert all(lead["consentNewsletter"] is False for lead in leads_by_email(sandbox.url).values())


@pytest.mark.parametrize("mode", ["5xx", "refuse"])
def test_short_outage_is_survived(procs: Processes, mode: str) -> None:
    sandbox = procs.sandbox()
    seed(sandbox.url, [JANE, JOHN])
    server = procs.serve(configs=[procs.write_config("email", sample_config("email", sandbox.url))])
    outbox = Outbox(procs.db_url)
    outage_ends = time.time() + 3
    sandbox_post(sandbox.url, "faults", {"outage": {"mode": mode, "seconds": 3}})
    ids = [
        queued(server, "email", event_for(JANE["email"], f"e-out-jane-{mode}", newsletter=False)),
        queued(server, "email", event_for(JOHN["email"], f"e-out-john-{mode}", newsletter=True)),
    ]
    records = outbox.wait_finished(ids, 30)

    assert [r.state for r in records] == ["delivered", "delivered"], [r.last_error for r in records]
    # it did fail during the outage (an event may also have waited it out in the describe call's in-call retries)
    assert any("retry" in outcomes(record) for record in records)
    for record in records:
        assert record.finished_at >= outage_ends - 0.5  # and got through after it
        assert record.attempt_count <= 5  # an event first sent after the outage has used none
    leads = leads_by_email(sandbox.url)
    assert leads[JANE["email"]]["consentNewsletter"] is False
    assert leads[JOHN["email"]]["consentNewsletter"] is True


def test_long_outage_ends_in_dead_letters_that_replay_cleanly(procs: Processes) -> None:
    sandbox = procs.sandbox()
    seed(sandbox.url, [JANE, JOHN])
    server = procs.serve(
        configs=[procs.write_config("email", sample_config("email", sandbox.url))],
        # without the circuit (which would hold them: tests/test_outage_e2e.py), retries run out
        env={"CONNECTOR_RETRY_DELAYS": "0.2,0.2,0.2,0.2,0.2", "CONNECTOR_CIRCUIT_FAILURES": "0"},
    )
    outbox = Outbox(procs.db_url)
    sandbox_post(sandbox.url, "faults", {"outage": {"mode": "5xx", "seconds": 300}})
    ids = [
        queued(server, "email", event_for(JANE["email"], "e-long-jane", newsletter=False)),
        queued(server, "email", event_for(JOHN["email"], "e-long-john", newsletter=True)),
    ]
    dead = outbox.wait_finished(ids, 30)
    assert [r.state for r in dead] == ["dead", "dead"]
    assert all(len([o for o in outcomes(r) if o in ("retry", "dead")]) == 6 for r in dead)  # 1 + 5 retries

    listed = json.loads(procs.cli("deadletters", "list", "--json", db=True, check=True).stdout)
    assert sorted(d["id"] for d in listed) == sorted(ids)
    for doc in listed:
        assert doc["state"] == "dead"
        assert "gave up after 6 attempts" in doc["last_error"] and "503" in doc["last_error"]
    assert leads_by_email(sandbox.url)[JANE["email"]].get("consentNewsletter") is None  # nothing got through

    sandbox_clear_faults(sandbox.url)
    replay = procs.cli("deadletters", "replay", "--all", db=True, check=True)
    assert "replayed 2 event(s)" in replay.stdout
    delivered = outbox.wait_finished(ids, 20, states=("delivered",))
    assert all(r.reason == "updated" and r.request_id for r in delivered)
    assert all(r.attempt_count == 0 for r in delivered)  # replay gave a fresh retry budget
    leads = leads_by_email(sandbox.url)
    assert leads[JANE["email"]]["consentNewsletter"] is False
    assert leads[JOHN["email"]]["consentNewsletter"] is True
    assert procs.cli("deadletters", "list", db=True, check=True).stdout.strip() == "no dead letters"


# -- consent ordering ------------------------------------------------------------------------------------


def test_older_consent_arriving_after_a_newer_one_is_skipped_as_stale(procs: Processes) -> None:
    sandbox = procs.sandbox()
    seed(sandbox.url, [JANE])
    server = procs.serve(configs=[procs.write_config("email", sample_config("email", sandbox.url))])
    outbox = Outbox(procs.db_url)
    newer = queued(server, "email", event_for(JANE["email"], "e-newer-out", newsletter=False, at=NEWER))
    outbox.wait_finished([newer], 20)
    older = queued(server, "email", event_for(JANE["email"], "e-older-in", newsletter=True, at=OLDER))
    applied, stale = outbox.wait_finished([newer, older], 20)

    assert applied.state == "delivered"
    assert stale.state == "skipped" and stale.reason.startswith("stale"), stale
    assert leads_by_email(sandbox.url)[JANE["email"]]["consentNewsletter"] is False


@pytest.mark.parametrize("newer_first", [True, False], ids=["opt-out-then-older-opt-in", "older-opt-in-then-opt-out"])
def test_pair_pending_together_newest_consent_wins_in_either_arrival_order(
    procs: Processes, tmp_path: Path, newer_first: bool
) -> None:
    """Intake alone stores both events; then ``connector worker`` starts and finds them pending together."""
    sandbox = procs.sandbox()
    seed(sandbox.url, [JANE])
    env = {"CONNECTOR_DATABASE_URL": procs.db_url, "CONNECTOR_ADMIN_TOKEN": "e2e-admin-token"}
    intake = start_intake(procs, env)
    put = requests.put(
        f"{intake.url}/integrations/email",
        json=sample_config("email", sandbox.url),
        headers={"Authorization": "Bearer e2e-admin-token"},
        timeout=10,
    )
    assert put.status_code == 201, put.text
    pair = [
        ("newer", event_for(JANE["email"], "e-pair-out", newsletter=False, at=NEWER)),
        ("older", event_for(JANE["email"], "e-pair-in", newsletter=True, at=OLDER)),
    ]
    if not newer_first:
        pair.reverse()
    ids = {name: queued(intake, "email", body) for name, body in pair}
    start_worker(procs, procs.db_url)
    outbox = Outbox(procs.db_url)
    newer, older = outbox.wait_finished([ids["newer"], ids["older"]], 20)

    assert newer.state == "delivered", newer
    assert older.state == "skipped" and older.reason.startswith("stale"), older
    lead = leads_by_email(sandbox.url)[JANE["email"]]
    assert lead["consentNewsletter"] is False and lead["consentNewsletterText"] == "false"
    assert sandbox_get(sandbox.url, "stats")["records_written"] == 1  # the older value was never sent


# -- restart (issue 2) -----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_events_accepted_while_marketo_is_down_are_delivered_after_a_restart(procs: Processes, how: str) -> None:
    """202s while the sandbox is unreachable; stop the process; restart on the same --db; all delivered.

    SIGTERM: the sandbox port refuses connections (attempts fail and are rescheduled). SIGKILL: the
    port accepts but never answers, so the killed process dies holding its leases, which the restarted
    one must free at start-up (the lease itself lasts 120 s, far beyond this test's wait).
    """
    port = free_port()
    instance = f"http://127.0.0.1:{port}"
    config = procs.write_config("email", sample_config("email", instance))
    env = {"CONNECTOR_RETRY_DELAYS": "1,2,2,2,10"}
    hang = None
    if how == "sigkill":
        hang = socket.socket()
        hang.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hang.bind(("127.0.0.1", port))
        hang.listen(64)  # never accepted: calls hang
    try:
        server = procs.serve(configs=[config], env=env)
        people: list[dict[str, Any]] = [{"id": i, "email": f"restart{i}@example.com"} for i in range(1, 7)]
        ids = [queued(server, "email", event_for(p["email"], f"e-restart-{how}-{p['id']}")) for p in people]
        outbox = Outbox(procs.db_url)
        if how == "sigkill":
            # Up to CONNECTOR_SENDERS batches hang in flight, each holding its events' leases.
            deadline = time.monotonic() + 10
            while not any(outbox.lease_owners(ids).values()) and time.monotonic() < deadline:
                time.sleep(0.05)
            tree = {server.pid, *_children(server.pid)}  # serve and its delivery process, which dies with it
            assert server.kill() == -signal.SIGKILL
            held = [i for i, owner in outbox.lease_owners(ids).items() if owner and int(owner.split(":")[1]) in tree]
            assert held, "the killed process held no lease"
        else:
            time.sleep(1.0)  # let some attempts fail
            assert server.stop() == 0  # graceful
            assert not any(outbox.lease_owners(ids).values())  # a graceful stop leaves no lease behind
        assert [r.state for r in outbox.events(ids)] == ["pending"] * len(ids)
    finally:
        if hang is not None:
            hang.close()

    sandbox = procs.sandbox(port=port)
    seed(sandbox.url, people)
    procs.serve(env=env)  # no --config: the integration was stored in the database
    records = outbox.wait_finished(ids, 20)
    assert [r.state for r in records] == ["delivered"] * len(ids), [r.last_error for r in records]
    assert all(lead["consentNewsletter"] is True for lead in leads_by_email(sandbox.url).values())


# -- describe-based conversion ---------------------------------------------------------------------------


def test_boolean_consent_mapped_to_a_text_field_is_sent_as_true_false(procs: Processes) -> None:
    sandbox = procs.sandbox()
    seed(sandbox.url, [JANE, JOHN])
    with RecordingProxy(sandbox.url) as proxy:
        server = procs.serve(configs=[procs.write_config("email", sample_config("email", proxy.url))])
        outbox = Outbox(procs.db_url)
        ids = [
            queued(server, "email", event_for(JANE["email"], "e-text-jane", newsletter=True)),
            queued(server, "email", event_for(JOHN["email"], "e-text-john", newsletter=False)),
        ]
        records = outbox.wait_finished(ids, 20)
        bodies = proxy.sync_bodies()
    assert [r.state for r in records] == ["delivered", "delivered"]
    sent = {rec["email"]: rec for body in bodies for rec in body["input"]}
    # On the wire: the text field gets the strings, the boolean field the JSON booleans (from describe).
    assert sent[JANE["email"]]["consentNewsletterText"] == "true"
    assert sent[JOHN["email"]]["consentNewsletterText"] == "false"
    assert sent[JANE["email"]]["consentNewsletter"] is True
    assert sent[JOHN["email"]]["consentNewsletter"] is False
    leads = leads_by_email(sandbox.url)
    assert leads[JANE["email"]]["consentNewsletterText"] == "true"
    assert leads[JOHN["email"]]["consentNewsletterText"] == "false"
    # the audit trail records exactly what went on the wire, as proof
    assert [r.sent for r in records] == [sent[JANE["email"]], sent[JOHN["email"]]]


# -- several intake processes ----------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(p) for p in text]
    return found


def test_serve_with_two_intake_processes_shares_the_port_and_stops_cleanly(procs: Processes) -> None:
    from tests.processes import sandbox_config

    sandbox = procs.sandbox()
    server = procs.serve(
        configs=[procs.write_config("acme", sandbox_config(sandbox.url, upsert=True))], extra_args=["--processes", "2"]
    )
    children = _children(server.pid)
    names = {pid: Path(f"/proc/{pid}/comm").read_text().strip() for pid in children}
    assert sorted(names.values()) == ["conn-delivery", "conn-intake", "conn-intake"]
    (delivery,) = [pid for pid, name in names.items() if name == "conn-delivery"]
    # with the delivery process frozen, the intake still stores and answers (202): they share no GIL
    os.kill(delivery, signal.SIGSTOP)
    try:
        frozen = requests.post(
            f"{server.url}/webhooks/acme", json=consent_event("frozen@example.com", "e-frozen"), timeout=10
        )
        assert frozen.status_code == 202 and frozen.json()["status"] == "queued"
    finally:
        os.kill(delivery, signal.SIGCONT)
    answers = [
        requests.post(f"{server.url}/webhooks/acme", json=consent_event(f"p{i}@example.com", f"e-{i}"), timeout=10)
        for i in range(20)
    ]
    assert {a.status_code for a in answers} == {202}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(sandbox_get(sandbox.url, "leads")) < 21:
        time.sleep(0.1)
    assert {lead["email"] for lead in sandbox_get(sandbox.url, "leads")} >= {"frozen@example.com", "p0@example.com"}
    assert len(sandbox_get(sandbox.url, "leads")) == 21
    assert server.stop() == 0
    for child in children:
        assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text().lower()
