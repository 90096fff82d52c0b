"""Erasure (``user.deleted``, ``connector forget``): the webhook intake (Flask test client), the real worker
with a scripted Marketo client, the real store on both backends, and afterwards what is left: the raw
bytes of the SQLite files, or every column of every PostgreSQL table."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from connector import config, erasure, erasure_disk
from connector.cli import main
from connector.erasure_sqlite import for_store
from connector.errors import ConfigError
from connector.governor import Governor
from connector.marketo import RecordResult, SyncResult
from connector.outbox import NewEvent
from connector.registry import Registry
from connector.settings import Settings, WorkerSettings
from connector.sqlite_store import SqliteStore
from connector.vault import Vault
from connector.web import create_app
from connector.worker import Worker
from tests.conftest import BACKENDS, Clock, backend_store

SAMPLES = Path(__file__).resolve().parent.parent / "sample_configs"
EMAIL = "Jane.Doe+news@Example.com"  # stored as received; matched case-insensitively
USER_ID = "a3722cd3-f2e4-4451-a564-83f5e8921449"
OTHER = "john.smith@example.com"
CONFIG: dict[str, Any] = {
    "type_id": "marketo",
    "authentication": {"client_id": "cid", "client_secret": "MARKETO-SECRET-123", "instance": "https://1.mktorest.com"},
    "properties": {"user_identifier": ["email"]},
    "mappings": [
        {"id": "consentNewsletter", "value": "consents_purposes_newsletter_enabled"},
        {"id": "newsletterTopics", "value": "consents_purposes_audientse-fxqe89b2_values_jmHmf37H_value"},
        {"id": "didomiUserKey", "value": "organization_user_id"},
    ],
}


def consent(
    email: str, entity_id: str, *, enabled: bool = True, at: str = "2024-05-02T09:12:44.120Z"
) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((SAMPLES / "payloads" / "opt-in.json").read_text())
    entity = body["parameters"]["entity"]
    entity.update(id=entity_id, updated_at=at)
    entity["user"].update(id=USER_ID if email == EMAIL else "other-user", organization_user_id=email)
    entity["consents"]["purposes"][0]["enabled"] = enabled
    return body


def user_deleted(email: str | None = EMAIL, user_id: str = USER_ID) -> dict[str, Any]:
    entity: dict[str, Any] = {"id": user_id, "organization_id": "acme"}
    if email is not None:
        entity["organization_user_id"] = email
    return {"type": "user.deleted", "parameters": {"entity": entity}}


class FakeMarketo:
    """Answers every record "updated" with a lead id per email; ``during`` runs inside a call (in flight)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[dict[str, Any]]]] = []
        self.during: Any = None
        self.ids = {EMAIL.lower(): 4242, OTHER: 77}

    def sync_leads(
        self, action: str, lookup_field: str, records: Sequence[dict[str, Any]], partition: str | None = None
    ) -> SyncResult:
        self.calls.append((action, lookup_field, [dict(r) for r in records]))
        if self.during is not None:
            hook, self.during = self.during, None
            hook()
        results = [RecordResult("updated", self.ids.get(str(r.get("email", "")).lower(), r.get("id"))) for r in records]
        return SyncResult(f"req-{len(self.calls)}", results)

    def describe(self) -> list[Any]:
        return []


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from backend_store(backend, tmp_path, request)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of the test's database, for the CLI."""
    return str(request.getfixturevalue("pg_url")) if backend == "postgres" else f"sqlite:///{tmp_path / 'connector.db'}"


@pytest.fixture(autouse=True)
def plain_sqlite(request: pytest.FixtureRequest) -> None:
    """Ordinary writes do not zero freed bytes, as in SQLite builds without SQLITE_SECURE_DELETE (Debian's has it).

    Only for tests with a store (the pure ones run once, on no backend).
    """
    if "store" in request.fixturenames and request.getfixturevalue("backend") == "sqlite":
        request.getfixturevalue("store")._connect().execute("PRAGMA secure_delete=OFF")


Leftovers = Callable[[str], list[str]]


@pytest.fixture
def leftovers(backend: str, db_url: str, tmp_path: Path) -> Leftovers:
    """Where any spelling of a value is still stored: SQLite file names, or PostgreSQL table names."""
    if backend == "sqlite":
        return lambda value: files_contain(tmp_path / "connector.db", value)
    return lambda value: tables_contain(db_url, value)


@pytest.fixture
def registry(store: SqliteStore) -> Registry:
    registry = Registry(store, Vault(None))
    registry.put("acme", copy.deepcopy(CONFIG), "file")
    return registry


@pytest.fixture
def app(store: SqliteStore, registry: Registry, clock: Clock) -> Iterator[Flask]:
    yield create_app(Settings(), store=store, registry=registry, clock=clock)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def marketo() -> FakeMarketo:
    return FakeMarketo()


@pytest.fixture
def worker(store: SqliteStore, registry: Registry, clock: Clock, marketo: FakeMarketo) -> Worker:
    governor = Governor(store, clock=clock, sleep=clock.sleep)
    return Worker(
        store,
        registry,
        governor,
        settings=WorkerSettings(),
        clients=lambda _i: marketo,
        clock=clock,
        sleep=clock.sleep,
    )


def post(client: FlaskClient, body: Any) -> dict[str, Any]:
    response = client.post("/webhooks/acme", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 202, response.get_data(as_text=True)
    answer: dict[str, Any] = response.json  # type: ignore[assignment]
    return answer


def spellings(value: str) -> list[bytes]:
    """Every encoding the connector could have stored *value* in: plain, lower case, JSON-escaped."""
    forms = {value, value.lower(), json.dumps(value)[1:-1], json.dumps(value.lower())[1:-1]}
    forms |= {json.dumps(v, ensure_ascii=False)[1:-1] for v in (value, value.lower())}
    return [f.encode("utf-8") for f in forms]


def files_contain(db_path: Path, value: str) -> list[str]:
    """Which of the .db, -wal and -shm files hold any spelling of *value* (case-insensitive)."""
    found = []
    for suffix in ("", "-wal", "-shm"):
        path = Path(str(db_path) + suffix)
        data = path.read_bytes() if path.exists() else b""
        if any(re.search(re.escape(form), data, re.IGNORECASE) for form in spellings(value)):
            found.append(path.name)
    return found


def tables_contain(url: str, value: str) -> list[str]:
    """Which PostgreSQL tables hold a row with any spelling of *value* in any column (case-insensitive)."""
    forms = sorted({f.decode("utf-8") for f in spellings(value)})
    found = []
    with psycopg.connect(url, autocommit=True) as conn:
        columns: dict[str, list[str]] = {}
        for table, column in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "ORDER BY table_name, ordinal_position"
        ):
            columns.setdefault(table, []).append(column)
        for table, names in columns.items():
            text = "concat_ws(chr(1), " + ", ".join(f'"{n}"::text' for n in names) + ")"
            hit = conn.execute(
                f'SELECT 1 FROM "{table}" WHERE lower({text}) LIKE ANY(%s) LIMIT 1',
                (["%" + f.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for f in forms],),
            ).fetchone()
            if hit is not None:
                found.append(table)
    return found


def outcomes(store: SqliteStore, event_id: int) -> list[str]:
    record = store.get_event(event_id)
    assert record is not None
    return [a.outcome for a in record.attempts]


# -- the webhook flow --------------------------------------------------------------------------
def test_user_deleted_webhook_forgets_the_person_and_nothing_is_left_in_the_files(
    client: FlaskClient, store: SqliteStore, worker: Worker, clock: Clock, leftovers: Leftovers
) -> None:
    delivered = post(client, consent(EMAIL, "e-1"))["event_id"]
    other = post(client, consent(OTHER, "e-other"))["event_id"]
    assert worker.drain() == 2
    clock.advance(60)
    updated = post(client, consent(EMAIL, "e-2", enabled=False, at="2024-06-01T00:00:00Z"))["event_id"]
    before = store.get_event(delivered)
    assert before is not None and before.state == "delivered" and before.lead_id == 4242
    assert leftovers(EMAIL)  # the check below can see the email

    answer = post(client, user_deleted())

    assert answer["status"] == "erased", answer
    assert answer["events_erased"] == 2 and answer["pending_skipped"] == 1 and answer["in_flight"] == 0
    assert answer["watermarks_deleted"] >= 1 and answer["aliases_deleted"] == 1
    assert answer["subject"].startswith("hmac-sha256:") and answer["marketo_clear"] == "not_configured"
    assert worker.drain() == 0  # the pending opt-out is never delivered
    record = store.get_event(delivered)
    assert record is not None
    assert record.state == "delivered" and record.request_id == "req-1"  # the outcome stays
    assert record.lookup_value == answer["subject"]  # the salted hash of the same email
    assert record.sent == {"email": "[erased]", "consentNewsletter": "[erased]", **_topic_and_key()}
    assert record.consent["erased"] == answer["erasure_id"]
    assert "properties" not in record.consent and record.lead_id is None
    assert outcomes(store, delivered) == ["updated", "erased"]
    skipped = store.get_event(updated)
    assert skipped is not None and skipped.state == "skipped" and skipped.reason == "erased"
    (recorded,) = for_store(store).erasures()  # type: ignore[union-attr]
    assert recorded.requested_by == "webhook" and recorded.integration_id == "acme" and recorded.events == 2
    assert recorded.subject_hash == answer["subject"] and recorded.completed_at is not None
    request = store.get_event(answer["event_id"])
    assert request is not None and request.state == "ignored" and request.event_type == "user.deleted"
    assert request.didomi_event_id is None
    still = store.get_event(other)
    assert still is not None and still.lookup_value == OTHER  # nobody else is touched

    store.close()
    assert leftovers(EMAIL) == []
    assert leftovers(USER_ID) == []
    assert leftovers(OTHER) != []  # sanity: the scan finds what is still there


def _topic_and_key() -> dict[str, str]:
    return {"newsletterTopics": "[erased]", "didomiUserKey": "[erased]"}


def test_a_non_ascii_email_is_found_and_erased_in_every_spelling(
    client: FlaskClient, store: SqliteStore, worker: Worker, leftovers: Leftovers
) -> None:
    email = "Zoë.Ünal@Exämple.com"
    event_id = post(client, consent(email, "e-zoe"))["event_id"]
    worker.drain()
    assert leftovers(email)

    answer = post(client, user_deleted(email.lower()))

    assert answer["events_erased"] == 1
    record = store.get_event(event_id)
    assert record is not None and record.lookup_value == answer["subject"]
    store.close()
    assert leftovers(email) == []


def test_user_deleted_without_any_identifier_is_acknowledged_and_ignored(client: FlaskClient) -> None:
    answer = post(client, {"type": "user.deleted", "parameters": {"entity": {}}})
    assert answer["status"] == "ignored" and answer["reason"] == "user_deleted_without_identifier"


def test_a_digit_identifier_in_an_email_integration_is_not_taken_for_a_lead_id(
    client: FlaskClient, store: SqliteStore, worker: Worker
) -> None:
    john = post(client, consent(OTHER, "e-john"))["event_id"]
    worker.drain()  # John's lead id is 77
    digits = post(client, consent("77", "e-digits"))["event_id"]  # someone whose organization_user_id is "77"

    answer = post(client, user_deleted("77"))

    assert answer["events_erased"] == 1
    record = store.get_event(john)
    assert record is not None and record.lookup_value == OTHER and record.lead_id == 77
    erased = store.get_event(digits)
    assert erased is not None and erased.reason == "erased"


def test_user_deleted_must_authenticate_like_any_webhook(
    client: FlaskClient, store: SqliteStore, registry: Registry
) -> None:
    webhook = {"header": {"name": "X-Webhook-Secret", "secret": "a-long-enough-shared-secret-value"}}
    registry.put("acme", {**copy.deepcopy(CONFIG), "webhook": webhook}, "file")
    headers = {"X-Webhook-Secret": "a-long-enough-shared-secret-value"}
    queued = client.post(
        "/webhooks/acme", data=json.dumps(consent(EMAIL, "e-1")), content_type="application/json", headers=headers
    )
    assert queued.status_code == 202

    refused = client.post("/webhooks/acme", data=json.dumps(user_deleted()), content_type="application/json")

    assert refused.status_code == 401
    record = store.get_event(queued.json["event_id"])  # type: ignore[index]
    assert record is not None and record.state == "pending" and record.lookup_value == EMAIL
    assert for_store(store).erasures() == []  # type: ignore[union-attr]


def test_dead_letters_are_closed_so_a_replay_cannot_send_them(
    client: FlaskClient, store: SqliteStore, worker: Worker, marketo: FakeMarketo, clock: Clock
) -> None:
    dead = post(client, consent(EMAIL, "e-dead"))["event_id"]
    (claimed,) = store.claim(clock(), 10, clock() + 60, worker.owner)
    worker._dead([claimed], f"Marketo 1003: bad value for {EMAIL}", clock())

    answer = post(client, user_deleted())

    assert answer["dead_closed"] == 1
    record = store.get_event(dead)
    assert record is not None and record.state == "skipped"
    assert record.reason == "erased (was dead: Marketo 1003: bad value for [erased])"
    assert store.replay(None, clock()) == 0 and worker.drain() == 0 and marketo.calls == []


def test_copies_left_in_free_space_by_earlier_writes_are_vacuumed(
    store: SqliteStore, registry: Registry, backend: str, leftovers: Leftovers
) -> None:
    store.add_event(
        NewEvent("acme", "k-1", 1.0, "skipped", reason="nothing to write", consent={"organization_user_id": EMAIL})
    )
    assert store.prune(2.0) == 1  # an ordinary delete: the row's bytes stay in a free page
    if backend == "sqlite":  # file scrubbing is SQLite's; PostgreSQL has no live row left to find
        erasure_disk.checkpoint(store)
        assert leftovers(EMAIL) == ["connector.db"]
    else:
        assert leftovers(EMAIL) == []

    subject = erasure.Subject(frozenset({EMAIL.lower()}))
    (result,) = erasure.forget(store, registry, subject, integration_ids=["acme"], requested_by="cli", now=3.0)

    assert result.events == 0 and result.residue == ("vacuumed" if backend == "sqlite" else "not_checked")
    assert [e.integration_id for e in for_store(store).erasures()] == ["acme"]  # type: ignore[union-attr]
    store.close()
    assert leftovers(EMAIL) == []


def test_an_identifier_still_used_by_another_integration_is_not_vacuumed_for(
    client: FlaskClient, store: SqliteStore, registry: Registry, worker: Worker, backend: str, leftovers: Leftovers
) -> None:
    registry.put("beta", copy.deepcopy(CONFIG), "file")
    post(client, consent(EMAIL, "e-1"))
    client.post("/webhooks/beta", data=json.dumps(consent(EMAIL, "e-b")), content_type="application/json")
    subject = erasure.Subject(frozenset({EMAIL.lower()}))
    (result,) = erasure.forget(store, registry, subject, integration_ids=["acme"], requested_by="cli", now=3.0)
    assert result.events == 1 and result.residue == ("kept" if backend == "sqlite" else "not_checked")
    (kept,) = store.list_events(integration_id="beta")
    assert kept.lookup_value == EMAIL and kept.state == "pending"
    assert leftovers(EMAIL) != []  # beta's event still holds it


# -- in flight ---------------------------------------------------------------------------------
def test_an_event_in_flight_is_erased_once_its_delivery_is_recorded(
    client: FlaskClient, store: SqliteStore, registry: Registry, worker: Worker, marketo: FakeMarketo, clock: Clock,
    leftovers: Leftovers,
) -> None:  # fmt: skip
    event_id = post(client, consent(EMAIL, "e-1"))["event_id"]
    results: list[erasure.ErasureResult] = []
    subject = erasure.Subject(frozenset({EMAIL.lower()}))
    marketo.during = lambda: results.extend(
        erasure.forget(store, registry, subject, integration_ids=["acme"], requested_by="cli", now=clock())
    )

    worker.drain()  # the erasure happens while Marketo is being called

    (result,) = results
    assert result.in_flight == 1 and result.completed_at is None
    record = store.get_event(event_id)
    assert record is not None and record.state == "delivered" and record.request_id == "req-1"
    assert record.sent["email"] == "[erased]" and record.lead_id is None
    assert store.watermarks([f"https://1.mktorest.com|email|{EMAIL.lower()}", "https://1.mktorest.com|id|4242"]) == {}
    (recorded,) = for_store(store).erasures()  # type: ignore[union-attr]
    assert recorded.completed_at is not None
    store.close()
    assert leftovers(EMAIL) == []


# -- forget_and_clear ----------------------------------------------------------------------------
def test_forget_and_clear_writes_false_and_empty_to_the_mapped_consent_fields(
    client: FlaskClient, store: SqliteStore, registry: Registry, worker: Worker, marketo: FakeMarketo,
    leftovers: Leftovers,
) -> None:  # fmt: skip
    registry.put("acme", {**copy.deepcopy(CONFIG), "on_user_deleted": "forget_and_clear"}, "file")
    post(client, consent(EMAIL, "e-1"))
    worker.drain()

    answer = post(client, user_deleted())
    assert answer["marketo_clear"] == "queued" and answer["clear_event_id"] is not None
    assert worker.drain() == 1

    action, lookup_field, records = marketo.calls[-1]
    assert (action, lookup_field) == ("updateOnly", "id")  # never creates (nor deletes) a lead
    assert records == [{"id": 4242, "consentNewsletter": False, "newsletterTopics": ""}]  # not didomiUserKey
    clear = store.get_event(answer["clear_event_id"])
    assert clear is not None and clear.state == "delivered" and clear.request_id == "req-2"
    assert clear.event_type == "erasure.clear" and clear.lookup_value.startswith("hmac-sha256:")
    (recorded,) = for_store(store).erasures()  # type: ignore[union-attr]
    assert recorded.completed_at is not None and recorded.clear == "queued"
    store.close()
    assert leftovers(EMAIL) == []


def test_forget_and_clear_by_email_when_no_lead_id_is_known(store: SqliteStore, registry: Registry) -> None:
    registry.put("acme", {**copy.deepcopy(CONFIG), "on_user_deleted": "forget_and_clear"}, "file")
    subject = erasure.Subject(frozenset({EMAIL.lower()}))
    (result,) = erasure.forget(store, registry, subject, integration_ids=["acme"], requested_by="cli", now=1.0)
    assert result.clear == "queued"
    (claimed,) = store.claim(2.0, 10, 60.0, "test")
    assert (claimed.action, claimed.lookup_field, claimed.lookup_value) == ("updateOnly", "email", EMAIL.lower())


# -- the command --------------------------------------------------------------------------------
def test_forget_command_erases_by_email_and_by_lead_id(
    client: FlaskClient, store: SqliteStore, worker: Worker, db_url: str, leftovers: Leftovers
) -> None:
    first = post(client, consent(EMAIL, "e-1"))["event_id"]
    post(client, consent(OTHER, "e-other"))
    worker.drain()
    db = db_url
    runner = CliRunner()

    result = runner.invoke(main, ["forget", EMAIL.upper(), "--integration", "acme", "--db", db, "--json"])

    assert result.exit_code == 0, result.output
    (erased,) = json.loads(result.stdout)["erasures"]
    assert erased["requested_by"] == "cli" and erased["events_erased"] == 1
    record = store.get_event(first)
    assert record is not None and record.lookup_value == erased["subject"]

    by_id = runner.invoke(main, ["forget", "77", "--db", db])  # John's Marketo lead id, every integration
    assert by_id.exit_code == 0, by_id.output
    assert "integration acme: erasure 2" in by_id.output and "1 event(s) erased" in by_id.output
    listed = runner.invoke(main, ["erasures", "--db", db])
    assert listed.exit_code == 0 and "erasure 2  integration acme  by cli  forget  1 event(s)" in listed.stdout
    assert EMAIL.lower() not in listed.stdout.lower() and OTHER not in listed.stdout
    unknown = runner.invoke(main, ["forget", EMAIL, "--integration", "nope", "--db", db])
    assert unknown.exit_code == 1 and "unknown integration 'nope'" in unknown.output
    store.close()
    assert leftovers(EMAIL) == []
    assert leftovers(OTHER) == []


def test_forget_command_has_help() -> None:
    result = CliRunner().invoke(main, ["forget", "--help"])
    assert result.exit_code == 0 and "--integration" in result.output and "IDENTIFIER" in result.output


# -- rules and config -----------------------------------------------------------------------------
def test_subject_of_reads_the_user_entity_in_its_shapes() -> None:
    flat = {"type": "user.deleted", "parameters": {"entity": {"id": "u1", "user__organization_user_id": " A@B.C "}}}
    assert erasure.subject_of(flat) == erasure.Subject(frozenset({"a@b.c"}), "u1")
    nested = {"type": "User.Deleted", "parameters": {"entity": {"user": {"organization_user_id": 42}}}}
    assert erasure.is_user_deleted(nested) and erasure.subject_of(nested) == erasure.Subject(frozenset({"42"}))
    assert erasure.subject_of({"type": "user.deleted", "parameters": {"entity": {"id": ""}}}) is None


def test_on_user_deleted_config_key() -> None:
    assert config.parse(copy.deepcopy(CONFIG), "x").on_user_deleted == "forget"
    cleared = config.parse({**copy.deepcopy(CONFIG), "on_user_deleted": "forget_and_clear"}, "x")
    assert cleared.on_user_deleted == "forget_and_clear"
    assert config.parse(config.to_document(cleared), "x") == cleared
    with pytest.raises(ConfigError) as exc:
        config.parse({**copy.deepcopy(CONFIG), "on_user_deleted": "delete"}, "x")
    assert "/on_user_deleted" in str(exc.value.problems[0])
    full = config.load_file(SAMPLES / "full.json")
    assert full.on_user_deleted == "forget_and_clear"
    plan = erasure.clear_plan(full)
    assert plan is not None and plan.attributes["newsletterTopics"] == "" and plan.attributes["smsOptIn"] is False
    assert "didomiUserKey" not in plan.attributes and "preferredLanguage" not in plan.attributes
