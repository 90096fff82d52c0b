"""connector.webhook_auth: tokens, token requests, client addresses and per-request checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from connector import webhook_auth
from connector.errors import AuthenticationError, ForbiddenError, IntakeError, PayloadError
from connector.models import Integration, WebhookAuth
from connector.webhook_auth import (
    TokenIssuer,
    check_request,
    client_address,
    parse_token_request,
    sign_standard_webhook,
)

CLIENT_ID = "didomi-webhook"
CLIENT_SECRET = "s3cret-client-secret-0123456789"
HEADER_NAME = "X-Didomi-Secret"
HEADER_SECRET = "header-secret-0123456789abcdef"
SW_KEY = bytes(range(32))
SW_SECRET = "whsec_" + base64.b64encode(SW_KEY).decode()
SW_OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
BODY = b'{"type": "event.created", "parameters": {"entity": {"id": "e1"}}}'
T0 = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def integration(webhook: WebhookAuth | None = None, integration_id: str = "acme") -> Integration:
    return Integration(
        id=integration_id,
        instance="https://123-abc-456.mktorest.com",
        client_id="marketo-id",
        client_secret="marketo-secret",
        webhook=webhook,
    )


OAUTH = WebhookAuth(oauth_client_id=CLIENT_ID, oauth_client_secret=CLIENT_SECRET, token_ttl=3600)
HEADER = WebhookAuth(header_name=HEADER_NAME, header_secret=HEADER_SECRET)
SIGNED = WebhookAuth(standard_webhooks_secret=SW_SECRET)
ALL_THREE = WebhookAuth(
    oauth_client_id=CLIENT_ID,
    oauth_client_secret=CLIENT_SECRET,
    header_name=HEADER_NAME,
    header_secret=HEADER_SECRET,
    standard_webhooks_secret=SW_SECRET,
)


def forge(claims: object, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> str:
    """A token in the issuer's format with arbitrary claims, signed with the real derived key."""
    payload = json.dumps(claims).encode()
    mac = hmac.new(webhook_auth._token_key(client_id, client_secret), payload, hashlib.sha256).digest()
    return webhook_auth._b64url(payload) + "." + webhook_auth._b64url(mac)


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- TokenIssuer ---------------------------------------------------------------------------------


def test_issue_returns_a_token_that_verifies_for_its_integration() -> None:
    issuer = TokenIssuer(Clock())
    acme = integration(OAUTH)
    token, expires_in = issuer.issue(acme, CLIENT_ID, CLIENT_SECRET)
    assert expires_in == 3600
    assert issuer.verify(acme, token) is True
    payload = json.loads(b64url_decode(token.split(".")[0]))
    assert payload["i"] == "acme"
    assert payload["e"] == int(T0) + 3600
    assert CLIENT_SECRET not in token and CLIENT_SECRET not in json.dumps(payload)


def test_expires_in_follows_the_configured_ttl() -> None:
    acme = integration(replace(OAUTH, token_ttl=60))
    assert TokenIssuer(Clock()).issue(acme, CLIENT_ID, CLIENT_SECRET)[1] == 60


def test_tokens_carry_a_random_nonce() -> None:
    issuer = TokenIssuer(Clock())
    acme = integration(OAUTH)
    first, _ = issuer.issue(acme, CLIENT_ID, CLIENT_SECRET)
    second, _ = issuer.issue(acme, CLIENT_ID, CLIENT_SECRET)
    assert first != second
    assert issuer.verify(acme, first) and issuer.verify(acme, second)


def test_token_expires_after_ttl_on_the_injected_clock() -> None:
    clock = Clock(T0 + 0.9)  # the expiry counts from the whole second
    issuer = TokenIssuer(clock)
    acme = integration(OAUTH)
    token, _ = issuer.issue(acme, CLIENT_ID, CLIENT_SECRET)
    clock.now = T0 + 3599.999
    assert issuer.verify(acme, token) is True
    clock.now = T0 + 3600
    assert issuer.verify(acme, token) is False
    clock.now = T0 + 10**9
    assert issuer.verify(acme, token) is False


def test_any_process_with_the_config_can_verify() -> None:
    token, _ = TokenIssuer(Clock()).issue(integration(OAUTH), CLIENT_ID, CLIENT_SECRET)
    assert TokenIssuer(Clock()).verify(integration(OAUTH), token) is True


def test_token_for_another_integration_is_rejected_even_with_the_same_credentials() -> None:
    issuer = TokenIssuer(Clock())
    token, _ = issuer.issue(integration(OAUTH, "acme"), CLIENT_ID, CLIENT_SECRET)
    assert issuer.verify(integration(OAUTH, "other"), token) is False
    other_creds = replace(OAUTH, oauth_client_id="other-client", oauth_client_secret="other-secret-0123456789")
    assert issuer.verify(integration(other_creds, "other"), token) is False


@pytest.mark.parametrize(
    "rotated",
    [
        replace(OAUTH, oauth_client_secret="a-brand-new-secret-0123456789"),
        replace(OAUTH, oauth_client_id="a-new-client-id"),
    ],
)
def test_rotating_the_credentials_revokes_outstanding_tokens(rotated: WebhookAuth) -> None:
    issuer = TokenIssuer(Clock())
    token, _ = issuer.issue(integration(OAUTH), CLIENT_ID, CLIENT_SECRET)
    assert issuer.verify(integration(rotated), token) is False


@pytest.mark.parametrize("webhook", [None, WebhookAuth(), HEADER, replace(OAUTH, oauth_client_secret=None)])
def test_verify_is_false_without_an_oauth_client(webhook: WebhookAuth | None) -> None:
    token, _ = TokenIssuer(Clock()).issue(integration(OAUTH), CLIENT_ID, CLIENT_SECRET)
    assert TokenIssuer(Clock()).verify(integration(webhook), token) is False


def test_forge_helper_builds_valid_tokens() -> None:
    # Guards the negative tests below: a well-formed forged token with good claims does verify.
    assert TokenIssuer(Clock()).verify(integration(OAUTH), forge({"i": "acme", "e": int(T0) + 10})) is True


@pytest.mark.parametrize(
    "claims",
    [
        {"i": "acme", "e": str(int(T0) + 10)},
        {"i": "acme", "e": float(T0 + 10)},
        {"i": "acme", "e": True},
        {"i": "acme"},
        {"e": int(T0) + 10},
        {"i": ["acme"], "e": int(T0) + 10},
        ["acme", int(T0) + 10],
        "acme",
    ],
)
def test_signed_but_malformed_claims_are_rejected(claims: object) -> None:
    assert TokenIssuer(Clock()).verify(integration(OAUTH), forge(claims)) is False


def test_token_signed_with_another_key_is_rejected() -> None:
    token = forge({"i": "acme", "e": int(T0) + 10}, client_secret="not-the-secret-0123456789")
    assert TokenIssuer(Clock()).verify(integration(OAUTH), token) is False


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: _flip(t, 3),  # payload
        lambda t: _flip(t, len(t) - 5),  # mac
        lambda t: t.split(".")[0] + "." + t.split(".")[0],
        lambda t: t + "=",
        lambda t: t.split(".")[0] + "==." + t.split(".")[1],
        lambda t: t + ".x",
        lambda t: t[:-1],
        lambda t: " " + t,
        lambda t: t.upper(),
        # the claim changed to another integration, the old MAC kept
        lambda t: (
            webhook_auth._b64url(b64url_decode(t.split(".")[0]).replace(b'"acme"', b'"acmf"')) + "." + t.split(".")[1]
        ),
    ],
)
def test_tampered_tokens_are_rejected(tamper: Callable[[str], str]) -> None:
    issuer = TokenIssuer(Clock())
    acme = integration(OAUTH)
    token, _ = issuer.issue(acme, CLIENT_ID, CLIENT_SECRET)
    tampered = tamper(token)
    assert tampered != token
    assert issuer.verify(acme, tampered) is False


def test_non_canonical_base64_spelling_is_rejected() -> None:
    issuer = TokenIssuer(Clock())
    acme = integration(OAUTH)
    token, _ = issuer.issue(acme, CLIENT_ID, CLIENT_SECRET)
    payload, mac = token.split(".")
    # The last character of a 43-character MAC carries 2 unused bits; flipping one gives another
    # spelling of the same bytes, which strict verification refuses.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = payload + "." + mac[:-1] + alphabet[alphabet.index(mac[-1]) ^ 1]
    assert b64url_decode(respelled.split(".")[1]) == b64url_decode(mac)
    assert issuer.verify(acme, token) is True
    assert issuer.verify(acme, respelled) is False


def test_non_canonical_payload_spelling_is_rejected() -> None:
    issuer = TokenIssuer(Clock())
    acme = integration(OAUTH)
    claims: dict[str, Any] = {"i": "acme", "e": int(T0) + 10, "n": "x"}
    while len(json.dumps(claims)) % 3 != 1:  # leave 4 unused bits in the last base64 character
        claims["n"] += "x"
    token = forge(claims)
    payload, mac = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = payload[:-1] + alphabet[alphabet.index(payload[-1]) ^ 1] + "." + mac
    assert b64url_decode(respelled.split(".")[0]) == b64url_decode(payload)
    assert issuer.verify(acme, token) is True
    assert issuer.verify(acme, respelled) is False


JUNK_TOKENS = [
    "",
    ".",
    "..",
    "a.b",
    "Bearer",
    "null",
    "\x00",
    "é.é",
    "🙂" * 1000,
    "x" * 1_000_000,
    "A" * 2000 + "." + "A" * 43,
    "A" * 1_000_000 + "." + "A" * 43,
    "\ud800.\udfff",
    "eyJ.eyJ",
    "==." + "A" * 43,
]


@pytest.mark.parametrize("junk", JUNK_TOKENS, ids=range(len(JUNK_TOKENS)))
def test_verify_never_raises_on_junk(junk: str) -> None:
    assert TokenIssuer(Clock()).verify(integration(OAUTH), junk) is False


@pytest.mark.parametrize("junk", [None, b"bytes", 42, ["a", "b"]])
def test_verify_never_raises_on_non_strings(junk: object) -> None:
    assert TokenIssuer(Clock()).verify(integration(OAUTH), junk) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("webhook", "client_id", "client_secret"),
    [
        (OAUTH, CLIENT_ID, "wrong-secret"),
        (OAUTH, "wrong-id", CLIENT_SECRET),
        (OAUTH, CLIENT_ID, CLIENT_SECRET[:-1]),
        (OAUTH, CLIENT_ID, CLIENT_SECRET + "x"),
        (OAUTH, "", ""),
        (OAUTH, "é", "🙂"),  # non-ASCII must not make compare_digest raise TypeError
        (OAUTH, CLIENT_ID, "\ud800"),
        (None, CLIENT_ID, CLIENT_SECRET),
        (HEADER, CLIENT_ID, CLIENT_SECRET),
        (replace(OAUTH, oauth_client_secret=None), CLIENT_ID, CLIENT_SECRET),
        (replace(OAUTH, oauth_client_secret=""), CLIENT_ID, ""),
    ],
)
def test_issue_refuses_bad_credentials_with_one_generic_message(
    webhook: WebhookAuth | None, client_id: str, client_secret: str
) -> None:
    with pytest.raises(AuthenticationError) as caught:
        TokenIssuer(Clock()).issue(integration(webhook), client_id, client_secret)
    assert str(caught.value) == "invalid client credentials"
    assert caught.value.code == "invalid_client"
    assert caught.value.http_status == 401


# -- parse_token_request -------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_form_credentials() -> None:
    form = {"grant_type": "client_credentials", "client_id": "id", "client_secret": "pw", "scope": "x y"}
    assert parse_token_request(form, None) == ("id", "pw")


def test_basic_credentials() -> None:
    assert parse_token_request({"grant_type": "client_credentials"}, basic("id", "pw")) == ("id", "pw")


def test_basic_scheme_is_case_insensitive() -> None:
    header = "bAsIc " + basic("id", "pw").split(" ", 1)[1]
    assert parse_token_request({"grant_type": "client_credentials"}, header) == ("id", "pw")


def test_basic_credentials_are_url_decoded() -> None:
    # RFC 6749 §2.3.1: form-urlencode, then Basic-encode. "%3A" is a colon inside the id.
    header = basic("my%3Aclient", "p%40ss+word%2Bplus:colon")
    assert parse_token_request({"grant_type": "client_credentials"}, header) == (
        "my:client",
        "p@ss word+plus:colon",
    )


def test_non_basic_authorization_falls_back_to_the_form() -> None:
    form = {"grant_type": "client_credentials", "client_id": "id", "client_secret": "pw"}
    assert parse_token_request(form, "Bearer something") == ("id", "pw")


def test_both_methods_must_agree() -> None:
    form = {"grant_type": "client_credentials", "client_id": "id", "client_secret": "pw"}
    assert parse_token_request(form, basic("id", "pw")) == ("id", "pw")
    with pytest.raises(AuthenticationError):
        parse_token_request(form, basic("id", "other"))


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"grant_type": "password", "client_id": "id", "client_secret": "pw"},
        {"grant_type": "authorization_code"},
        {"grant_type": "CLIENT_CREDENTIALS"},
        {"grant_type": ""},
    ],
)
def test_other_grant_types_are_unsupported(form: dict[str, str]) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_token_request(form, basic("id", "pw"))
    assert caught.value.code == "unsupported_grant_type"
    assert caught.value.http_status == 400


@pytest.mark.parametrize(
    ("form", "authorization"),
    [
        ({}, None),
        ({"client_id": "id"}, None),
        ({"client_secret": "pw"}, None),
        ({"client_id": "", "client_secret": "pw"}, None),
        ({"client_id": "id", "client_secret": ""}, None),
        ({}, "Bearer token"),
        ({}, "Basic"),
        ({}, "Basic !!!not-base64!!!"),
        ({}, "Basic " + base64.b64encode(b"no-colon").decode()),
        ({}, "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()),
        ({}, "Basic éé"),
        ({}, basic("", "pw")),
        ({}, basic("id", "")),
    ],
)
def test_missing_or_malformed_credentials(form: dict[str, str], authorization: str | None) -> None:
    with pytest.raises(AuthenticationError) as caught:
        parse_token_request({"grant_type": "client_credentials", **form}, authorization)
    assert str(caught.value) == "invalid client credentials"
    assert caught.value.code == "invalid_client"


# -- client_address ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remote", "forwarded", "hops", "expected"),
    [
        ("35.159.1.63", None, 0, "35.159.1.63"),
        ("35.159.1.63", "6.6.6.6", 0, "35.159.1.63"),  # no trusted proxy: the header is ignored
        ("10.0.0.1", "35.159.1.63", 1, "35.159.1.63"),
        ("10.0.0.1", "6.6.6.6, 35.159.1.63", 1, "35.159.1.63"),  # client-forged left entry ignored
        ("10.0.0.1", "6.6.6.6,35.159.1.63", 1, "35.159.1.63"),
        ("10.0.0.2", "6.6.6.6, 35.159.1.63, 10.0.0.1", 2, "35.159.1.63"),
        ("10.0.0.2", "35.159.1.63, 10.0.0.1", 2, "35.159.1.63"),
        ("10.0.0.2", "10.0.0.1", 2, "10.0.0.2"),  # fewer entries than hops: remote_addr
        ("10.0.0.1", None, 1, "10.0.0.1"),
        ("10.0.0.1", "", 1, None),
        ("10.0.0.1", "junk", 1, None),
        ("10.0.0.1", "35.159.1.63, junk", 1, None),  # junk where the proxy's entry should be
        ("10.0.0.1", "junk, 35.159.1.63", 1, "35.159.1.63"),
        ("10.0.0.1", "35.159.1.63,,", 2, None),
        ("10.0.0.1", "35.159.1.63:52100", 1, "35.159.1.63"),
        ("10.0.0.1", "[2001:db8::1]:443", 1, "2001:db8::1"),
        ("10.0.0.1", "[2001:db8::1]", 1, "2001:db8::1"),
        ("10.0.0.1", "2001:DB8:0::1", 1, "2001:db8::1"),
        ("10.0.0.1", "[2001:db8::1", 1, None),
        ("10.0.0.1", "[2001:db8::1]x", 1, None),
        ("10.0.0.1", "35.159.1.63:", 1, None),
        ("10.0.0.1", "35.159.1.63:\uff18\uff10", 1, None),
        ("10.0.0.1", "035.159.1.63", 1, None),
        ("10.0.0.1", "35.159.1.63/32", 1, None),
        ("10.0.0.1", "unknown", 1, None),
        ("10.0.0.1", "é", 1, None),
        ("10.0.0.1", "\x00", 1, None),
        ("10.0.0.1", "6.6.6.6, " * 10_000 + "35.159.1.63", 1, "35.159.1.63"),
        ("10.0.0.1", "1" * 100_000, 1, None),
        ("::ffff:35.159.1.63", None, 0, "35.159.1.63"),
        ("2001:db8::1", None, 0, "2001:db8::1"),
        (None, None, 0, None),
        (None, "35.159.1.63", 0, None),
        (None, None, 1, None),
        ("", None, 0, None),
        ("junk", None, 0, None),
        ("10.0.0.1", "35.159.1.63", -1, "10.0.0.1"),
    ],
)
def test_client_address(remote: str | None, forwarded: str | None, hops: int, expected: str | None) -> None:
    assert client_address(remote, forwarded, hops) == expected


# -- check_request -------------------------------------------------------------------------------


def check(
    webhook: WebhookAuth | None,
    headers: dict[str, str] | None = None,
    *,
    body: bytes = BODY,
    remote: str | None = "35.159.1.63",
    now: float | None = None,
    issuer: TokenIssuer | None = None,
    integration_id: str = "acme",
) -> None:
    check_request(
        integration(webhook, integration_id),
        headers=headers or {},
        body=body,
        remote_addr=remote,
        now=time.time() if now is None else now,
        issuer=issuer or TokenIssuer(),
    )


def bearer(webhook: WebhookAuth = OAUTH, integration_id: str = "acme", issuer: TokenIssuer | None = None) -> str:
    token, _ = (issuer or TokenIssuer()).issue(integration(webhook, integration_id), CLIENT_ID, CLIENT_SECRET)
    return "Bearer " + token


def signed(body: bytes = BODY, secret: str = SW_SECRET, at: int | None = None, msg_id: str = "msg_1") -> dict[str, str]:
    return sign_standard_webhook(secret, msg_id, int(time.time()) if at is None else at, body)


def refused(
    webhook: WebhookAuth | None,
    headers: dict[str, str] | None = None,
    *,
    body: bytes = BODY,
    remote: str | None = "35.159.1.63",
    now: float | None = None,
    issuer: TokenIssuer | None = None,
) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        check(webhook, headers, body=body, remote=remote, now=now, issuer=issuer)
    assert type(caught.value) is AuthenticationError
    assert str(caught.value) == "authentication required"
    assert caught.value.http_status == 401
    return caught.value


@pytest.mark.parametrize("webhook", [None, WebhookAuth(), WebhookAuth(header_name="X-Only-A-Name")])
def test_nothing_configured_lets_everything_through(webhook: WebhookAuth | None) -> None:
    check(webhook, {}, remote=None, body=b"\xff not json")


# allowlist


@pytest.mark.parametrize(
    ("allowed", "remote"),
    [
        (("35.159.1.63",), "35.159.1.63"),
        (("35.159.1.63/32",), "35.159.1.63"),
        (("35.159.0.0/16",), "35.159.200.1"),
        (("35.159.1.1/16",), "35.159.200.1"),  # host bits set: accepted as the network
        (("10.0.0.0/8", "35.159.1.63"), "35.159.1.63"),
        (("35.159.1.63",), "::ffff:35.159.1.63"),
        (("2001:db8::/32",), "2001:db8:1::5"),
        (("2001:db8::1",), "2001:DB8::1"),
        ((" 35.159.1.63 ",), "35.159.1.63"),
        (("not-an-ip", "35.159.1.63"), "35.159.1.63"),
    ],
)
def test_allowlist_admits(allowed: tuple[str, ...], remote: str) -> None:
    check(WebhookAuth(allowed_ips=allowed), remote=remote)


@pytest.mark.parametrize(
    ("allowed", "remote"),
    [
        (("35.159.1.63",), "35.159.1.64"),
        (("35.159.1.0/24",), "35.159.2.1"),
        (("2001:db8::/32",), "2001:db9::1"),
        (("::/0",), "35.159.1.63"),  # an IPv6 network does not admit IPv4 clients
        (("0.0.0.0/0",), "2001:db8::1"),
        (("35.159.1.63",), None),
        (("35.159.1.63",), ""),
        (("35.159.1.63",), "junk"),
        (("not-an-ip",), "35.159.1.63"),
        (("",), "35.159.1.63"),
    ],
)
def test_allowlist_refuses(allowed: tuple[str, ...], remote: str | None) -> None:
    with pytest.raises(ForbiddenError) as caught:
        check(WebhookAuth(allowed_ips=allowed), remote=remote)
    assert str(caught.value) == "source address not allowed"
    assert caught.value.http_status == 403
    if remote:
        assert remote not in str(caught.value)


def test_allowlist_reads_x_forwarded_for_only_through_trusted_proxies() -> None:
    behind_proxy = WebhookAuth(allowed_ips=("35.159.1.63",), trusted_proxy_hops=1)
    check(behind_proxy, {"X-Forwarded-For": "6.6.6.6, 35.159.1.63"}, remote="10.0.0.1")
    check(behind_proxy, {"x-forwarded-for": "35.159.1.63"}, remote="10.0.0.1")
    with pytest.raises(ForbiddenError):  # the proxy's own address is not the client
        check(behind_proxy, {}, remote="10.0.0.1")
    with pytest.raises(ForbiddenError):  # the allowed address forged to the left of the real client
        check(behind_proxy, {"X-Forwarded-For": "35.159.1.63, 6.6.6.6"}, remote="10.0.0.1")
    direct = WebhookAuth(allowed_ips=("35.159.1.63",))
    with pytest.raises(ForbiddenError):  # without trusted proxies the header is ignored
        check(direct, {"X-Forwarded-For": "35.159.1.63"}, remote="6.6.6.6")


def test_allowlist_is_checked_before_credentials() -> None:
    webhook = replace(HEADER, allowed_ips=("35.159.1.63",))
    with pytest.raises(ForbiddenError):
        check(webhook, {HEADER_NAME: HEADER_SECRET}, remote="6.6.6.6")
    refused(webhook, {}, remote="35.159.1.63")
    check(webhook, {HEADER_NAME: HEADER_SECRET}, remote="35.159.1.63")


# bearer token


def test_bearer_token_alone() -> None:
    check(OAUTH, {"Authorization": bearer()})
    check(OAUTH, {"authorization": "bearer " + bearer().split(" ", 1)[1]})
    check(OAUTH, {"AUTHORIZATION": "  Bearer   " + bearer().split(" ", 1)[1] + " "})


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer not-a-token",
        "Token x",
        basic(CLIENT_ID, CLIENT_SECRET),
        CLIENT_SECRET,
        "Bearer " + "x" * 100_000,
        "Bearer é🙂",
    ],
)
def test_bearer_token_refused(authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    error = refused(OAUTH, headers)
    if authorization:
        assert authorization not in str(error)


def test_bearer_token_of_another_integration_is_refused() -> None:
    refused(OAUTH, {"Authorization": bearer(integration_id="other")})


def test_expired_bearer_token_is_refused() -> None:
    clock = Clock()
    issuer = TokenIssuer(clock)
    headers = {"Authorization": bearer(issuer=issuer)}
    check(OAUTH, headers, issuer=issuer)
    clock.now += 3600
    refused(OAUTH, headers, issuer=issuer)


# header secret


def test_header_secret_alone() -> None:
    check(HEADER, {HEADER_NAME: HEADER_SECRET})
    check(HEADER, {HEADER_NAME.lower(): HEADER_SECRET})
    check(replace(HEADER, header_name="x-didomi-secret"), {"X-DIDOMI-SECRET": HEADER_SECRET})


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {HEADER_NAME: ""},
        {HEADER_NAME: HEADER_SECRET[:-1]},
        {HEADER_NAME: HEADER_SECRET + "x"},
        {HEADER_NAME: HEADER_SECRET.upper()},
        {HEADER_NAME: " " + HEADER_SECRET},
        {HEADER_NAME: "é🙂"},
        {HEADER_NAME: "\ud800"},
        {"X-Other": HEADER_SECRET},
        {"Authorization": "Bearer " + HEADER_SECRET},
    ],
)
def test_header_secret_refused(headers: dict[str, str]) -> None:
    refused(HEADER, headers)


def test_header_secret_without_a_header_name_refuses_everything() -> None:
    refused(replace(HEADER, header_name=None), {HEADER_NAME: HEADER_SECRET})


# Standard Webhooks


def test_standard_webhooks_alone() -> None:
    check(SIGNED, signed())


def test_standard_webhooks_headers_are_case_insensitive() -> None:
    check(SIGNED, {name.upper(): value for name, value in signed().items()})


def test_standard_webhooks_signature_covers_the_raw_bytes() -> None:
    same_json = b'{"type":"event.created","parameters":{"entity":{"id":"e1"}}}'
    assert json.loads(same_json) == json.loads(BODY)
    refused(SIGNED, signed(BODY), body=same_json)


@pytest.mark.parametrize("body", [BODY + b" ", BODY[:-1], BODY.replace(b"e1", b"e2"), b"", b"\xff\xfe not utf-8"])
def test_standard_webhooks_tampered_body(body: bytes) -> None:
    refused(SIGNED, signed(BODY), body=body)


def test_standard_webhooks_timestamp_tolerance_is_five_minutes() -> None:
    at = int(time.time())
    headers = signed(at=at)
    check(SIGNED, headers, now=at + 300)
    check(SIGNED, headers, now=at - 300)
    refused(SIGNED, headers, now=at + 300.5)
    refused(SIGNED, headers, now=at - 301)
    refused(SIGNED, signed(at=at - 301))
    refused(SIGNED, signed(at=at - 3600))
    refused(SIGNED, signed(at=at + 400))


def test_standard_webhooks_age_is_checked_against_the_injected_clock() -> None:
    # Fresh by the wall clock (which the library uses), stale by the injected one.
    headers = signed(at=int(time.time()))
    refused(SIGNED, headers, now=time.time() + 400)
    refused(SIGNED, headers, now=time.time() - 400)


def test_standard_webhooks_rotation_accepts_any_listed_signature() -> None:
    at = int(time.time())
    old = signed(secret=SW_OLD_SECRET, at=at)["webhook-signature"]
    new = signed(secret=SW_SECRET, at=at)["webhook-signature"]
    headers = signed(at=at)
    for signature in (f"{old} {new}", f"{new} {old}", f"v1a,abc {old}  {new}", f"v2,xyz junk v1,!!! {new}"):
        check(SIGNED, {**headers, "webhook-signature": signature})
    refused(SIGNED, {**headers, "webhook-signature": old})
    refused(replace(SIGNED, standard_webhooks_secret=SW_OLD_SECRET), {**headers, "webhook-signature": new})


@pytest.mark.parametrize(
    "change",
    [
        {"webhook-id": None},
        {"webhook-timestamp": None},
        {"webhook-signature": None},
        {"webhook-id": "msg_2"},  # the id is signed
        {"webhook-timestamp": "now"},
        {"webhook-timestamp": "1e9"},
        {"webhook-timestamp": "-1"},
        {"webhook-timestamp": "9" * 5000},
        {"webhook-timestamp": "\uff11\uff17\uff10\uff10"},
        {"webhook-signature": ""},
        {"webhook-signature": "v1"},
        {"webhook-signature": "v1,"},
        {"webhook-signature": "v1,AAAA"},
        {"webhook-signature": "v1,é🙂"},
        {"webhook-signature": "v1,a,b"},
        {"webhook-signature": "x" * 100_000},
    ],
)
def test_standard_webhooks_bad_headers(change: dict[str, str | None]) -> None:
    headers = signed()
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    refused(SIGNED, headers)


def test_timestamp_header_is_the_signed_one() -> None:
    at = int(time.time())
    headers = {**signed(at=at), "webhook-timestamp": str(at - 1)}
    refused(SIGNED, headers)


def test_sign_standard_webhook_follows_the_spec() -> None:
    headers = sign_standard_webhook(SW_SECRET, "msg_abc", 1_700_000_000, BODY)
    expected = hmac.new(SW_KEY, b"msg_abc.1700000000." + BODY, hashlib.sha256).digest()
    assert headers == {
        "webhook-id": "msg_abc",
        "webhook-timestamp": "1700000000",
        "webhook-signature": "v1," + base64.b64encode(expected).decode(),
    }


# combined


def all_three_headers() -> dict[str, str]:
    return {"Authorization": bearer(ALL_THREE), HEADER_NAME: HEADER_SECRET, **signed()}


def test_all_methods_together() -> None:
    check(ALL_THREE, all_three_headers())
    check(replace(ALL_THREE, allowed_ips=("35.159.1.63",)), all_three_headers(), remote="35.159.1.63")


@pytest.mark.parametrize(
    "drop",
    [
        ["Authorization"],
        [HEADER_NAME],
        ["webhook-signature"],
        ["Authorization", HEADER_NAME],
        ["Authorization", HEADER_NAME, "webhook-id", "webhook-timestamp", "webhook-signature"],
    ],
)
def test_every_configured_method_must_pass(drop: list[str]) -> None:
    headers = all_three_headers()
    for name in drop:
        del headers[name]
    refused(ALL_THREE, headers)


@pytest.mark.parametrize(
    ("webhook", "headers"),
    [
        (replace(OAUTH, header_name=HEADER_NAME, header_secret=HEADER_SECRET), {HEADER_NAME: HEADER_SECRET}),
        (replace(HEADER, standard_webhooks_secret=SW_SECRET), {HEADER_NAME: HEADER_SECRET}),
        (replace(HEADER, standard_webhooks_secret=SW_SECRET), signed()),
    ],
)
def test_one_method_does_not_stand_in_for_another(webhook: WebhookAuth, headers: dict[str, str]) -> None:
    refused(webhook, headers)


def test_tampered_body_fails_even_when_other_methods_pass() -> None:
    refused(ALL_THREE, all_three_headers(), body=BODY + b"x")


def test_refusals_say_nothing_about_which_check_failed_or_what_was_sent() -> None:
    headers = all_three_headers()
    other_signature = signed(secret=SW_OLD_SECRET, at=int(headers["webhook-timestamp"]))["webhook-signature"]
    variants = [
        {"Authorization": headers["Authorization"] + "x"},
        {HEADER_NAME: HEADER_SECRET + "x"},
        {"webhook-signature": other_signature},
    ]
    failures = [refused(ALL_THREE, {**headers, **variant}) for variant in variants]
    messages = {(str(e), repr(e), e.code, e.message) for e in failures}
    assert len(messages) == 1
    text = " ".join(next(iter(messages)))
    for secret in (CLIENT_SECRET, HEADER_SECRET, SW_SECRET, headers["Authorization"], headers["webhook-signature"]):
        assert secret not in text


def test_errors_belong_to_the_intake_tree() -> None:
    assert issubclass(AuthenticationError, IntakeError) and issubclass(ForbiddenError, IntakeError)
