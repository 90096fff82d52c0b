"""Erasure end to end over real HTTP: ``connector sandbox`` and ``connector serve`` as subprocesses, a
``user.deleted`` webhook, ``connector forget``, then the raw bytes of the database files."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e_helpers import Outbox
from tests.processes import SAMPLES, Processes, consent_event, sandbox_get, sandbox_post, wait_until

pytestmark = pytest.mark.slow

FAST_ENV = {"CONNECTOR_LINGER_MS": "20", "CONNECTOR_RETRY_DELAYS": "1,1,2,2,3"}
JANE = {"id": 1, "email": "jane.doe@example.com", "firstName": "Jane"}
JOHN = {"id": 2, "email": "john.smith@example.com", "firstName": "John"}
JANE_USER = "a3722cd3-f2e4-4451-a564-83f5e8921449"


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    with Processes(tmp_path, env=FAST_ENV) as started:
        yield started


def in_files(db_path: Path, value: str) -> list[str]:
    """Which of the .db, -wal, -shm files hold *value* plain, lower-cased or JSON-escaped (any case)."""
    forms = {value, value.lower(), json.dumps(value)[1:-1], json.dumps(value.lower())[1:-1]}
    found = []
    for suffix in ("", "-wal", "-shm"):
        path = Path(str(db_path) + suffix)
        data = path.read_bytes() if path.exists() else b""
        if any(re.search(re.escape(f.encode()), data, re.IGNORECASE) for f in forms):
            found.append(path.name)
    return found


def post(url: str, body: Any) -> dict[str, Any]:
    response = requests.post(f"{url}/webhooks/email", json=body, timeout=10)
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_user_deleted_forgets_clears_marketo_and_leaves_no_trace_in_the_files(procs: Processes) -> None:
    sandbox = procs.sandbox()
    sandbox_post(sandbox.url, "leads", [JANE, JOHN])
    doc = json.loads((SAMPLES / "email.json").read_text(encoding="utf-8"))
    doc["authentication"]["instance"] = sandbox.url
    doc["on_user_deleted"] = "forget_and_clear"
    server = procs.serve(configs=[procs.write_config("email", doc)])
    outbox = Outbox(procs.db_url)
    db_path = Path(procs.db_url[len("sqlite:///") :])

    jane = post(server.url, consent_event("Jane.Doe@Example.com", "e-jane"))["event_id"]
    john = post(server.url, consent_event("john.smith@example.com", "e-john"))["event_id"]
    delivered, _ = outbox.wait_finished([jane, john], 30)
    assert delivered.state == "delivered" and delivered.request_id
    leads = {lead["id"]: lead for lead in sandbox_get(sandbox.url, "leads")}
    assert leads[1]["consentNewsletter"] is True and leads[1]["newsletterTopics"] == "dK7rBBXk"

    deleted = {
        "type": "user.deleted",
        "parameters": {"entity": {"id": JANE_USER, "organization_user_id": "jane.doe@example.com"}},
    }
    answer = post(server.url, deleted)
    assert answer["status"] == "erased" and answer["events_erased"] == 1 and answer["marketo_clear"] == "queued"

    def cleared() -> bool:
        lead = {lead["id"]: lead for lead in sandbox_get(sandbox.url, "leads")}[1]
        return lead.get("consentNewsletter") is False and lead.get("newsletterTopics") == ""

    wait_until(cleared, 30, what="the clearing record reached the sandbox lead")
    (clear,) = outbox.wait_finished([answer["clear_event_id"]], 30)
    assert clear.state == "delivered"
    assert {lead["id"] for lead in sandbox_get(sandbox.url, "leads")} == {1, 2}  # the lead is not deleted
    wait_until(lambda: outbox.event(answer["clear_event_id"]).lead_id is None, 30, what="settled")

    assert in_files(db_path, "john.smith@example.com") != []  # sanity: the scan sees what is stored
    forgot = procs.cli("forget", "john.smith@example.com", "--json", db=True, check=True)
    (by_hand,) = json.loads(forgot.stdout)["erasures"]
    assert by_hand["requested_by"] == "cli" and by_hand["events_erased"] == 1
    erased = outbox.event(jane)
    assert erased.state == "delivered" and erased.request_id == delivered.request_id
    assert [a.outcome for a in erased.attempts] == ["updated", "erased"]
    server.stop()

    assert in_files(db_path, "jane.doe@example.com") == []
    assert in_files(db_path, JANE_USER) == []
    assert in_files(db_path, "john.smith@example.com") == []
