"""Who may call ``POST /webhooks/<id>``: source allowlist, bearer tokens, header secret, signatures.

Pure: no Flask, no I/O, no logging; the web layer passes plain values and the time.

Didomi signs nothing (research/didomi.md §1.2, §5.2). What it can do is:

- fetch a token from an OAuth2 client-credentials token URL that *we* provide (``TokenIssuer``,
  served at ``POST /oauth/token``) and send ``Authorization: Bearer <token>``;
- add fixed custom headers to every request (the ``header`` method);
- call from 35.159.1.63 (the ``allowed_ips`` allowlist).

Standard Webhooks signatures are an optional extra for other senders and for test clients; they
are not Didomi's. Every configured credential method must pass. Refusals carry constant messages
that never say which check failed and never contain secrets, tokens or header values.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import ipaddress
import json
import math
import re
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from standardwebhooks.webhooks import Webhook

from connector.errors import AuthenticationError, ForbiddenError, PayloadError
from connector.models import Integration, WebhookAuth

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

INVALID_CLIENT = "invalid client credentials"
AUTHENTICATION_REQUIRED = "authentication required"
FORBIDDEN = "source address not allowed"

#: Standard Webhooks' clock-skew tolerance, in seconds (the library's, applied to the injected clock).
STANDARD_WEBHOOKS_TOLERANCE = 5 * 60

_TOKEN_KEY_LABEL = b"connector-webhook-token-v1"
_MAX_TOKEN_CHARS = 2048
# base64url(payload) "." base64url(HMAC-SHA256) -- 32 bytes are 43 characters unpadded.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,2000}\.[A-Za-z0-9_-]{43}")


def _utf8(text: str) -> bytes:
    # surrogatepass: a lone surrogate must compare unequal, not raise.
    return text.encode("utf-8", "surrogatepass")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes | None:
    """Decode canonical unpadded base64url, or None (so one token has exactly one spelling)."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if _b64url(data) == text else None


def _token_key(client_id: str, client_secret: str) -> bytes:
    # Derived from the credentials, so rotating either one revokes every outstanding token.
    return hmac.new(_utf8(client_secret), _TOKEN_KEY_LABEL + b"\x00" + _utf8(client_id), hashlib.sha256).digest()


def _oauth_credentials(integration: Integration) -> tuple[str, str, WebhookAuth] | None:
    webhook = integration.webhook
    if webhook is None or not webhook.oauth_client_id or not webhook.oauth_client_secret:
        return None
    return webhook.oauth_client_id, webhook.oauth_client_secret, webhook


class TokenIssuer:
    """Issue and verify stateless bearer tokens for the OAuth2 client-credentials flow.

    A token is ``base64url(payload) "." base64url(HMAC-SHA256(key, payload))``; the payload holds
    the integration id, the expiry and a random nonce, and the key is derived from the integration's
    webhook OAuth client id and secret. Any process that can read the integration can verify a token
    without shared storage; tokens cannot be revoked one by one, only all at once by rotating the secret.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def issue(self, integration: Integration, client_id: str, client_secret: str) -> tuple[str, int]:
        """Return ``(access_token, expires_in)`` for valid client credentials.

        Raises:
            AuthenticationError: ``invalid_client``, when the integration has no OAuth client or the
                credentials do not match (both compared in constant time).
        """
        configured = _oauth_credentials(integration)
        if configured is None or not isinstance(client_id, str) or not isinstance(client_secret, str):
            raise AuthenticationError(INVALID_CLIENT, code="invalid_client")
        expected_id, expected_secret, webhook = configured
        id_ok = hmac.compare_digest(_utf8(client_id), _utf8(expected_id))
        secret_ok = hmac.compare_digest(_utf8(client_secret), _utf8(expected_secret))
        if not (id_ok and secret_ok):
            raise AuthenticationError(INVALID_CLIENT, code="invalid_client")
        ttl = int(webhook.token_ttl)
        claims = {"i": integration.id, "e": math.floor(self._clock()) + ttl, "n": secrets.token_urlsafe(12)}
        payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode("utf-8")
        mac = hmac.new(_token_key(expected_id, expected_secret), payload, hashlib.sha256).digest()
        return f"{_b64url(payload)}.{_b64url(mac)}", ttl

    def verify(self, integration: Integration, token: str) -> bool:
        """True if *token* was issued for this integration's current credentials and has not expired.

        Never raises: any string (or non-string) that is not such a token gives False.
        """
        configured = _oauth_credentials(integration)
        if configured is None or not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
            return False
        if not _TOKEN_SHAPE.fullmatch(token):
            return False
        payload_part, mac_part = token.split(".")
        payload = _unb64url(payload_part)
        if payload is None:
            return False
        key = _token_key(configured[0], configured[1])
        expected = _b64url(hmac.new(key, payload, hashlib.sha256).digest())
        if not hmac.compare_digest(expected.encode("ascii"), mac_part.encode("ascii")):
            return False
        try:
            claims = json.loads(payload)
        except ValueError:
            return False
        if not isinstance(claims, dict) or claims.get("i") != integration.id:
            return False  # integrations may share credentials; a token is still for one integration
        expires = claims.get("e")
        if type(expires) is not int:
            return False
        return self._clock() < expires


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """Client credentials from an HTTP Basic header, or None when there is no Basic header."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError and non-ASCII input are all ValueErrors
        raise AuthenticationError(INVALID_CLIENT, code="invalid_client") from None
    user, colon, password = decoded.partition(":")
    if not colon:
        raise AuthenticationError(INVALID_CLIENT, code="invalid_client")
    # RFC 6749 §2.3.1: both parts are application/x-www-form-urlencoded before Basic encoding.
    return unquote_plus(user), unquote_plus(password)


def parse_token_request(form: Mapping[str, str], authorization: str | None) -> tuple[str, str]:
    """Return ``(client_id, client_secret)`` from a client-credentials token request.

    Credentials come from HTTP Basic (RFC 6749 §2.3.1, URL-decoded) or the ``client_id`` /
    ``client_secret`` form fields; if both are sent they must agree. ``scope`` and any other field
    are ignored.

    Raises:
        PayloadError: code ``unsupported_grant_type`` unless ``grant_type=client_credentials``.
        AuthenticationError: code ``invalid_client`` when credentials are missing or malformed.
    """
    if form.get("grant_type") != "client_credentials":
        raise PayloadError("grant_type must be client_credentials", code="unsupported_grant_type")
    basic = _basic_credentials(authorization)
    form_id, form_secret = form.get("client_id"), form.get("client_secret")
    fields = (form_id, form_secret) if isinstance(form_id, str) and isinstance(form_secret, str) else None
    if basic is not None and fields is not None and basic != fields:
        raise AuthenticationError(INVALID_CLIENT, code="invalid_client")
    credentials = basic or fields
    if credentials is None or not credentials[0] or not credentials[1]:
        raise AuthenticationError(INVALID_CLIENT, code="invalid_client")
    return credentials


def _parse_address(text: str) -> IPAddress | None:
    """An address as proxies write it: ``1.2.3.4``, ``1.2.3.4:80``, ``::1``, ``[::1]``, ``[::1]:80``."""
    text = text.strip()
    if not text or len(text) > 100:
        return None
    host = text
    if text.startswith("["):
        end = text.find("]")
        port = text[end + 1 :] if end > 0 else "!"
        if port and not (port.startswith(":") and port[1:].isascii() and port[1:].isdigit()):
            return None
        host = text[1:end]
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        if not (port.isascii() and port.isdigit()):
            return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # dual-stack sockets report IPv4 clients as ::ffff:a.b.c.d
    return address


def client_address(remote_addr: str | None, forwarded_for: str | None, trusted_hops: int) -> str | None:
    """The caller's address, or None when it cannot be determined.

    With ``trusted_hops`` = 0, ``remote_addr``. With N > 0, the N-th entry from the right of
    X-Forwarded-For: the address the outermost of our N trusted proxies saw. Entries to its left
    are client-supplied and never used. Falls back to ``remote_addr`` when the header has fewer than
    N entries (that is the proxy's own address, so an allowlist refuses it). Junk gives None.
    The deployment must make the service reachable only through those proxies, or the header can be forged.
    """
    hops = trusted_hops if isinstance(trusted_hops, int) and trusted_hops > 0 else 0
    candidate = remote_addr
    if hops and isinstance(forwarded_for, str):
        entries = forwarded_for.split(",")
        if len(entries) >= hops:
            candidate = entries[-hops]
    address = _parse_address(candidate) if isinstance(candidate, str) else None
    return None if address is None else str(address)


@functools.lru_cache(maxsize=256)
def _networks(allowed: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    networks: list[IPNetwork] = []
    for entry in allowed:
        if not isinstance(entry, str):
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue  # config.py rejects these; an unparsable entry allows nothing
    return tuple(networks)


def _allowed(address: str | None, allowed: tuple[str, ...]) -> bool:
    parsed = _parse_address(address) if address else None
    if parsed is None:
        return False
    return any(parsed.version == net.version and parsed in net for net in _networks(allowed))


def _bearer_ok(integration: Integration, headers: Mapping[str, str], issuer: TokenIssuer) -> bool:
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    return scheme.lower() == "bearer" and issuer.verify(integration, token.strip())


def _header_ok(webhook: WebhookAuth, headers: Mapping[str, str]) -> bool:
    if not webhook.header_name or not webhook.header_secret:
        return False
    given = headers.get(webhook.header_name.lower())
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(_utf8(given), _utf8(webhook.header_secret))


def _standard_webhooks_ok(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> bool:
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signature = headers.get("webhook-signature")
    if not (msg_id and timestamp and signature):
        return False
    timestamp = timestamp.strip()
    # The library checks the age against its own hard-wired datetime.now(); check it first against the
    # injected clock with the same ±5 minute tolerance, so tests and callers control time. The spec's
    # timestamp is an integer number of seconds.
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    if abs(now - int(timestamp)) > STANDARD_WEBHOOKS_TOLERANCE:
        return False
    # Rotation sends several space-separated "v1,<base64>" entries. The library raises on an entry
    # without exactly one comma even when another entry matches, so drop those malformed entries.
    candidates = " ".join(entry for entry in signature.split() if entry.count(",") == 1)
    if not candidates:
        return False
    try:
        Webhook(secret).verify(
            body,
            {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": candidates},
            json_parse=False,
        )
    except Exception:  # WebhookVerificationError, but also binascii/Unicode/ValueErrors on junk input
        return False
    return True


def check_request(
    integration: Integration,
    *,
    headers: Mapping[str, str],
    body: bytes,
    remote_addr: str | None,
    now: float,
    issuer: TokenIssuer,
) -> None:
    """Refuse a webhook request that the integration's ``webhook`` settings do not allow.

    The allowlist is checked first; then every configured credential method must pass (bearer token,
    header secret, Standard Webhooks signature over the raw *body*). With no ``webhook`` settings or
    no credential method configured, any request that passes the allowlist is accepted.

    Raises:
        ForbiddenError: an allowlist is configured and the client address is not on it.
        AuthenticationError: a configured credential check failed (which one is not said).
    """
    webhook = integration.webhook
    if webhook is None:
        return
    lowered = {str(name).lower(): value for name, value in headers.items()}
    if webhook.allowed_ips:
        address = client_address(remote_addr, lowered.get("x-forwarded-for"), webhook.trusted_proxy_hops)
        if not _allowed(address, tuple(webhook.allowed_ips)):
            raise ForbiddenError(FORBIDDEN)
    if not webhook.authenticates:
        return
    # Every check runs, so the time taken does not tell which one failed.
    results: list[bool] = []
    if webhook.oauth_client_id:
        results.append(_bearer_ok(integration, lowered, issuer))
    if webhook.header_secret:
        results.append(_header_ok(webhook, lowered))
    if webhook.standard_webhooks_secret:
        results.append(_standard_webhooks_ok(webhook.standard_webhooks_secret, lowered, body, now))
    if not all(results):
        raise AuthenticationError(AUTHENTICATION_REQUIRED)


def sign_standard_webhook(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers for *body* (UTF-8) signed with *secret* (``whsec_...``); for tests and QA clients."""
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, tz=UTC), body.decode("utf-8"))
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}
