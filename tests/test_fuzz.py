"""Proof under abuse: generated and mutated requests against the webhook, OAuth token and admin endpoints.

Through the Flask test client with the real SQLite store in a temporary folder, integrations with
and without webhook authentication (header secret, OAuth bearer, Standard Webhooks, IP allowlist)
and the admin API enabled. Hypothesis generates random bytes, mutated Didomi envelopes (type
changes, deep nesting, huge strings, unicode, lone surrogates, missing keys, nulls), content types,
header sets (junk and valid credentials), methods and paths. For every request:

- the status is below 500 (no crash, no unexpected exception);
- every 4xx is a JSON object with an ``error`` code and a ``message`` (``error_description`` on
  the OAuth endpoint, ``problems`` for an invalid config);
- a request answered other than 202 stored nothing (the events table did not grow); a 202 stored
  at most one row, and none only when it says ``duplicate``;
- the stored configs changed only through a successful admin PUT or DELETE.

The slow variants run more than 10,000 examples in total (``-m slow``); the quick variants run a few
hundred so the normal edit loop exercises the same properties.
"""

from __future__ import annotations

import base64
import copy
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.registry import Registry
from connector.settings import Settings
from connector.sqlite_store import SqliteStore
from connector.vault import Vault, generate_key
from connector.web import create_app
from connector.webhook_auth import sign_standard_webhook

SAMPLES = Path(__file__).resolve().parent.parent / "sample_configs"
PAYLOAD_DOCS = [json.loads(p.read_text()) for p in sorted((SAMPLES / "payloads").glob("*.json"))]

ADMIN_TOKEN = "fuzz-admin-token-0a1b2c"
HEADER_NAME = "X-Webhook-Secret"
HEADER_SECRET = "fuzz-header-secret-9d8e7f"
OAUTH_ID = "didomi-fuzz"
OAUTH_SECRET = "fuzz-oauth-secret-5a4b3c"
SWH_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOKEN = "<<valid bearer token>>"  # placeholder, replaced by a real token at request time

BASE_CONFIG: dict[str, Any] = {
    "type_id": "marketo",
    "authentication": {
        "client_id": "cid",
        "client_secret": "fuzz-marketo-secret",
        "instance": "https://123-ABC-456.mktorest.com/rest",
    },
    "properties": {"user_identifier": ["email"], "regulations": ["gdpr", "cpra"]},
    "mappings": [
        {"id": "consentNewsletter", "value": "consents_purposes_newsletter_enabled"},
        {"id": "consentGeolocation", "value": "consents_purposes_geolocation_data_enabled"},
        {"id": "newsletterTopics", "value": "consents_purposes_audientse-fxqe89b2_values_jmHmf37H_value"},
        {"id": "smsOptIn", "value": "consents_channels_sms_enabled"},
        {"id": "didomiUserKey", "value": "organization_user_id"},
        {"id": "preferredLanguage", "value": "user_metadata_language"},
    ],
    "upsert_mode": False,
}
WEBHOOKS: dict[str, dict[str, Any] | None] = {
    "open": None,
    "header": {"header": {"name": HEADER_NAME, "secret": HEADER_SECRET}},
    "oauth": {"oauth": {"client_id": OAUTH_ID, "client_secret": OAUTH_SECRET}},
    "swh": {"standard_webhooks": {"secret": SWH_SECRET}},
    "combo": {
        "oauth": {"client_id": OAUTH_ID + "-2", "client_secret": OAUTH_SECRET},
        "header": {"name": HEADER_NAME, "secret": HEADER_SECRET},
        "standard_webhooks": {"secret": SWH_SECRET},
    },
    "ips": {"allowed_ips": ["10.0.0.0/8", "::1"], "trusted_proxy_hops": 1},
}
IDS = list(WEBHOOKS)


def config_for(integration_id: str) -> dict[str, Any]:
    doc = copy.deepcopy(BASE_CONFIG)
    webhook = WEBHOOKS.get(integration_id)
    if webhook is not None:
        doc["webhook"] = copy.deepcopy(webhook)
    return doc


# -- the system under test -----------------------------------------------------------------------
@dataclass
class Env:
    client: FlaskClient
    store: SqliteStore
    registry: Registry
    db: sqlite3.Connection
    tokens: dict[str, str] = field(default_factory=dict)
    accepted: int = 0

    def event_rows(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def configs(self) -> list[tuple[str, str, str]]:
        return self.store.list_integrations()

    def restore_configs(self) -> None:
        """Back to the fixed integrations after an admin PUT/DELETE that the fuzzer got through."""
        for integration_id, _doc, _src in self.configs():
            if integration_id not in WEBHOOKS:
                self.registry.delete(integration_id)
        for integration_id in IDS:
            self.registry.put(integration_id, config_for(integration_id), "file")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    path = tmp_path_factory.mktemp("fuzz") / "connector.db"
    store = SqliteStore(path)
    registry = Registry(store, Vault(generate_key()))
    for integration_id in IDS:
        registry.put(integration_id, config_for(integration_id), "file")
    app = create_app(
        Settings(admin_token=ADMIN_TOKEN, database_url=f"sqlite:///{path}"), store=store, registry=registry
    )
    db = sqlite3.connect(path)
    found = Env(app.test_client(), store, registry, db)
    for client_id in (OAUTH_ID, OAUTH_ID + "-2"):
        response = found.client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": OAUTH_SECRET},
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        found.tokens[client_id] = response.json["access_token"]
    yield found
    db.close()
    store.close()


# -- strategies ----------------------------------------------------------------------------------
def mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], one_in: int = 5) -> st.SearchStrategy[Any]:
    """*common*, except one draw in *one_in* from *rare*."""
    return st.integers(0, one_in - 1).flatmap(lambda i: rare if i == 0 else common)


latin1_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60)
lone_surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2)
any_text = mostly(  # any code point; st.text() alone never makes lone surrogates, which JSON can carry
    st.text(max_size=40),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=15), lone_surrogates, st.text(max_size=15)),
    6,
)
odd_text = st.one_of(  # unicode a JSON string can carry: lone surrogates, NUL, RTL marks, emoji, non-BMP
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=10), lone_surrogates, st.text(max_size=10)),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=30),
    st.sampled_from(["\x00", "a\x00b@example.com", "\u202ejane@example.com", "\U0001f600@example.com", "\ufeff"]),
)
junk_segment = st.one_of(
    any_text.filter(bool),
    st.sampled_from(["..", ".", "%00", "a" * 65, "-lead", "ACME", "open ", "open\x00", "9" * 30, "null"]),
)
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    any_text,
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)


def segment(text: str) -> str:
    """*text* percent-encoded as one path segment (lone surrogates as their surrogatepass bytes)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _nodes(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _nodes(value, (*path, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += _nodes(value, (*path, index))
    return found


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _deep(levels: int, leaf: Any) -> Any:
    for _ in range(levels):
        leaf = [leaf] if levels % 2 else {"k": leaf}
    return leaf


@st.composite
def mutated_document(draw: st.DrawFn, originals: list[Any]) -> Any:
    """A valid document with 1-4 mutations: replaced, retyped, nulled, deleted, deepened, huge, unicode."""
    doc = copy.deepcopy(draw(st.sampled_from(originals)))
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 1, 2, 3, 4]))):  # a quarter left valid
        nodes = _nodes(doc)
        op = draw(st.sampled_from(["replace", "null", "delete", "type", "deep", "huge", "unicode", "add", "retext"]))
        texts = [p for p in nodes if p and isinstance(_at(doc, p), str)]
        if op == "retext" and texts:  # a string value (an email, an id, a date) becomes odd text
            path = draw(st.sampled_from(texts))
            op = "unicode"
        else:
            path = draw(st.sampled_from(nodes))
        if op == "replace":
            new: Any = draw(json_value)
        elif op == "null":
            new = None
        elif op == "type":
            new = draw(st.sampled_from([0, 1.5, True, "", "x", [], {}, [None], {"": None}, -1, 2**64]))
        elif op == "deep":
            new = _deep(draw(st.integers(1, 40)), draw(json_leaf))
        elif op == "huge":
            new = draw(st.sampled_from(["x", "é", "\U0001f600", "\\", '"', "\x00"])) * draw(st.integers(1000, 70_000))
        elif op == "unicode":
            new = draw(odd_text)
        else:  # add a key / item next to the node
            new = draw(json_value)
        if not path:
            if op in ("replace", "null", "type", "deep"):
                doc = new
            continue
        parent = doc
        try:
            for part in path[:-1]:
                parent = parent[part]
        except (KeyError, IndexError, TypeError):
            continue
        last = path[-1]
        if op == "delete":
            if isinstance(parent, dict):
                parent.pop(last, None)
            elif isinstance(parent, list) and last < len(parent):
                parent.pop(last)
        elif op == "add":
            if isinstance(parent, dict):
                parent[draw(any_text)] = new
            elif isinstance(parent, list):
                parent.append(new)
        elif isinstance(parent, dict | list):
            try:
                parent[last] = new
            except (IndexError, TypeError):
                continue
    return doc


@st.composite
def serialised(draw: st.DrawFn, documents: st.SearchStrategy[Any]) -> bytes:
    doc = draw(documents)
    text = json.dumps(doc, ensure_ascii=draw(st.sampled_from([True, True, True, False])))
    body = text.encode("utf-8", "surrogatepass")  # lone surrogates become invalid UTF-8 when not escaped
    how = draw(st.sampled_from(["as is"] * 6 + ["bom", "truncate", "nan", "bigint", "trailing", "utf16"]))
    if how == "bom":
        body = b"\xef\xbb\xbf" + body
    elif how == "truncate" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif how == "nan":
        body = body.replace(b"true", b"NaN", 1).replace(b"false", b"-Infinity", 1)
    elif how == "bigint":
        body = body.replace(b"true", b"1" * draw(st.integers(4000, 20_000)), 1)
    elif how == "trailing":
        body += draw(st.sampled_from([b",", b"}", b" junk", b"\x00", b"{}"]))
    elif how == "utf16":
        body = text.encode("utf-16", "surrogatepass")
    return body


def _distinct(doc: Any, n: int) -> Any:
    """The sample with its own entity id and email, so a 202 adds a row instead of a duplicate."""
    doc = copy.deepcopy(doc)
    entity = doc.get("parameters", {}).get("entity") if isinstance(doc, dict) else None
    if isinstance(entity, dict):
        entity["id"] = f"fuzz-{n}"
        if isinstance(entity.get("user"), dict):
            entity["user"]["organization_user_id"] = f"fuzz{n}@example.com"
    return doc


@st.composite
def retexted(draw: st.DrawFn, originals: list[Any]) -> Any:
    """A valid document with one string value (an email, an id, a date, a status) swapped for odd text."""
    doc = _distinct(draw(st.sampled_from(originals)), draw(st.integers(0, 10**9)))
    path = draw(st.sampled_from([p for p in _nodes(doc) if p and isinstance(_at(doc, p), str)]))
    _at(doc, path[:-1])[path[-1]] = draw(odd_text)
    return doc


envelopes = mutated_document(PAYLOAD_DOCS)
webhook_bodies = st.one_of(
    serialised(envelopes),
    serialised(envelopes),
    serialised(retexted(PAYLOAD_DOCS)),
    serialised(retexted(PAYLOAD_DOCS)),
    serialised(st.builds(_distinct, st.sampled_from(PAYLOAD_DOCS), st.integers(0, 10**9))),
    serialised(json_value),
    st.binary(max_size=600),
    st.builds(lambda n, o, c: o * n + b"1" + c * n, st.integers(1, 3000), st.just(b"["), st.just(b"]")),
    st.builds(lambda n: b'{"a":' * n + b"1" + b"}" * n, st.integers(25, 3000)),
    st.builds(lambda n: b"[" * n, st.integers(1, 300_000)),
    st.builds(lambda n: b" " * n + b"{}", st.sampled_from([0, 1_048_574, 1_048_575, 2_000_000])),  # around the limit
    st.sampled_from([b"", b"null", b"{}", b"[]", b'""', b"0", b"\xff\xfe", b"\x00" * 10, b'{"type": null}']),
)
content_types = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/vnd.didomi+json",
            "application/json; charset=latin-1",
            "text/plain",
            "text/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=xyz",
            "application/octet-stream",
            "",
            ";",
            "application/",
            "/json",
        ]
    ),
    st.none(),
    latin1_text,
)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "FOO", "post"])
junk_header_names = st.sampled_from(
    [
        "Authorization",
        HEADER_NAME,
        HEADER_NAME.upper(),
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Forwarded-For",
        "X-Real-IP",
        "Accept",
        "Content-Encoding",
        "Cookie",
        "X-Junk",
    ]
)
authorization_values = st.one_of(
    st.sampled_from(
        [
            f"Bearer {TOKEN}",
            f"bearer   {TOKEN}  ",
            f"Bearer {TOKEN}x",
            f"Bearer {TOKEN[:-1]}",
            "Bearer ",
            "Bearer",
            "Bearer a.b",
            "Bearer " + "A" * 43 + "." + "B" * 43,
            "Bearer " + "a" * 5000,
            f"Bearer {ADMIN_TOKEN}",
            "Basic " + base64.b64encode(f"{OAUTH_ID}:{OAUTH_SECRET}".encode()).decode(),
            "Basic !!!",
            "Digest x",
        ]
    ),
    latin1_text,
    latin1_text.map(lambda t: "Bearer " + t),
)


@dataclass
class Req:
    method: str
    path: str
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    sign: bool = False  # add a valid Standard Webhooks signature over the (final) body

    def describe(self) -> str:
        return f"{self.method} {self.path} ct={self.content_type!r} headers={self.headers} body={self.body[:200]!r}"


@st.composite
def auth_headers(draw: st.DrawFn) -> tuple[dict[str, str], bool]:
    """Every valid credential half of the time (so bodies are fuzzed past authentication), else junk."""
    if draw(st.booleans()):
        headers = {HEADER_NAME: HEADER_SECRET, "Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": "10.9.8.7"}
        return headers, True
    headers = {}
    if draw(st.booleans()):
        headers[draw(st.sampled_from([HEADER_NAME, HEADER_NAME.lower()]))] = draw(
            st.sampled_from([HEADER_SECRET, HEADER_SECRET]) | st.sampled_from([HEADER_SECRET + " ", ""]) | latin1_text
        )
    if draw(st.booleans()):
        headers["Authorization"] = draw(authorization_values)
    sign = draw(st.booleans())
    if not sign and draw(st.integers(0, 3)) == 0:
        headers["webhook-id"] = draw(latin1_text)
        headers["webhook-timestamp"] = draw(st.sampled_from(["0", "99999999999999", "-1", "1e9", "١٢٣"]) | latin1_text)
        headers["webhook-signature"] = draw(
            st.sampled_from(["v1,", "v1,AAAA", "v1a,b,c", ",", "v1,==== v2,x"]) | latin1_text
        )
    if draw(st.integers(0, 3)) == 0:
        headers["X-Forwarded-For"] = draw(
            st.sampled_from(["10.1.2.3", "1.2.3.4, 10.0.0.1", "[::1]:80", "::ffff:10.0.0.1", ",,,"]) | latin1_text
        )
    for _ in range(draw(st.integers(0, 2))):
        headers[draw(junk_header_names)] = draw(latin1_text)
    return headers, sign


@st.composite
def webhook_requests(draw: st.DrawFn) -> Req:
    integration = draw(mostly(st.sampled_from(IDS), junk_segment, 15))
    path = "/webhooks/" + segment(integration)
    path = draw(mostly(st.just(path), st.sampled_from(["/webhooks/", "/webhooks", path + "/x", path + "?a=1"]), 20))
    headers, sign = draw(auth_headers())
    return Req(
        method=draw(mostly(st.just("POST"), methods, 10)),
        path=path,
        body=draw(webhook_bodies),
        content_type=draw(mostly(st.just("application/json"), content_types, 3)),
        headers=headers,
        sign=sign,
    )


configs = mutated_document([config_for(i) for i in IDS])
admin_ids = mostly(st.sampled_from([*IDS, "fresh-1", "fresh-2", "a", "Z.9_-"]), junk_segment, 6)


@st.composite
def admin_requests(draw: st.DrawFn) -> Req:
    integration = segment(draw(admin_ids))
    query = draw(
        st.one_of(
            st.just(""),
            st.builds(
                lambda s, since, limit: "?" + urlencode({"state": s, "since": since, "limit": limit}),
                st.sampled_from(["dead", "pending", "x", ""]) | latin1_text,
                st.sampled_from(["0", "1e999", "nan", "-inf", "9" * 400, ""]) | latin1_text,
                st.sampled_from(["1", "0", "-5", "9" * 30, "1.5", " 7 "]) | latin1_text,
            ),
        )
    )
    event = draw(
        st.one_of(
            st.integers(-5, 10**4).map(str),
            st.sampled_from(["9" * 19, "9" * 25, "18446744073709551616", "0x10", "1.0", "-1"]),
            junk_segment.map(segment),
        )
    )
    path = draw(
        mostly(
            st.just(f"/integrations/{integration}"),
            st.sampled_from(
                [
                    "/integrations",
                    f"/integrations/{integration}/events{query}",
                    f"/integrations/{integration}/events/{event}",
                    "/status",
                    "/metrics",
                    "/integrations/",
                    f"/integrations/{integration}/x",
                ]
            ),
            3,
        )
    )
    token = draw(
        mostly(
            st.just(f"Bearer {ADMIN_TOKEN}"),
            st.sampled_from([f"bearer {ADMIN_TOKEN} ", f"Bearer {ADMIN_TOKEN}x", ""]) | authorization_values,
            5,
        )
    )
    body = draw(mostly(serialised(configs), webhook_bodies, 4))
    return Req(
        method=draw(mostly(st.sampled_from(["PUT", "PUT", "PUT", "GET", "GET", "DELETE"]), methods, 8)),
        path=path,
        body=body,
        content_type=draw(mostly(st.just("application/json"), content_types, 5)),
        headers={"Authorization": token} if token else {},
    )


@st.composite
def token_requests(draw: st.DrawFn) -> Req:
    creds = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "grant_type": mostly(st.just("client_credentials"), st.sampled_from(["password", ""]) | any_text, 4),
                "client_id": mostly(st.sampled_from([OAUTH_ID, OAUTH_ID + "-2"]), st.just("") | any_text, 4),
                "client_secret": mostly(st.just(OAUTH_SECRET), st.just(OAUTH_SECRET + "x") | any_text, 4),
                "scope": any_text,
            },
        )
    )
    kind = draw(st.sampled_from(["form", "json", "raw"]))
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        user = draw(st.sampled_from([OAUTH_ID, "", "a:b", "%ZZ"]) | any_text)
        password = draw(st.sampled_from([OAUTH_SECRET, ""]) | any_text)
        raw = f"{segment(user)}:{segment(password)}" if draw(st.booleans()) else f"{user}:{password}"
        encoded = base64.b64encode(raw.encode("utf-8", "surrogatepass")).decode()
        headers["Authorization"] = draw(
            st.sampled_from([f"Basic {encoded}", f"basic  {encoded} "]) | authorization_values
        )
    if kind == "form":
        return Req(
            "POST",
            "/oauth/token",
            body=urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in creds.items()}, doseq=False).encode(),
            content_type=draw(
                st.sampled_from(["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=x"])
            ),
            headers=headers,
        )
    if kind == "json":
        doc: Any = dict(creds)
        if draw(st.booleans()):
            doc = draw(mutated_document([doc]))
        return Req("POST", "/oauth/token", draw(serialised(st.just(doc))), "application/json", headers)
    return Req(
        draw(st.sampled_from(["POST"] * 4) | methods),
        "/oauth/token",
        draw(webhook_bodies),
        draw(content_types),
        headers,
    )


@st.composite
def anything_requests(draw: st.DrawFn) -> Req:
    path = "/" + "/".join(segment(s) for s in draw(st.lists(junk_segment | st.sampled_from(IDS), max_size=4)))
    path = draw(st.sampled_from(["/", "/healthz", "/oauth", "/webhooks/open/", "//webhooks/open", path, path]))
    headers, _ = draw(auth_headers())
    return Req(draw(methods), path, draw(webhook_bodies), draw(content_types), headers)


# -- the properties ------------------------------------------------------------------------------
MUTATING = {"PUT", "DELETE"}


def send(env: Env, req: Req) -> Any:
    headers = {k: v.replace(TOKEN, env.tokens[OAUTH_ID]) for k, v in req.headers.items()}
    if req.sign and req.path.startswith("/webhooks/combo"):
        headers["Authorization"] = f"Bearer {env.tokens[OAUTH_ID + '-2']}"
    if req.sign:
        try:
            req.body.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            headers.update(sign_standard_webhook(SWH_SECRET, f"msg_{len(req.body)}", _now(), req.body))
    kwargs: dict[str, Any] = {"method": req.method, "data": req.body, "headers": headers}
    if req.content_type is not None:
        kwargs["content_type"] = req.content_type
    return env.client.open(req.path, **kwargs)


def _now() -> int:
    return int(time.time())


def check(env: Env, req: Req) -> int:
    rows, configs = env.event_rows(), env.configs()
    response = send(env, req)
    status = response.status_code
    where = f"{status} for {req.describe()}\n{response.get_data(as_text=True)[:500]}"
    assert status < 500, where
    if 400 <= status < 500 and req.method.upper() != "HEAD":
        assert response.mimetype == "application/json", where
        body = response.get_json(silent=True)
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], where
        details = [body.get(k) for k in ("message", "error_description", "problems")]
        assert any(isinstance(d, str | list) and d for d in details), where
    after = env.event_rows()
    if status == 202:
        env.accepted += 1
        answer = response.get_json()
        assert after - rows == (0 if answer["status"] == "duplicate" else 1), where
    else:
        assert after == rows, f"stored {after - rows} event(s) for a refused request: {where}"
    is_admin_write = req.method.upper() in MUTATING and req.path.startswith("/integrations/")
    if is_admin_write and 200 <= status < 300:
        env.restore_configs()
    else:
        assert env.configs() == configs, f"configs changed: {where}"
    return int(status)


FAST = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
QUICK = {"webhooks": 120, "admin": 100, "token": 50, "anything": 50}
SLOW = {"webhooks": 4000, "admin": 1600, "token": 2200, "anything": 2250}  # 10,050
STRATEGIES: dict[str, Callable[[], st.SearchStrategy[Req]]] = {
    "webhooks": webhook_requests,
    "admin": admin_requests,
    "token": token_requests,
    "anything": anything_requests,
}


# Statuses each family must produce, so the generators are seen to reach past every check.
EXPECTED = {
    "webhooks": {202, 400, 401, 403, 404, 405, 413, 415},
    "admin": {200, 201, 400, 401, 404, 405, 415, 422},
    "token": {200, 400, 401, 405},
    "anything": {404, 405},
}
EXPECTED_QUICK = {
    "webhooks": {202, 400, 401, 403, 404, 415},
    "admin": {200, 400, 401, 422},
    "token": {200, 400, 401},
    "anything": {404},
}


def run_fuzz(env: Env, kind: str, examples: int) -> Counter[int]:
    seen: Counter[int] = Counter()

    @settings(FAST, max_examples=examples)
    @given(req=STRATEGIES[kind]())
    def fuzz(req: Req) -> None:
        seen[check(env, req)] += 1

    fuzz()
    return seen


@pytest.mark.parametrize("kind", list(STRATEGIES))
def test_fuzz_quick(env: Env, kind: str) -> None:
    """A few hundred examples in the normal edit loop: the same properties as the slow run."""
    seen = run_fuzz(env, kind, QUICK[kind])
    assert sum(seen.values()) >= QUICK[kind]
    assert EXPECTED_QUICK[kind] <= set(seen), f"statuses reached: {dict(seen)}"


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(SLOW))
def test_fuzz(env: Env, kind: str) -> None:
    """At least 10,000 examples in total over the four request families."""
    seen = run_fuzz(env, kind, SLOW[kind])
    assert sum(seen.values()) >= SLOW[kind], dict(seen)
    assert EXPECTED[kind] <= set(seen), f"statuses reached: {dict(seen)}"
