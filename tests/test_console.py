"""The console over HTTP (Flask test client, real SQLite store): sessions, CSRF, secrets, bad input, pages."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connector import config, events
from connector.errors import DeliveryError
from connector.intake import new_event
from connector.models import Integration
from connector.outbox import Finish
from connector.qa import sync_request
from connector.registry import Registry
from connector.settings import Settings
from connector.sqlite_store import SqliteStore
from connector.vault import Vault
from connector.web import ConsoleTools, create_app
from connector.web.console import session
from tests.conftest import Clock
from tests.console_helpers import Console, csrf_of

ADMIN = "console-admin-token-for-tests"
SAMPLES = Path(__file__).resolve().parent.parent / "sample_configs"
SECRETS = (
    "MARKETO-SECRET-123",
    "OAUTH-SECRET-456-long-enough",
    "HEADER-SECRET-789-long-enough",
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ADMIN,
)
CONFIG: dict[str, Any] = {
    "type_id": "marketo",
    "authentication": {
        "client_id": "cid",
        "client_secret": SECRETS[0],
        "instance": "https://123-ABC-456.mktorest.com",
    },
    "properties": {"user_identifier": ["email"]},
    "mappings": [
        {"id": "consentNewsletter", "value": "consents_purposes_newsletter_enabled"},
        {"id": "consentGeolocation", "value": "consents_purposes_geolocation_data_enabled"},
    ],
    "webhook": {
        "oauth": {"client_id": "didomi", "client_secret": SECRETS[1]},
        "header": {"name": "X-Webhook-Secret", "secret": SECRETS[2]},
        "standard_webhooks": {"secret": SECRETS[3]},
    },
}


class Online:
    """A fake online check that records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.answer: list[str] | DeliveryError = []

    def __call__(self, integration: Integration) -> list[str]:
        self.asked.append(integration.id)
        if isinstance(self.answer, DeliveryError):
            raise self.answer
        return self.answer


@pytest.fixture
def online() -> Online:
    return Online()


@pytest.fixture
def registry(store: SqliteStore) -> Registry:
    registry = Registry(store, Vault(None), refresh=0)
    registry.put("acme", copy.deepcopy(CONFIG), "api")
    return registry


@pytest.fixture
def app(store: SqliteStore, registry: Registry, clock: Clock, online: Online) -> Iterator[Flask]:
    app = create_app(
        Settings(admin_token=ADMIN, max_body_bytes=200_000),
        store=store,
        registry=registry,
        clock=clock,
        tools=ConsoleTools(check_online=online, build_request=sync_request),
    )
    yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def console(client: FlaskClient) -> Console:
    return Console(client, ADMIN)


def webhook(client: FlaskClient, name: str = "opt-in.json") -> int:
    """Store a sample payload as the intake would (the test webhook auth is too elaborate to sign here)."""
    app = client.application
    rt = app.extensions["connector"]
    integration = rt.registry.get("acme")
    body = (SAMPLES / "payloads" / name).read_bytes()
    envelope = events.parse_json(body)
    result = events.normalise(envelope, integration.regulations)
    added = rt.store.add_event(new_event(integration, envelope, body, result, rt.clock()))
    assert added.created
    return added.event_id


def deliver(store: SqliteStore, event_id: int, at: float, state: str = "delivered") -> None:
    store.finish([Finish(event_id, state, "updated" if state == "delivered" else "boom", 7, "req-1#abc", at)])


# -- sessions ------------------------------------------------------------------------------------
def console_urls(app: Flask) -> list[tuple[str, str]]:
    """Every console route with sample arguments, and its method."""
    values = {"integration_id": "acme", "event_id": 1, "name": "console.css", "_rest": "x"}
    found = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if not rule.endpoint.startswith("console."):
                continue
            url = app.url_for(rule.endpoint, **{k: values[k] for k in rule.arguments})
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                found.append((method, url))
    return found


def test_every_console_route_refuses_without_a_session(app: Flask, client: FlaskClient, store: SqliteStore) -> None:
    event_id = webhook(client)
    deliver(store, event_id, 1.0)
    urls = console_urls(app)
    assert len(urls) >= 15
    for method, url in urls:
        if url.startswith(("/console/static/", "/console/sign-in")):
            continue
        answer = client.open(url, method=method, data={"csrf_token": "x"})
        assert answer.status_code in (303, 401), (method, url, answer.status_code)
        if answer.status_code == 303:
            assert answer.headers["Location"].startswith("/console/sign-in")
        assert "jane.doe" not in answer.text and "req-1#abc" not in answer.text
        fragment = client.open(url, method=method, headers={"X-Console-Fragment": "1"})
        assert fragment.status_code == 401, (method, url)


def test_console_is_off_without_an_admin_token(store: SqliteStore) -> None:
    client = create_app(Settings(admin_token=None), store=store).test_client()
    for url in ("/console/", "/console/sign-in", "/console/events"):
        answer = client.get(url)
        assert answer.status_code == 404
        assert "CONNECTOR_ADMIN_TOKEN" in answer.text


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_session_cookie_flags(app: Flask, scheme: str) -> None:
    client = app.test_client()
    base = f"{scheme}://localhost"
    page = client.get("/console/sign-in", base_url=base)
    answer = client.post("/console/sign-in", data={"csrf_token": csrf_of(page.text), "token": ADMIN}, base_url=base)
    assert answer.status_code == 303
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"{session.COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert f"Max-Age={session.SESSION_SECONDS}" in cookie
    assert ("Secure" in cookie) == (scheme == "https")


def test_every_wrong_token_gets_the_same_answer(app: Flask) -> None:
    answers = set()
    for i, wrong in enumerate(["", "x", ADMIN[:-1], ADMIN + "x", "é" * 5000, "\x00", " " + ADMIN]):
        client = app.test_client()
        page = client.get("/console/sign-in", environ_base={"REMOTE_ADDR": f"10.0.0.{i}"})
        answer = client.post(
            "/console/sign-in",
            data={"csrf_token": csrf_of(page.text), "token": wrong},
            environ_base={"REMOTE_ADDR": f"10.0.0.{i}"},
        )
        assert answer.status_code == 401
        assert "Set-Cookie" not in answer.headers or "auth" not in answer.headers["Set-Cookie"]
        answers.add(CSRF_FREE.sub("", answer.text))
    assert len(answers) == 1
    assert session.WRONG_TOKEN in answers.pop()


CSRF_FREE = re.compile(r'value="[^"]*"')


def test_repeated_failures_from_one_address_are_slowed_down(app: Flask, clock: Clock) -> None:
    client = app.test_client()
    csrf = csrf_of(client.get("/console/sign-in").text)

    def attempt(token: str) -> int:
        return int(client.post("/console/sign-in", data={"csrf_token": csrf, "token": token}).status_code)

    assert [attempt("wrong") for _ in range(session.FREE_FAILURES)] == [401] * session.FREE_FAILURES
    assert attempt(ADMIN) == 429  # even the right token waits its turn
    other = app.test_client()
    page = other.get("/console/sign-in", environ_base={"REMOTE_ADDR": "10.9.9.9"})
    good = other.post(
        "/console/sign-in",
        data={"csrf_token": csrf_of(page.text), "token": ADMIN},
        environ_base={"REMOTE_ADDR": "10.9.9.9"},
    )
    assert good.status_code == 303  # another address is not slowed
    clock.advance(2.1)
    assert attempt("wrong") == 401
    assert attempt(ADMIN) == 429  # the wait doubles
    clock.advance(4.1)
    assert attempt(ADMIN) == 303


def test_sign_in_needs_the_csrf_token(app: Flask) -> None:
    client = app.test_client()
    client.get("/console/sign-in")
    assert client.post("/console/sign-in", data={"token": ADMIN}).status_code == 403
    assert client.post("/console/sign-in", data={"token": ADMIN, "csrf_token": "forged"}).status_code == 403


def test_session_expires(console: Console, clock: Clock) -> None:
    assert console.get("/console/").status_code == 200
    clock.advance(session.SESSION_SECONDS + 1)
    answer = console.get("/console/")
    assert answer.status_code == 303 and answer.headers["Location"].startswith("/console/sign-in")


def test_a_tampered_cookie_is_no_session(app: Flask, console: Console) -> None:
    cookie = console.client.get_cookie(session.COOKIE, path="/console")
    assert cookie is not None
    forged = cookie.value.replace("ZmFsc2", "dHJ1ZS")[:-2] + "AA"
    client = app.test_client()
    client.set_cookie(session.COOKIE, forged, path="/console")
    assert client.get("/console/").status_code == 303


def test_sign_out_ends_the_session(console: Console) -> None:
    assert console.client.post("/console/sign-out").status_code == 403  # no CSRF token
    answer = console.post("/console/sign-out")
    assert answer.status_code == 303
    assert f"{session.COOKIE}=;" in answer.headers["Set-Cookie"]
    assert console.get("/console/").status_code == 303


# -- CSRF on every state-changing request ------------------------------------------------------
def test_forms_refuse_without_or_with_a_wrong_csrf_token(
    app: Flask, console: Console, store: SqliteStore, registry: Registry
) -> None:
    event_id = webhook(console.client)
    deliver(store, event_id, 1.0, state="dead")
    before_config = store.get_integration("acme")
    posts = [(m, u) for m, u in console_urls(app) if m == "POST" and u != "/console/sign-in"]
    assert {"/console/dead/replay", "/console/integrations/acme", "/console/integrations"} <= {u for _m, u in posts}
    forms = {
        "/console/integrations/acme": {"document": json.dumps({"type_id": "x"})},
        "/console/integrations": {"id": "new1", "document": json.dumps(CONFIG)},
        "/console/dead/replay": {"id": str(event_id), "confirmed": "yes"},
        "/console/integrations/acme/try": {"sample": "opt-out.json", "action": "send"},
    }
    for _method, url in posts:
        for csrf in (None, "wrong", console.csrf[:-1]):
            data = dict(forms.get(url, {}))
            if csrf is not None:
                data["csrf_token"] = csrf
            answer = console.client.post(url, data=data)
            assert answer.status_code == 403, (url, csrf)
            assert "security token" in answer.text
    assert store.get_integration("acme") == before_config
    assert store.get_integration("new1") is None
    record = store.get_event(event_id)
    assert record is not None and record.state == "dead"
    assert len(store.list_events()) == 1
    header = console.client.post(
        "/console/dead/replay", data={"id": str(event_id)}, headers={"X-CSRF-Token": console.csrf}
    )
    assert header.status_code == 200  # the token in a header counts too (the confirmation page)


# -- secrets never shown -------------------------------------------------------------------------
def test_secrets_never_appear_in_any_page_fragment_or_export(app: Flask, console: Console, store: SqliteStore) -> None:
    event_id = webhook(console.client)
    deliver(store, event_id, 1.0)
    pages = [console.get(u) for m, u in console_urls(app) if m == "GET" and "static" not in u]
    pages += [
        console.get(f"/console/events/{event_id}"),
        console.get("/console/events/export?format=csv"),
        console.get(f"/console/events/export?format=json&id={event_id}"),
        console.get("/console/fragments/overview", headers={"X-Console-Fragment": "1"}),
        console.get("/console/integrations/acme"),
        console.post("/console/integrations/acme/check"),
        console.post("/console/integrations/acme/try", {"sample": "opt-in.json", "action": "preview"}),
    ]
    # a save that fails validation must not echo a secret typed into the form
    typed = copy.deepcopy(CONFIG)
    typed["authentication"]["client_secret"] = "TYPED-SECRET-000"
    typed["mappings"] = "not a list"
    pages.append(console.post("/console/integrations/acme", {"document": json.dumps(typed), "action": "save"}))
    pages.append(console.post("/console/integrations/acme", {"document": json.dumps(typed), "action": "validate"}))
    pages.append(console.post("/console/integrations", {"id": "fresh", "document": json.dumps(typed)}))
    for answer in pages:
        for secret in (*SECRETS, "TYPED-SECRET-000"):
            assert secret not in answer.text, (answer.request.path, secret)
    assert "X-Webhook-Secret" in console.get("/console/integrations/acme").text  # header name: yes


# -- the integration page -------------------------------------------------------------------------
def textarea(html: str) -> str:
    found = re.search(r'<textarea id="document"[^>]*>(.*?)</textarea>', html, re.S)
    assert found
    import html as htmllib

    return htmllib.unescape(found.group(1))


def test_saving_the_shown_config_keeps_the_masked_secrets(
    console: Console, registry: Registry, store: SqliteStore
) -> None:
    shown = json.loads(textarea(console.get("/console/integrations/acme").text))
    assert shown["authentication"]["client_secret"] == config.MASK
    shown["mappings"] = shown["mappings"][:1]
    answer = console.post("/console/integrations/acme", {"document": json.dumps(shown), "action": "save"})
    assert answer.status_code == 303
    integration = registry.get("acme")
    assert integration is not None
    assert integration.client_secret == SECRETS[0]
    assert integration.webhook is not None and integration.webhook.header_secret == SECRETS[2]
    assert len(integration.mappings) == 1
    assert "Saved." in console.get(answer.headers["Location"]).text


def test_an_invalid_config_shows_every_problem_at_its_pointer_and_changes_nothing(
    console: Console, store: SqliteStore
) -> None:
    before = store.get_integration("acme")
    broken = json.loads((SAMPLES / "broken.json").read_text())
    expected = config.check(broken)
    assert len(expected) >= 2
    answer = console.post(
        "/console/integrations/acme",
        {"upload": (io.BytesIO(json.dumps(broken).encode()), "broken.json"), "action": "save"},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 422
    import html as htmllib

    text = htmllib.unescape(answer.text)
    for problem in expected:
        assert f'{problem.path or "/"}</code>: <span class="problem-message">{problem.message}' in text
    assert "nothing was saved" in text
    assert store.get_integration("acme") == before


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("{not json", "invalid JSON at line 1, column 2"),
        ('{"a": 1, "a": 2}', "duplicate key"),
        ("", "the config is empty"),
        ("[1, NaN]", "invalid JSON"),
    ],
)
def test_bad_json_gets_the_validate_words(console: Console, store: SqliteStore, body: str, words: str) -> None:
    before = store.get_integration("acme")
    answer = console.post("/console/integrations/acme", {"document": body, "action": "save"})
    assert answer.status_code == 422
    assert words in answer.text
    assert store.get_integration("acme") == before


def test_a_huge_upload_is_a_clear_page(console: Console, store: SqliteStore) -> None:
    before = store.get_integration("acme")
    answer = console.post(
        "/console/integrations/acme",
        {"upload": (io.BytesIO(b" " * 300_000), "big.json"), "action": "save"},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 413
    assert "larger than 200000 bytes" in answer.text and "<html" in answer.text
    assert "Traceback" not in answer.text
    assert store.get_integration("acme") == before


def test_create_validates_the_id_and_refuses_an_existing_one(console: Console, store: SqliteStore) -> None:
    bad = console.post("/console/integrations", {"id": "../x", "document": json.dumps(CONFIG)})
    assert bad.status_code == 422 and "integration id must be" in bad.text
    taken = console.post("/console/integrations", {"id": "acme", "document": json.dumps(CONFIG)})
    assert taken.status_code == 409
    made = console.post("/console/integrations", {"id": "beta", "document": json.dumps(CONFIG), "action": "save"})
    assert made.status_code == 303 and made.headers["Location"].endswith("/console/integrations/beta?saved=1")
    assert store.get_integration("beta") is not None


def test_webhook_settings_show_what_to_paste(console: Console) -> None:
    text = console.get("/console/integrations/acme").text
    assert "http://localhost/webhooks/acme" in text
    assert "http://localhost/oauth/token" in text
    assert ">didomi<" in text and "X-Webhook-Secret" in text


def test_check_against_marketo_shows_its_findings(console: Console, online: Online) -> None:
    online.answer = ["/mappings/0/id: Marketo has no lead field 'consentNewsletter'"]
    answer = console.post("/console/integrations/acme/check")
    assert online.asked == ["acme"]
    assert "/mappings/0/id: Marketo has no lead field" in answer.text
    online.answer = DeliveryError("Marketo answered 601: access token invalid")
    answer = console.post("/console/integrations/acme/check")
    assert "cannot check against https://123-ABC-456.mktorest.com: Marketo answered 601" in answer.text
    online.answer = []
    assert "no problem found" in console.post("/console/integrations/acme/check").text


def test_unknown_ids_get_a_page_not_a_500(console: Console) -> None:
    for url in (
        "/console/integrations/nope",
        "/console/integrations/..%2F..",
        "/console/integrations/nope/try",
        "/console/events/999",
        f"/console/events/{2**70}",
        "/console/no-such-page",
    ):
        answer = console.get(url)
        assert answer.status_code == 404, url
        assert "<html" in answer.text and "Traceback" not in answer.text


# -- try a payload -----------------------------------------------------------------------------------
def test_try_a_payload_dry_run_shows_the_exact_request_and_stores_nothing(console: Console, store: SqliteStore) -> None:
    answer = console.post("/console/integrations/acme/try", {"sample": "opt-in.json", "action": "preview"})
    assert answer.status_code == 200
    shown = re.search(r'<pre class="json" id="marketo-request">(.*?)</pre>', answer.text, re.S)
    assert shown
    import html as htmllib

    request = json.loads(htmllib.unescape(shown.group(1)))
    integration = Registry(store).get("acme")
    assert integration is not None
    assert request["url"] == "https://123-ABC-456.mktorest.com/rest/v1/leads.json"
    assert request["json"]["input"] == [
        {"email": "jane.doe@example.com", "consentNewsletter": True, "consentGeolocation": True}
    ]
    assert store.list_events() == []


def test_try_a_payload_send_goes_through_the_intake(console: Console, store: SqliteStore) -> None:
    answer = console.post("/console/integrations/acme/try", {"sample": "opt-in.json", "action": "send"})
    assert "Stored as" in answer.text
    (record,) = store.list_events()
    assert record.state == "pending" and record.lookup_value == "jane.doe@example.com"
    again = console.post("/console/integrations/acme/try", {"sample": "opt-in.json", "action": "send"})
    assert "Already received as" in again.text
    assert len(store.list_events()) == 1


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"payload": "{oops"}, "invalid JSON"),
        ({"payload": "[]"}, "must be"),
        ({"payload": ""}, "paste a payload or pick a sample"),
        ({"sample": "../../etc/passwd"}, "no sample payload named"),
    ],
)
def test_try_a_bad_payload_is_a_message(console: Console, store: SqliteStore, data: dict[str, str], words: str) -> None:
    answer = console.post("/console/integrations/acme/try", {**data, "action": "send"})
    assert answer.status_code == 422
    assert words in answer.text
    assert store.list_events() == []


# -- events and exports ----------------------------------------------------------------------------
def test_events_search_by_email_state_and_time(console: Console, store: SqliteStore, clock: Clock) -> None:
    first = webhook(console.client, "opt-in.json")
    clock.advance(3600)
    second = webhook(console.client, "no-choice.json")
    deliver(store, first, clock.now)

    def ids(query: str) -> set[int]:
        text = console.get(f"/console/events?{query}").text
        return {int(i) for i in re.findall(r'name="id" value="(\d+)"', text)}

    assert ids("lookup=JANE.DOE@example.com") == {first}
    assert ids("state=pending") == {second}
    assert ids("integration=acme") == {first, second}
    assert ids("lookup=7") == {first}  # a Marketo lead id
    from datetime import UTC, datetime

    mid = datetime.fromtimestamp(clock.now - 1800, UTC).strftime("%Y-%m-%dT%H:%M")
    assert ids(f"since={mid}") == {second}
    assert ids(f"until={mid}") == {first}
    bad = console.get("/console/events?since=yesterday")
    assert bad.status_code == 422 and "since must be a date and time" in bad.text
    assert console.get("/console/events?state=lost").status_code == 422


def test_an_event_opens_its_audit_trail(console: Console, store: SqliteStore) -> None:
    event_id = webhook(console.client)
    deliver(store, event_id, 1.0)
    text = console.get(f"/console/events/{event_id}").text
    assert "req-1#abc" in text and "jane.doe@example.com" in text and "updated (lead 7)" in text


def test_export_selected_as_csv_and_json(console: Console, store: SqliteStore) -> None:
    first = webhook(console.client, "opt-in.json")
    webhook(console.client, "no-choice.json")
    deliver(store, first, 1.0)
    answer = console.get(f"/console/events/export?format=csv&id={first}")
    assert answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["id"] for r in rows] == [str(first)]
    assert rows[0]["marketo_request_id"] == "req-1#abc" and rows[0]["lookup_value"] == "jane.doe@example.com"
    doc = console.get(f"/console/events/export?format=json&id={first}").json
    assert [e["id"] for e in doc["events"]] == [first]
    assert doc["events"][0]["attempts"] is not None
    everything = console.get("/console/events/export?format=json&integration=acme").json
    assert len(everything["events"]) == 2
    assert console.get("/console/events/export?format=xml").status_code == 400
    assert console.get("/console/events/export?id=abc").status_code == 400


def test_csv_cells_cannot_run_as_formulas() -> None:
    from connector.web.console.events import to_csv

    text = to_csv([{"id": 1, "outcome": "=HYPERLINK(1)", "lookup": {"field": "email", "value": "@x"}}])
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["outcome"] == "'=HYPERLINK(1)" and row["lookup_value"] == "'@x"


# -- dead letters ---------------------------------------------------------------------------------
def test_replay_asks_first_then_replays_only_dead_letters(console: Console, store: SqliteStore) -> None:
    dead = webhook(console.client, "opt-in.json")
    done = webhook(console.client, "no-choice.json")
    deliver(store, dead, 1.0, state="dead")
    deliver(store, done, 1.0)
    listed = console.get("/console/dead?integration=acme").text
    assert f'value="{dead}"' in listed and f'value="{done}"' not in listed
    confirm = console.post("/console/dead/replay", {"id": [str(dead), str(done)], "scope": "selected"})
    assert confirm.status_code == 200 and "Replay 2 dead letter(s)?" in confirm.text
    record = store.get_event(dead)
    assert record is not None and record.state == "dead"  # nothing happens before confirming
    answer = console.post("/console/dead/replay", {"id": [str(dead), str(done)], "confirmed": "yes"})
    assert answer.status_code == 303
    page = console.get(answer.headers["Location"]).text
    assert "Replayed 1 dead letter(s). 1 were not dead letters" in page
    states = {r.id: r.state for r in store.list_events()}
    assert states == {dead: "pending", done: "delivered"}


def test_replay_all_of_an_integration(console: Console, store: SqliteStore) -> None:
    ids = [webhook(console.client, n) for n in ("opt-in.json", "no-choice.json")]
    for i in ids:
        deliver(store, i, 1.0, state="dead")
    assert console.post("/console/dead/replay", {"scope": "all"}).status_code == 400  # which integration?
    confirm = console.post("/console/dead/replay", {"scope": "all", "integration": "acme"})
    assert "Replay 2 dead letter(s)?" in confirm.text
    answer = console.post(
        "/console/dead/replay", {"id": [str(i) for i in ids], "integration": "acme", "confirmed": "yes"}
    )
    assert answer.status_code == 303
    assert {r.state for r in store.list_events()} == {"pending"}


@pytest.mark.parametrize("ids", [[], ["abc"], ["999"], [str(2**70)]])
def test_replaying_nothing_or_junk_is_a_message(console: Console, store: SqliteStore, ids: list[str]) -> None:
    event_id = webhook(console.client)
    answer = console.post("/console/dead/replay", {"id": ids, "confirmed": "yes"})
    assert answer.status_code in (303, 400)
    if answer.status_code == 303:
        assert "Replayed 0 dead letter(s)" in console.get(answer.headers["Location"]).text
    record = store.get_event(event_id)
    assert record is not None and record.state == "pending"


# -- overview ----------------------------------------------------------------------------------
def test_overview_row_and_chart(console: Console, store: SqliteStore, clock: Clock) -> None:
    first = webhook(console.client, "opt-in.json")
    webhook(console.client, "no-choice.json")
    clock.advance(90)
    deliver(store, first, clock.now - 30)
    store.set_pause("https://123-ABC-456.mktorest.com", clock.now + 600, "607 daily quota")
    text = console.get("/console/fragments/overview", headers={"X-Console-Fragment": "1"}).text
    row = re.search(r'<tr data-integration="acme">(.*?)</tr>', text, re.S)
    assert row
    cells = row.group(1)
    assert "http://localhost/webhooks/acme" in cells
    assert '<td class="num pending">1</td>' in cells and '<td class="num delivered">1</td>' in cells
    assert "1 min" in cells  # the oldest pending event's age
    assert "paused (607 daily quota)" in cells
    assert "0 / 100 per 20 s" in cells
    assert "<svg" in text and "1 delivered" in text
    assert "last day, per hour" in console.get("/console/?span=day").text


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/webhooks/acme", "/console\\..\\x"])
def test_sign_in_only_returns_inside_the_console(app: Flask, target: str) -> None:
    client = app.test_client()
    page = client.get("/console/sign-in")
    answer = client.post("/console/sign-in", data={"csrf_token": csrf_of(page.text), "token": ADMIN, "next": target})
    assert answer.status_code == 303 and answer.headers["Location"] == "/console/"


def test_pages_carry_security_headers(console: Console) -> None:
    answer = console.get("/console/")
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Cache-Control"] == "no-store"


def test_a_pending_events_trail_refreshes_until_it_is_finished(console: Console, store: SqliteStore) -> None:
    event_id = webhook(console.client)
    page = console.get(f"/console/events/{event_id}").text
    assert f'data-poll="/console/fragments/events/{event_id}"' in page
    fragment = console.get(f"/console/fragments/events/{event_id}", headers={"X-Console-Fragment": "1"}).text
    assert "pending" in fragment and "data-poll-stop" not in fragment
    deliver(store, event_id, 1.0)
    fragment = console.get(f"/console/fragments/events/{event_id}", headers={"X-Console-Fragment": "1"}).text
    assert "req-1#abc" in fragment and "data-poll-stop" in fragment
    assert "data-poll=" not in console.get(f"/console/events/{event_id}").text
