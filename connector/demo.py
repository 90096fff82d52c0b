"""``connector demo``: the sandbox and the connector on free ports, the sample payloads over real HTTP.

Needs no account and no configuration: it seeds two leads in a local Marketo stand-in, loads the
sample integrations pointed at it, posts each sample consent payload to the real webhook, waits
for its outcome and prints the leads before and after with every event's outcome. Exit 0 when
every outcome is the expected one.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

from connector import data
from connector.settings import Settings

SAMPLES = data.SAMPLES  # package data, so the demo runs from an installed wheel
COLUMNS = ("id", "email", "consentNewsletter", "consentNewsletterText", "consentGeolocation", "newsletterTopics")


@dataclass(frozen=True)
class Step:
    integration: str
    payload: str
    expect: str  # the start of the expected outcome
    note: str


SCENARIO = (
    Step("email", "opt-in.json", "updated", "Jane opts in to the newsletter"),
    Step("email", "opt-out.json", "updated", "Jane opts out (a newer consent)"),
    Step("email", "opt-in.json", "duplicate", "Didomi redelivers the opt-in"),
    Step("email", "pending-approval.json", "ignored: pending_approval", "John's consent awaits approval"),
    Step("email", "cpra.json", "ignored: regulation", "a CPRA event; the integration takes GDPR only"),
    Step("email", "no-choice.json", "updated", "John: no newsletter choice (null), geolocation on"),
    Step("email", "unknown-user.json", "skipped: unknown user", "a person Marketo does not know (update only)"),
    Step("upsert", "unknown-user.json", "created", "the same person, through an upsert integration"),
    Step("leadid", "lead-id.json", "skipped: stale", "an older consent for lead id 1 (Jane) arrives late"),
    Step("email", "user-updated.json", "ignored: user_event", "a user.* event"),
    Step("email", "event-deleted.json", "ignored: deleted_event", "an event.deleted"),
    Step("email", "guest.json", "ignored: no_organization_user_id", "a guest with no organization user id"),
)


def run_demo(*, keep: bool = False, out: Any = print) -> int:
    """Run the scenario; return the exit code."""
    from waitress.server import create_server

    from connector.console_tools import marketo_tools
    from connector.sandbox.server import SandboxServer
    from connector.service import build
    from connector.web import create_app

    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="connector-demo-")
    sandbox = SandboxServer()
    sandbox.start()
    token = secrets.token_urlsafe(12)  # a throwaway admin token for this demo's console
    service = build(Settings(database_url=f"sqlite:///{tmp}/demo.db", admin_token=token))
    server = None
    try:
        _seed(sandbox.url)
        for name in ("email", "upsert", "leadid"):
            doc = json.loads((SAMPLES / f"{name}.json").read_text())
            doc["authentication"]["instance"] = sandbox.url
            service.registry.put(name, doc, "file")
        app = create_app(
            service.settings,
            store=service.store,
            registry=service.registry,
            on_enqueue=service.wake.set,
            tools=marketo_tools(service.governor),
        )
        server = create_server(app, host="127.0.0.1", port=0, threads=4)
        threading.Thread(target=server.run, daemon=True).start()
        threading.Thread(target=service.worker().run_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.effective_port}"
        out(f"Marketo sandbox  {sandbox.url}\nconnector        {base}   (database {tmp}/demo.db)")
        out(f"console          {base}/console/   admin token {token}  (a throwaway token for this demo)\n")
        before = _leads(sandbox.url)
        rows = [_play(step, base, service) for step in SCENARIO]
        after = _leads(sandbox.url)
        code = _report(out, rows, before, after, started, tmp, keep)
        if keep:
            out(f"\nstill running: open {base}/console/ (admin token {token}); Ctrl-C to stop")
            wait_forever()
    finally:
        service.stop.set()
        if server is not None:
            server.close()
        sandbox.stop()
    return code


def _report(
    out: Any,
    rows: list[list[Any]],
    before: list[dict[str, Any]],
    after: list[dict[str, Any]],
    started: float,
    tmp: str,
    keep: bool,
) -> int:
    out("Leads in the Marketo sandbox, before:")
    out(_table(COLUMNS, [[lead.get(c) for c in COLUMNS] for lead in before]))
    out("\nEvents, in the order sent:")
    out(_table(("#", "integration", "payload", "what happens", "outcome", "ok"), rows))
    out("\nLeads in the Marketo sandbox, after:")
    out(_table(COLUMNS, [[lead.get(c) for c in COLUMNS] for lead in after]))
    failures = [r for r in rows if r[-1] != "yes"]
    elapsed = time.monotonic() - started
    if keep:
        out(f"\ndatabase kept: {tmp}/demo.db  (try: connector events list --db sqlite:///{tmp}/demo.db)")
    if failures:
        out(f"\n{len(failures)} of {len(rows)} outcomes were not the expected ones ({elapsed:.1f} s)")
        return 1
    out(f"\nall {len(rows)} outcomes as expected ({elapsed:.1f} s)")
    return 0


def wait_forever(sleep: Any = time.sleep) -> None:
    """Block until Ctrl-C (KeyboardInterrupt ends the demo's ``--keep`` run)."""
    try:
        while True:
            sleep(3600)
    except KeyboardInterrupt:
        pass


def _seed(url: str) -> None:
    leads = json.loads((SAMPLES / "sandbox" / "leads.json").read_text())  # the leads the sample payloads name
    response = requests.post(f"{url}/_sandbox/leads", json=leads, timeout=10)
    response.raise_for_status()


def _leads(url: str) -> list[dict[str, Any]]:
    data = requests.get(f"{url}/_sandbox/leads", timeout=10).json()
    leads = data.get("leads", data) if isinstance(data, dict) else data
    return sorted(leads, key=lambda lead: lead.get("id", 0))


def _play(step: Step, base: str, service: Any) -> list[Any]:
    number = SCENARIO.index(step) + 1
    body = (SAMPLES / "payloads" / step.payload).read_bytes()
    response = requests.post(
        f"{base}/webhooks/{step.integration}", data=body, headers={"Content-Type": "application/json"}, timeout=10
    )
    answer = response.json()
    outcome = _outcome(answer, service)
    ok = "yes" if outcome.startswith(step.expect) else f"NO (expected {step.expect})"
    return [number, step.integration, step.payload, step.note, outcome, ok]


def _outcome(answer: dict[str, Any], service: Any) -> str:
    from connector.audit import outcome

    if answer.get("status") == "duplicate":
        return "duplicate (stored and applied once)"
    event_id = answer.get("event_id")
    if not isinstance(event_id, int):
        return f"refused: {answer}"
    deadline = time.monotonic() + 20
    while True:
        record = service.store.get_event(event_id)
        if record is not None and (record.state != "pending" or time.monotonic() > deadline):
            return str(outcome(record))
        time.sleep(0.05)


def _table(header: tuple[str, ...], rows: list[list[Any]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line, rule, *body])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return json.dumps(value) if isinstance(value, bool) else str(value)
