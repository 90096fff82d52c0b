"""The console in a real browser: Debian's Chromium driven by Playwright, against ``connector serve`` and
``connector sandbox`` subprocesses over real HTTP.

One journey, as an admin who never saw the CLI: sign in; upload a broken config and see its problems
at their pointers; fix and save it; copy the webhook URL from the page and post a consent to it; watch
it show as delivered on the overview; open its audit trail and see the requestId; export it as CSV;
make the sandbox fail until an event is dead; replay it from the console and see it delivered.
Screenshots of each step go to ``test-artifacts/console/`` (git-ignored).

These tests FAIL (never skip) when Playwright or /usr/bin/chromium is missing: ``.ci/run`` installs
Chromium; never run ``playwright install`` (its download does not work on these machines).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright  # ImportError = a failure, not a skip

from connector import config
from tests.e2e_helpers import Outbox
from tests.processes import (
    SAMPLES,
    Processes,
    consent_event,
    sample_payload,
    sandbox_clear_faults,
    sandbox_config,
    sandbox_post,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "console"
ADMIN = "browser-test-admin-token"
WAIT_MS = 30_000

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (the browser tests cannot run)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 850}, accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    yield context.new_page()
    context.close()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    env = {
        "CONNECTOR_ADMIN_TOKEN": ADMIN,
        "CONNECTOR_RETRY_DELAYS": "0.2,0.2,0.2,0.2,0.2",
    }
    with Processes(tmp_path, env=env) as started:
        yield started


class Shots:
    """Numbered full-page screenshots of each step."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.n = 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str) -> Path:
        self.n += 1
        path = ARTIFACTS / f"{self.n:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def broken_config(instance: str) -> dict[str, Any]:
    doc = sandbox_config(instance)
    doc["properties"]["user_identifier"] = ["phone"]
    doc["mappings"][1] = {"id": "consentGeolocation"}
    doc["upsert_mod"] = True
    return doc


def outbox_is_empty(db_url: str) -> bool:
    from connector.sqlite_store import SqliteStore

    store = SqliteStore(db_url.removeprefix("sqlite:///"))
    try:
        return store.list_events() == []
    finally:
        store.close()


def test_admin_journey_in_chromium(procs: Processes, page: Page, tmp_path: Path) -> None:
    sandbox = procs.sandbox(leads_file=SAMPLES / "sandbox" / "leads.json")
    server = procs.serve()
    outbox = Outbox(procs.db_url)
    shot = Shots(page)

    # sign in (a wrong token first: the page says so, without saying why)
    page.goto(f"{server.url}/console/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That admin token is not right.")
    page.get_by_label("Admin token").fill(ADMIN)
    shot("sign-in")
    page.get_by_label("Admin token").press("Enter")  # the keyboard works
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()

    # upload a broken config: every problem at its pointer, in `connector validate`'s words
    broken = broken_config(sandbox.url)
    expected = [str(p) for p in config.check(broken)]
    assert len(expected) >= 3
    broken_file = tmp_path / "shop.json"
    broken_file.write_text(json.dumps(broken, indent=2))
    page.get_by_role("link", name="New integration").click()
    page.get_by_label("Integration id").fill("shop")
    page.get_by_label("upload a JSON file").set_input_files(str(broken_file))
    page.get_by_role("button", name="Save").click()
    problems = page.locator("ul.problems li")
    expect(problems).to_have_count(len(expected))
    assert problems.all_inner_texts() == expected
    shot("broken-config")

    # fix it and save it
    broken_file.write_text(json.dumps(sandbox_config(sandbox.url), indent=2))
    page.get_by_label("Integration id").fill("shop")
    page.get_by_label("upload a JSON file").set_input_files(str(broken_file))
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    assert "sandbox-secret" not in page.content()
    shot("saved")

    # check it against the (sandbox) Marketo instance, and try a sample payload as a dry run
    page.get_by_role("button", name="Check against Marketo").click()
    expect(page.locator("ul.findings")).to_contain_text("OK online")
    page.get_by_role("link", name="Try a payload").click()
    page.get_by_label("Sample payload").select_option("opt-in.json")
    page.get_by_role("button", name="Dry run").click()
    expect(page.locator("#marketo-request")).to_contain_text('"email": "jane.doe@example.com"')
    expect(page.locator("#marketo-request")).to_contain_text("/rest/v1/leads.json")
    shot("dry-run")
    assert outbox_is_empty(procs.db_url)
    page.get_by_role("link", name="shop").click()

    # copy the webhook URL from the page and post a consent to it
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy Endpoint URL").click()
    expect(page.get_by_role("button", name="Copy Endpoint URL")).to_have_text("Copied")
    url = str(page.evaluate("navigator.clipboard.readText()")).strip()
    assert url == f"{server.url}/webhooks/shop" == page.locator("code.webhook-url").first.inner_text().strip()
    answer = requests.post(url, json=sample_payload("opt-in.json"), timeout=10)
    assert answer.status_code == 202, answer.text
    event_id = answer.json()["event_id"]

    # the overview shows it delivered, refreshed in place (no reload)
    page.get_by_role("link", name="Overview").click()
    row = page.locator('tr[data-integration="shop"]')
    expect(row.locator("td.delivered")).to_have_text("1")
    expect(row.locator("td.last-delivery")).not_to_have_text("never")
    shot("overview-delivered")

    # its audit trail shows Marketo's requestId
    page.get_by_role("link", name="Events").click()
    page.get_by_label("Email or lead id").fill("JANE.DOE@example.com")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=str(event_id), exact=True).click()
    request_id = outbox.event(event_id).request_id
    assert request_id
    expect(page.locator("code.request-id")).to_have_text(request_id)
    expect(page.locator("dd.outcome")).to_contain_text("updated")
    shot("audit-trail")

    # export it as CSV
    page.go_back()
    page.get_by_label(f"select event {event_id}").check()
    with page.expect_download() as download:
        page.get_by_role("button", name="Export selected as CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [(r["id"], r["state"], r["marketo_request_id"]) for r in rows] == [(str(event_id), "delivered", request_id)]

    # the sandbox fails until an event is dead
    # 611 (Marketo "system error") is answered, so it is retried until dead; a 5xx would open the circuit and hold it
    sandbox_post(sandbox.url, "faults", {"errors": {"code": "611", "count": 1000}})
    failing = requests.post(url, json=consent_event("john.smith@example.com", "consent-dead-1"), timeout=10)
    assert failing.status_code == 202, failing.text
    dead_id = failing.json()["event_id"]
    outbox.wait_finished([dead_id], timeout=60)
    assert outbox.event(dead_id).state == "dead"
    page.get_by_role("link", name="Dead letters").click()
    page.get_by_label("Integration").select_option("shop")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(f'#dead tr[data-event="{dead_id}"]')).to_be_visible()
    page.goto(f"{server.url}/console/")
    expect(page.locator('tr[data-integration="shop"] td.dead')).to_have_text("1")
    shot("overview-outage")
    page.go_back()
    shot("dead-letter")

    # replay it from the console (with a confirmation) and watch it delivered
    sandbox_clear_faults(sandbox.url)
    page.get_by_label(f"select dead letter {dead_id}").check()
    page.get_by_role("button", name="Replay selected").click()
    expect(page.get_by_role("heading", name="Replay 1 dead letter(s)?")).to_be_visible()
    shot("confirm-replay")
    page.get_by_role("button", name="Yes, replay 1").click()
    expect(page.get_by_role("status")).to_contain_text("Replayed 1 dead letter(s).")
    expect(page.locator(f'.watched tr[data-event="{dead_id}"] td.state')).to_have_text("delivered")
    expect(page.locator(f'#dead form tbody tr[data-event="{dead_id}"]')).to_have_count(0)
    shot("replayed-delivered")
    assert outbox.event(dead_id).state == "delivered"


def test_console_pages_need_a_session_in_the_browser_too(procs: Processes, page: Page) -> None:
    server = procs.serve()
    for path in ("/console/", "/console/events", "/console/dead", "/console/events/export?format=csv"):
        page.goto(f"{server.url}{path}")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    cookies = page.context.cookies()
    assert cookies and all(c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies)
