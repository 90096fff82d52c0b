"""Secrets: every command and endpoint, at DEBUG log level, never shows a configured secret.

Recognisable secrets are configured everywhere they can be: the Marketo client secret (and a second,
wrong one that produces a dead letter), the webhook OAuth client secret, header secret and Standard
Webhooks secret, the admin token and CONNECTOR_SECRET_KEY. Then, with CONNECTOR_LOG_LEVEL=DEBUG,
the test runs ``validate`` (good, bad, --online), ``send`` (--dry-run and real), ``serve`` with
webhooks and every admin endpoint (including a 422 and ``GET /integrations``), ``status``,
``deadletters list/replay``, ``events list/show/prune``, ``worker`` and ``keygen``, in text and JSON
log formats. Every stdout, stderr, log line, HTTP response body and header is collected; none may
contain any secret, nor a bearer token the services issued (Marketo access tokens, webhook OAuth
tokens) outside the one response that hands it out. With CONNECTOR_SECRET_KEY set, the database
file holds none of the secrets in clear either.

The Marketo stand-in runs in this process (``SandboxServer``) so it can accept our own client
secret instead of its fixed public one.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from connector.sandbox.config import SandboxConfig
from connector.sandbox.server import SandboxServer
from connector.sandbox.state import SandboxState
from connector.vault import generate_key
from connector.webhook_auth import sign_standard_webhook
from tests.processes import PAYLOADS, Processes, consent_event, wait_until

MARKETO_ID = "mkto-client-id"
MARKETO_SECRET = "MKTO-SECRET-7f3a9c"
WRONG_MARKETO_SECRET = "MKTO-ROTATED-SECRET-4e5d6c"  # configured for "stale"; Marketo refuses it
OAUTH_ID = "didomi-client"
OAUTH_SECRET = "OAUTH-SECRET-a1b2c3d4"
HEADER_NAME = "X-Webhook-Secret"
HEADER_SECRET = "HEADER-SECRET-e5f6a7b8"
SWH_SECRET = "whsec_U0VDUkVULXN3aC0xMjM0NTY3ODkw"  # base64 of "SECRET-swh-1234567890"
ADMIN_TOKEN = "ADMIN-TOKEN-c9d0e1f2"
SECRET_KEY = generate_key()
SECRETS = [MARKETO_SECRET, WRONG_MARKETO_SECRET, OAUTH_SECRET, HEADER_SECRET, SWH_SECRET, ADMIN_TOKEN, SECRET_KEY]
# Forms a secret may take on the wire or in a dump: Basic credentials, the Standard Webhooks key bytes.
DERIVED = [
    base64.b64encode(f"{OAUTH_ID}:{OAUTH_SECRET}".encode()).decode(),
    SWH_SECRET.removeprefix("whsec_"),
    base64.b64decode(SWH_SECRET.removeprefix("whsec_")).decode(),
]


class RecordingTokens:
    """Wraps the sandbox's token store to remember every Marketo access token it hands out."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.issued: set[str] = set()

    def issue(self, client_id: str, now: float, ttl: float) -> tuple[str, int, bool]:
        token, expires_in, fresh = self.inner.issue(client_id, now, ttl)
        self.issued.add(token)
        return token, expires_in, fresh

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def config(
    instance: str, client_secret: str = MARKETO_SECRET, webhook: bool = True, oauth_id: str = OAUTH_ID
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type_id": "marketo",
        "authentication": {"client_id": MARKETO_ID, "client_secret": client_secret, "instance": instance},
        "properties": {"user_identifier": ["email"]},
        "mappings": [
            {"id": "consentNewsletter", "value": "consents_purposes_newsletter_enabled"},
            {"id": "consentGeolocation", "value": "consents_purposes_geolocation_data_enabled"},
        ],
        "upsert_mode": True,
    }
    if webhook:
        doc["webhook"] = {
            "oauth": {"client_id": oauth_id, "client_secret": OAUTH_SECRET},
            "header": {"name": HEADER_NAME, "secret": HEADER_SECRET},
            "standard_webhooks": {"secret": SWH_SECRET},
        }
    return doc


class Seen:
    """Everything the test saw: labelled texts to search for secrets."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, label: str, text: str) -> None:
        self.texts.append((label, text))

    def cli(self, procs: Processes, *args: str, db: bool = True, code: int | None = 0, **kw: Any) -> str:
        result = procs.cli(*args, db=db, **kw)
        label = "connector " + " ".join(args)
        self.add(label + " (stdout)", result.stdout)
        self.add(label + " (stderr)", result.stderr)
        if code is not None:
            assert result.returncode == code, f"{label}: exit {result.returncode}\n{result.stdout}{result.stderr}"
        return result.stdout

    def http(self, label: str, response: requests.Response, status: int | None = None) -> requests.Response:
        self.add(f"{label} -> {response.status_code} (body)", response.text)
        self.add(f"{label} (headers)", json.dumps(dict(response.headers)))
        if status is not None:
            assert response.status_code == status, f"{label}: {response.status_code} {response.text}"
        return response


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxServer, RecordingTokens]]:
    state = SandboxState(
        SandboxConfig(clients={MARKETO_ID: MARKETO_SECRET}, limits=False),
        leads=[{"email": "jane.doe@example.com"}],
    )
    tokens = RecordingTokens(state._tokens)
    state._tokens = tokens  # type: ignore[assignment]
    with SandboxServer(state) as server:
        yield server, tokens


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    env = {
        "CONNECTOR_LOG_LEVEL": "DEBUG",
        "CONNECTOR_ADMIN_TOKEN": ADMIN_TOKEN,
        "CONNECTOR_SECRET_KEY": SECRET_KEY,
        "CONNECTOR_RETRY_DELAYS": "0.2,0.2",
        "CONNECTOR_LINGER_MS": "20",
    }
    with Processes(tmp_path, env=env) as started:
        yield started


def webhook_headers(body: bytes, token: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", HEADER_NAME: HEADER_SECRET, "Authorization": f"Bearer {token}"}
    headers.update(sign_standard_webhook(SWH_SECRET, f"msg_{time.time_ns()}", int(time.time()), body))
    return headers


@pytest.mark.slow
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_in_any_output_log_or_response(
    procs: Processes, sandbox: tuple[SandboxServer, RecordingTokens], log_format: str
) -> None:
    sandbox_server, marketo_tokens = sandbox
    procs.env["CONNECTOR_LOG_FORMAT"] = log_format
    seen = Seen()
    issued: set[str] = set()  # webhook OAuth tokens: allowed only in the token endpoint's own answer
    good = procs.write_config("shop", config(sandbox_server.url))
    stale_doc = config(sandbox_server.url, client_secret=WRONG_MARKETO_SECRET, oauth_id=OAUTH_ID + "-stale")
    stale = procs.write_config("stale", stale_doc)
    bad_doc = config(sandbox_server.url)
    bad_doc["upsert_mod"] = True  # a typo
    bad_doc["webhook"]["header"]["secret"] = HEADER_SECRET * 20  # too long
    bad_doc["authentication"]["instance"] = "http://marketo.example.com"  # http off loopback
    bad = procs.write_config("bad", bad_doc)
    payload = str(PAYLOADS / "opt-in.json")

    # -- one-shot commands before the server: validate, send
    seen.cli(procs, "validate", str(good), db=False)
    out = seen.cli(procs, "validate", str(good), str(bad), db=False, code=1)
    assert "upsert_mod" in out  # the problems are reported, only the secrets are not
    seen.cli(procs, "validate", "--online", str(good), db=False)
    seen.cli(procs, "validate", "--online", str(stale), db=False, code=None)
    dry = seen.cli(procs, "send", "--config", str(good), payload, "--dry-run")
    assert "jane.doe@example.com" in dry
    sent = seen.cli(procs, "send", "--config", str(good), payload)
    assert "requestId" in sent or "request" in sent.lower()
    seen.cli(procs, "send", "--config", str(stale), payload, code=None)

    # -- the server: webhooks, token endpoint, admin API
    server = procs.serve(configs=[good, stale])
    base = server.url
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    token_response = seen.http(
        "POST /oauth/token (form)",
        requests.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials", "client_id": OAUTH_ID, "client_secret": OAUTH_SECRET},
            timeout=10,
        ),
        200,
    )
    token = token_response.json()["access_token"]
    issued.add(token)
    seen.texts.pop(-2)  # the one body that must contain the issued token; still checked for the secrets below
    assert all(s not in token_response.text for s in SECRETS)
    basic = seen.http(
        "POST /oauth/token (basic)",
        requests.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(OAUTH_ID + "-stale", OAUTH_SECRET),
            timeout=10,
        ),
        200,
    )
    tokens = {"shop": token, "stale": basic.json()["access_token"]}
    issued.update(tokens.values())
    seen.texts.pop(-2)
    assert all(s not in basic.text for s in SECRETS)
    seen.http(
        "POST /oauth/token (wrong secret)",
        requests.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials", "client_id": OAUTH_ID, "client_secret": OAUTH_SECRET + "x"},
            timeout=10,
        ),
        401,
    )
    event_ids = []
    for n, integration in enumerate(["shop", "stale", "shop"]):
        body = json.dumps(consent_event(f"person{n}@example.com", f"secret-test-{n}")).encode()
        response = seen.http(
            f"POST /webhooks/{integration}",
            requests.post(
                f"{base}/webhooks/{integration}",
                data=body,
                headers=webhook_headers(body, tokens[integration]),
                timeout=10,
            ),
            202,
        )
        event_ids.append((integration, response.json()["event_id"]))
    body = json.dumps(consent_event("refused@example.com", "secret-test-refused")).encode()
    wrong = webhook_headers(body, token)
    wrong[HEADER_NAME] = HEADER_SECRET[:-1]
    seen.http(
        "POST /webhooks/shop (wrong header)",
        requests.post(f"{base}/webhooks/shop", data=body, headers=wrong, timeout=10),
        401,
    )
    seen.http("POST /webhooks/shop (no auth)", requests.post(f"{base}/webhooks/shop", json={}, timeout=10), 401)

    def finished() -> bool:
        counts = requests.get(f"{base}/status", headers=admin, timeout=10).json()["integrations"]
        return all(c["pending"] == 0 for c in counts.values()) and counts["stale"]["dead"] >= 1

    wait_until(finished, 20, interval=0.2, what="deliveries finished, the stale credentials dead-lettered")

    seen.http(
        "PUT /integrations/api",
        requests.put(f"{base}/integrations/api", json=config(sandbox_server.url), headers=admin, timeout=10),
        201,
    )
    seen.http(
        "PUT /integrations/api (replace)",
        requests.put(f"{base}/integrations/api", json=config(sandbox_server.url), headers=admin, timeout=10),
        200,
    )
    invalid = seen.http(
        "PUT /integrations/broken",
        requests.put(f"{base}/integrations/broken", json=bad_doc, headers=admin, timeout=10),
        422,
    )
    assert invalid.json()["problems"]
    listing = seen.http("GET /integrations", requests.get(f"{base}/integrations", headers=admin, timeout=10), 200)
    assert {i["id"] for i in listing.json()["integrations"]} == {"shop", "stale", "api"}
    assert "********" in listing.text
    for path in [
        "/integrations/shop",
        "/integrations/stale",
        "/integrations/api",
        "/status",
        "/metrics",
        "/integrations/shop/events",
        "/integrations/stale/events?state=dead",
    ]:
        seen.http(f"GET {path}", requests.get(f"{base}{path}", headers=admin, timeout=10), 200)
    for integration, event_id in event_ids:
        shown = seen.http(
            f"GET event {event_id}",
            requests.get(f"{base}/integrations/{integration}/events/{event_id}", headers=admin, timeout=10),
            200,
        )
        assert shown.json()["id"] == event_id
    wrong_admin = {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"}
    seen.http(
        "GET /integrations (wrong token)", requests.get(f"{base}/integrations", headers=wrong_admin, timeout=10), 401
    )
    seen.http("DELETE /integrations/api", requests.delete(f"{base}/integrations/api", headers=admin, timeout=10), 200)

    # -- operations commands on the same database, while the server runs
    seen.cli(procs, "status")
    seen.cli(procs, "status", "--json")
    dead = json.loads(seen.cli(procs, "deadletters", "list", "--json"))
    assert dead and all(d["integration"] == "stale" for d in dead)
    seen.cli(procs, "deadletters", "list")
    for _integration, event_id in event_ids:
        seen.cli(procs, "events", "show", str(event_id))
        seen.cli(procs, "events", "show", str(event_id), "--json")
    seen.cli(procs, "events", "list")
    seen.cli(procs, "events", "list", "--json", "--state", "dead")
    seen.cli(procs, "deadletters", "replay", "--all")
    wait_until(
        lambda: json.loads(procs.cli("status", "--json", db=True).stdout)["integrations"]["stale"]["pending"] == 0,
        20,
        interval=0.2,
        what="replayed dead letter dead again",
    )
    assert server.stop() == 0
    seen.add("connector serve (output)", server.output())
    assert "DEBUG" in server.output() or '"level": "debug"' in server.output(), "DEBUG logging was not on"

    # -- the worker alone, then the last commands
    worker = procs.worker()
    time.sleep(1.5)
    assert worker.stop() == 0
    seen.add("connector worker (output)", worker.output())
    seen.cli(procs, "events", "prune", "--older-than", "0")
    seen.cli(procs, "keygen", db=False)
    seen.cli(procs, "serve", "--config", str(bad), "--port", "0", code=1)  # refuses to start: prints the problems

    # -- the verdict
    forbidden = [*SECRETS, *DERIVED, *issued, *marketo_tokens.issued]
    assert marketo_tokens.issued, "the connector never authenticated with Marketo"
    assert len(seen.texts) > 50
    leaks = [(label, s) for label, text in seen.texts for s in forbidden if s in text]
    assert not leaks, "\n".join(f"{label}: contains {s!r}" for label, s in leaks)

    # at rest: with CONNECTOR_SECRET_KEY the database holds no secret in clear
    db_path = Path(procs.db_url.removeprefix("sqlite:///"))
    stored = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    at_rest = [s for s in SECRETS if s.encode() in stored]
    assert not at_rest, f"stored in clear: {at_rest}"
