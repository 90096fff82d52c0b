"""The config checks a schema cannot express: instance URL, known Didomi properties, fields mapped twice,
upsert with leadID, webhook IPs, header names and signing secrets. Pure.

``semantic_problems`` skips any part the schema already found wrong (*clean* says which are clean).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from connector.errors import Problem
from connector.jsontext import quote
from connector.mapping import is_known_property

_RESERVED_HEADERS = frozenset(
    {"authorization", "content-type", "content-length", "host", "transfer-encoding", "cookie"}
    | {"x-forwarded-for"}  # trusted_proxy_hops reads it
)


def semantic_problems(raw: Any, clean: Callable[[str], bool]) -> Iterable[Problem]:
    if not isinstance(raw, Mapping):
        return
    auth = raw.get("authentication")
    instance = auth.get("instance") if isinstance(auth, Mapping) else None
    if isinstance(instance, str) and clean("/authentication/instance"):
        try:
            normalise_instance(instance)
        except ValueError as exc:
            yield Problem("/authentication/instance", str(exc))

    mappings = raw.get("mappings")
    first_at: dict[str, str] = {}
    for i, item in enumerate(mappings if isinstance(mappings, list) else []):
        if not isinstance(item, Mapping):
            continue
        value, field = item.get("value"), item.get("id")
        if isinstance(value, str) and clean(f"/mappings/{i}/value") and not is_known_property(value):
            yield Problem(f"/mappings/{i}/value", f"unknown Didomi property {quote(value, 120)}; {_forms_hint(value)}")
        if isinstance(field, str) and clean(f"/mappings/{i}/id"):
            if field in first_at:
                yield Problem(
                    f"/mappings/{i}/id",
                    f"Marketo field {quote(field)} is mapped twice (first at {first_at[field]})",
                )
            else:
                first_at[field] = f"/mappings/{i}/id"

    props = raw.get("properties")
    identifiers = props.get("user_identifier") if isinstance(props, Mapping) else None
    has_lead_id = identifiers == "leadID" or (isinstance(identifiers, list) and "leadID" in identifiers)
    if raw.get("upsert_mode") is True and has_lead_id:
        yield Problem(
            "/upsert_mode",
            "upsert_mode true cannot be used with user_identifier 'leadID': Marketo cannot create a lead "
            "from an id (lookupField id works only with updateOnly); use 'email' or set upsert_mode to false",
        )

    webhook = raw.get("webhook")
    if isinstance(webhook, Mapping):
        yield from _webhook_problems(webhook, clean)


def _webhook_problems(webhook: Mapping[str, Any], clean: Callable[[str], bool]) -> Iterable[Problem]:
    ips = webhook.get("allowed_ips")
    for i, entry in enumerate(ips if isinstance(ips, list) else []):
        path = f"/webhook/allowed_ips/{i}"
        if isinstance(entry, str) and clean(path):
            message = _ip_problem(entry)
            if message:
                yield Problem(path, message)
    header = webhook.get("header")
    name = header.get("name") if isinstance(header, Mapping) else None
    if isinstance(name, str) and clean("/webhook/header/name"):
        lowered = name.lower()
        if lowered in _RESERVED_HEADERS or lowered.startswith("webhook-"):
            yield Problem(
                "/webhook/header/name",
                f"{quote(name)} is a reserved header; choose a custom name such as 'X-Webhook-Secret'",
            )
    signing = webhook.get("standard_webhooks")
    secret = signing.get("secret") if isinstance(signing, Mapping) else None
    if isinstance(secret, str) and clean("/webhook/standard_webhooks/secret"):
        try:
            decoded = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if not decoded:
            yield Problem("/webhook/standard_webhooks/secret", "must be 'whsec_' followed by valid base64")


def _ip_problem(entry: str) -> str | None:
    try:
        ipaddress.ip_network(entry.strip(), strict=True)
    except ValueError:
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            return f"{quote(entry)} is not an IP address or CIDR network (e.g. 35.159.1.63 or 10.0.0.0/8)"
        return f"{quote(entry)} has host bits set; did you mean {network}?"
    return None


def normalise_instance(value: str) -> str:
    """Return the Marketo base URL ``scheme://host[:port]`` for an instance or REST endpoint URL.

    Raises:
        ValueError: with a message that says what is wrong (never echoing the URL).
    """
    text = value.strip()
    example = "such as https://123-ABC-456.mktorest.com"
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"is not a valid URL; expected the Marketo REST endpoint {example}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an https URL {example}")
    if "@" in parts.netloc:
        raise ValueError("must not contain a user name or password")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise ValueError("must not have a query (?) or fragment (#)")
    host = parts.hostname or ""
    if not host or parts.netloc.endswith(":") or (port is not None and port == 0):
        raise ValueError(f"has no valid host and port; expected a URL {example}")
    if scheme == "http" and not _is_loopback(host):
        raise ValueError("must use https (http is allowed only for loopback hosts such as 127.0.0.1)")
    if parts.path.lower() not in ("", "/", "/rest", "/rest/"):
        if parts.path.lower().startswith("/identity"):
            raise ValueError("is Marketo's Identity endpoint; use the REST API endpoint (…/rest) instead")
        raise ValueError(f"must be the base URL or the REST API endpoint (…/rest), {example}; no other path")
    return f"{scheme}://{parts.netloc}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _forms_hint(value: str) -> str:
    if value.startswith("consents_purposes_"):
        return (
            "expected consents_purposes_<purpose>_ followed by enabled, enabled_li, "
            "values_<preference>_value or preferences_<preference>_channel_<channel>_enabled"
        )
    return (
        "expected a name starting with consents_purposes_, consents_channels_, user_metadata_ or organization_user_id"
    )
