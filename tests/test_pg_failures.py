"""PostgreSQL going wrong: bad URLs, wrong passwords, no server, a server that goes away and comes back.

Every failure is one line naming the server and database, never the password, and surfaces as
``StoreUnavailable`` (webhooks answer 503 + Retry-After, the worker retries); nothing acknowledged
with a 202 is lost across a PostgreSQL restart.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from connector.errors import StoreUnavailable
from connector.outbox import Finish
from connector.pg_store import PostgresStore
from connector.stores import open_store
from tests.conftest import pending_event
from tests.pg_server import PASSWORD, PgServer
from tests.processes import Processes, consent_event, sandbox_config, sandbox_get, wait_until

NOW = 1_790_000_000.0


def _one_line_without_password(message: str, *, names: str) -> None:
    assert "\n" not in message
    assert PASSWORD not in message and "wrong-Passw0rd" not in message
    assert names in message


def test_a_wrong_password_is_one_clear_line(pg_server: PgServer, pg_url: str) -> None:
    database = pg_url.rsplit("/", 1)[1]
    with pytest.raises(StoreUnavailable) as caught:
        PostgresStore(pg_server.url(database, password="wrong-Passw0rd"))
    message = str(caught.value)
    _one_line_without_password(message, names=f"PostgreSQL {pg_server.host}:{pg_server.port}/{database}")
    assert "password authentication failed" in message


def test_an_unreachable_server_is_one_clear_line() -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreUnavailable) as caught:
        open_store(f"postgresql://connector:wrong-Passw0rd@127.0.0.1:{port}/connector")
    _one_line_without_password(str(caught.value), names=f"PostgreSQL 127.0.0.1:{port}/connector")


@pytest.mark.parametrize(
    "url",
    ["postgresql://connector:wrong-Passw0rd@127.0.0.1/db?bogus=1", "postgres://connector:wrong-Passw0rd@[::1/db"],
)
def test_a_malformed_url_is_a_value_error_without_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="invalid PostgreSQL URL") as caught:
        open_store(url)
    assert "wrong-Passw0rd" not in str(caught.value)


def test_cli_commands_fail_in_one_line_on_a_wrong_password(pg_server: PgServer, pg_url: str, tmp_path: Path) -> None:
    database = pg_url.rsplit("/", 1)[1]
    bad = pg_server.url(database, password="wrong-Passw0rd")
    with Processes(tmp_path) as procs:
        for command in (["status"], ["deadletters", "list"]):
            result = procs.cli(*command, "--db", bad)
            assert result.returncode == 1, result
            assert "Traceback" not in result.stderr and "wrong-Passw0rd" not in result.stdout + result.stderr
            assert result.stderr.startswith(f"error: PostgreSQL {pg_server.host}:{pg_server.port}/{database}")
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def _calls(store: PostgresStore) -> list[Callable[[], Any]]:
    return [
        lambda: store.add_event(pending_event(received_at=NOW)),
        lambda: store.claim(NOW, 10, NOW + 60, "w"),
        lambda: store.finish([Finish(1, "delivered", "updated", at=NOW)]),
        lambda: store.try_acquire_call("inst", "h", NOW, 20.0, 100, 10, NOW + 60),
        store.counts,
        store.ping,
        lambda: store.get_event(1),
        lambda: store.list_integrations(),
    ]


@pytest.mark.slow
def test_a_server_that_goes_away_gives_store_unavailable_then_recovers(pg_server: PgServer, pg_url: str) -> None:
    if pg_server.external_url:
        pytest.fail("this test restarts the server: run it on the embedded one (unset CONNECTOR_TEST_POSTGRES_URL)")
    store = PostgresStore(pg_url, timeout=2.0)
    wake, stop = threading.Event(), threading.Event()
    listener = store.listen(wake, stop)
    assert wake.wait(20)
    first = store.add_event(pending_event(received_at=NOW)).event_id
    pg_server.stop()
    try:
        for call in _calls(store):
            with pytest.raises(StoreUnavailable) as caught:
                call()
            assert f"PostgreSQL {pg_server.host}:{pg_server.port}/" in str(caught.value)
            assert PASSWORD not in str(caught.value)
    finally:
        pg_server.start()
    wake.clear()
    assert wake.wait(60)  # the listener reconnected (and wakes once, for what it may have missed)
    wake.clear()
    second = _when_back(lambda: store.add_event(pending_event("b@x.com", received_at=NOW)).event_id)
    assert wake.wait(20)
    assert {e.id for e in store.claim(NOW, 10, NOW + 60, "w")} == {first, second}
    stop.set()
    listener.join(10)
    store.close()


def _when_back(call: Callable[[], int], within: float = 30.0) -> int:
    """*call*'s answer once the pool has reconnected: StoreUnavailable until then, within *within* s."""
    deadline = time.monotonic() + within
    while True:
        try:
            return call()
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class _Sender:
    """Posts consent webhooks one after another; keeps every answer (an event refused with 503 is re-sent later)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.accepted: dict[str, int] = {}  # email -> event id, from the 202
        self.unavailable: list[str] = []  # emails answered 503 (to be re-sent)
        self.retry_after: set[str | None] = set()
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.n = 0

    def send(self, session: requests.Session, email: str) -> None:
        body = consent_event(email, f"pg-{email}")
        try:
            response = session.post(f"{self.url}/webhooks/acme", json=body, timeout=20)
        except requests.RequestException as exc:
            with self.lock:
                self.errors.append(f"{email}: {exc}")
            return
        with self.lock:
            if response.status_code == 202:
                self.accepted[email] = response.json()["event_id"]
            elif response.status_code == 503:
                self.unavailable.append(email)
                self.retry_after.add(response.headers.get("Retry-After"))
            else:
                self.errors.append(f"{email}: {response.status_code} {response.text}")

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set() and self.n < 3000:
                self.n += 1
                self.send(session, f"user{self.n}@example.com")
                time.sleep(0.005)

    def count(self) -> int:
        with self.lock:
            return len(self.accepted)


@pytest.mark.slow
def test_restarting_postgresql_under_load_loses_no_acknowledged_event(
    pg_server: PgServer, pg_url: str, tmp_path: Path
) -> None:
    if pg_server.external_url:
        pytest.fail("this test restarts the server: run it on the embedded one (unset CONNECTOR_TEST_POSTGRES_URL)")
    env = {"CONNECTOR_LINGER_MS": "50", "CONNECTOR_LEASE_SECONDS": "5", "CONNECTOR_PG_TIMEOUT": "2"}
    with Processes(tmp_path, env=env, db_url=pg_url) as procs:
        sandbox = procs.sandbox()
        config = procs.write_config("acme", sandbox_config(sandbox.url, upsert=True))
        server = procs.serve(configs=[config])
        sender = _Sender(server.url)
        thread = threading.Thread(target=sender.run, name="webhooks", daemon=True)
        thread.start()
        try:
            wait_until(lambda: sender.count() >= 100, 60, what="100 events accepted before the outage")
            pg_server.stop()
            try:
                wait_until(lambda: len(sender.unavailable) >= 3, 60, what="503 answers during the outage")
            finally:
                pg_server.start()
            after = sender.count()
            wait_until(lambda: sender.count() >= after + 100, 60, what="100 events accepted after the restart")
        finally:
            sender.stop.set()
            thread.join(30)
        assert sender.retry_after == {"5"}
        with requests.Session() as session:  # the sender re-sends what was refused, as Didomi retries
            for email in list(sender.unavailable):
                sender.send(session, email)
        assert not sender.errors, sender.errors[:5]
        assert set(sender.unavailable) <= set(sender.accepted)

        store = PostgresStore(pg_url)

        def settled() -> bool:
            counts = store.counts().get("acme", {})
            return counts.get("pending", 0) == 0 and counts.get("delivered", 0) >= len(sender.accepted)

        try:
            wait_until(settled, 90, interval=0.5, what="every accepted event delivered")
            states = {email: store.get_event(event_id) for email, event_id in sender.accepted.items()}
        finally:
            store.close()
        assert all(r is not None and r.state == "delivered" for r in states.values())
        leads = {lead["email"] for lead in sandbox_get(sandbox.url, "leads")}
        assert set(sender.accepted) <= leads  # and each one reached Marketo
        status = json.loads(procs.cli("status", "--json", db=True, check=True).stdout)
        assert status["integrations"]["acme"]["delivered"] == len(sender.accepted)
        assert server.alive


@pytest.mark.parametrize(("name", "value"), [("CONNECTOR_PG_POOL_SIZE", "many"), ("CONNECTOR_PG_TIMEOUT", "0")])
def test_bad_pool_settings_name_the_variable(name: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        open_store("postgresql://connector@127.0.0.1:1/connector")
