"""Integration configs: Didomi's Marketo shape, checked against ``schemas/integration.schema.json``.

::

    {"type_id": "marketo",
     "authentication": {"client_id": "...", "client_secret": "...",
                        "instance": "https://123-ABC-456.mktorest.com"},
     "properties": {"user_identifier": ["email"]},
     "mappings": [{"id": "<Marketo lead field REST API name>",
                   "value": "consents_purposes_newsletter_enabled"}],
     "upsert_mode": false}

``check`` reports every problem (schema first, then the checks a schema cannot express) by JSON
pointer; ``parse`` turns a valid document into a frozen :class:`Integration`. No message ever
contains a secret value.

``instance`` may be the REST endpoint as Marketo's admin screen shows it (``…/rest``); it is stored
as ``scheme://host[:port]``. It must be https; http is accepted only for loopback hosts (local test
instances).

``user_identifier`` says how ``organization_user_id`` finds the Marketo lead: ``"email"`` (lookup
field ``email``) or ``"leadID"`` (lookup field ``id``). A single identifier is applied as is: an
email is used unchanged, and a lead id that is not a positive integer skips the event. A list of
two (``["leadID", "email"]``) is tried **in order for each event**; the first identifier the value
fits is used: ``leadID`` fits a positive integer (digits only), ``email`` fits a value containing
``@``; an event that fits neither is skipped. ``upsert_mode: true`` cannot be combined with
``leadID``, because Marketo cannot create a lead from an id (lookup field ``id`` works only with
``updateOnly``).
"""

from __future__ import annotations

import base64
import binascii
import difflib
import functools
import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from connector import data
from connector.errors import ConfigError, Problem
from connector.jsontext import clip, json_type, reject_constant
from connector.mapping import is_known_property
from connector.models import FieldMapping, Identifier, Integration, WebhookAuth

SCHEMA_PATH = data.SCHEMA  # package data: found from a wheel too (schemas/ holds the documented copy)
MASK = "********"
DEFAULT_REGULATIONS = frozenset({"gdpr"})

_SECRET_WORDS = ("secret", "password")  # keys whose values are never echoed, and are masked by redact()
_RESERVED_HEADERS = frozenset(
    {"authorization", "content-type", "content-length", "host", "transfer-encoding", "cookie"}
    | {"x-forwarded-for"}  # trusted_proxy_hops reads it
)
_MAX_FILE_BYTES = 1_000_000
_MAX_ECHO = 40
_JSON_TYPES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean (true or false)",
    "null": "null",
}


# -- reading --------------------------------------------------------------------------------------


def read_json_file(path: str | Path) -> Any:
    """Return the parsed JSON document in *path* (UTF-8, optionally with a BOM).

    Raises:
        ConfigError: with one Problem at "" when the file cannot be read, is not UTF-8 or is
            not valid JSON (duplicate keys included).
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _read_error(f"cannot read file: {exc.strerror or type(exc).__name__}") from None
    except ValueError as exc:  # e.g. an embedded NUL in the path
        raise _read_error(f"cannot read file: {exc}") from None
    if len(data) > _MAX_FILE_BYTES:
        raise _read_error(f"cannot read file: larger than {_MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _read_error(f"file is not UTF-8 text (invalid byte at position {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        raise _read_error(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:
        raise _read_error(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise _read_error("invalid JSON: nested too deeply") from None


def load_file(path: str | Path) -> Integration:
    """Read and parse the integration in *path*; its id is the file name without extension.

    Raises:
        ConfigError: the file cannot be read or the config is invalid.
    """
    return parse(read_json_file(path), Path(path).stem)


def _read_error(message: str) -> ConfigError:
    return ConfigError([Problem("", message)])


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"duplicate key {_quote(key)}")
        document[key] = value
    return document


# -- checking -------------------------------------------------------------------------------------


@functools.cache
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def check(raw: Any) -> list[Problem]:
    """Return every problem with the config document *raw*, sorted by path; [] when it is valid."""
    problems: set[Problem] = set()
    for error in _validator().iter_errors(raw):
        problems.update(_schema_problems(error))
    failed = [p.path for p in problems]

    def clean(path: str) -> bool:
        """True when the schema found nothing wrong at *path* or below it."""
        return not any(f == path or f.startswith(path + "/") for f in failed)

    problems.update(_semantic_problems(raw, clean))
    return sorted(problems, key=_sort_key)


def _schema_problems(error: ValidationError) -> list[Problem]:
    parts = list(error.absolute_path)
    path = _pointer(parts)
    keyword = str(error.validator)
    expected: Any = error.validator_value
    instance: Any = error.instance
    schema: Any = error.schema
    secret = any(isinstance(p, str) and _is_secret_key(p) for p in parts)
    got = "" if secret else _got(instance)
    if keyword == "additionalProperties" and isinstance(instance, Mapping):
        known = list(schema.get("properties", {}))
        return [
            Problem(_pointer([*parts, key]), f"unknown key {_quote(key)}{_suggest(key, known)}")
            for key in instance
            if key not in known
        ]
    if keyword == "required" and isinstance(instance, Mapping):
        return [Problem(path, f"missing required key {_quote(k)}") for k in expected if k not in instance]
    custom = schema.get("x-error", {}).get(keyword) if isinstance(schema, Mapping) else None
    if isinstance(custom, str):
        return [Problem(path, custom)]
    if keyword == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_JSON_TYPES.get(t, t) for t in types)
        return [Problem(path, f"must be {wanted}, not {json_type(instance)}")]
    if keyword in ("const", "enum"):
        allowed = [expected] if keyword == "const" else list(expected)
        choices = ", ".join(_got(v) for v in allowed)
        prefix = "must be " if len(allowed) == 1 else "must be one of "
        return [Problem(path, f"{prefix}{choices}{f' (got {got})' if got else ''}")]
    return [Problem(path, _limit_message(keyword, expected, instance, secret))]


def _limit_message(keyword: str, expected: Any, instance: Any, secret: bool) -> str:
    if keyword == "minLength":
        return "must not be empty" if expected == 1 else f"must be at least {expected} characters long"
    if keyword == "maxLength":
        return f"must be at most {expected} characters long"
    if keyword == "minItems":
        return "must not be empty" if expected == 1 else f"must have at least {expected} items"
    if keyword == "uniqueItems":
        repeated = _first_repeat(instance)
        shown = None if secret or repeated is None else _got(repeated)
        return f"lists {shown} more than once" if shown else "must not list the same value twice"
    if keyword in ("minimum", "maximum"):
        bound = "at least" if keyword == "minimum" else "at most"
        return f"must be {bound} {expected}" + ("" if secret else f" (got {_got(instance)})")
    if keyword == "pattern":
        return "has an invalid format"
    return f"is invalid ({keyword})"


def _semantic_problems(raw: Any, clean: Callable[[str], bool]) -> Iterable[Problem]:
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
            yield Problem(f"/mappings/{i}/value", f"unknown Didomi property {_quote(value, 120)}; {_forms_hint(value)}")
        if isinstance(field, str) and clean(f"/mappings/{i}/id"):
            if field in first_at:
                yield Problem(
                    f"/mappings/{i}/id",
                    f"Marketo field {_quote(field)} is mapped twice (first at {first_at[field]})",
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
                f"{_quote(name)} is a reserved header; choose a custom name such as 'X-Webhook-Secret'",
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
            return f"{_quote(entry)} is not an IP address or CIDR network (e.g. 35.159.1.63 or 10.0.0.0/8)"
        return f"{_quote(entry)} has host bits set; did you mean {network}?"
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


# -- building -------------------------------------------------------------------------------------


def parse(raw: Any, integration_id: str) -> Integration:
    """Return the frozen Integration described by the config document *raw*.

    Raises:
        ConfigError: with every problem ``check`` finds.
    """
    problems = check(raw)
    if problems:
        raise ConfigError(problems)
    auth, props = raw["authentication"], raw["properties"]
    identifiers = props["user_identifier"]
    listed: list[Identifier] = list(identifiers) if isinstance(identifiers, list) else [identifiers]
    return Integration(
        id=integration_id,
        instance=normalise_instance(auth["instance"]),
        client_id=auth["client_id"],
        client_secret=auth["client_secret"],
        user_identifiers=tuple(listed),
        mappings=tuple(FieldMapping(field=m["id"], source=m["value"]) for m in raw["mappings"]),
        upsert_mode=raw.get("upsert_mode", False),
        partition=props.get("partition"),
        regulations=frozenset(props.get("regulations", DEFAULT_REGULATIONS)),
        webhook=_webhook(raw["webhook"]) if "webhook" in raw else None,
    )


def _webhook(doc: Mapping[str, Any]) -> WebhookAuth:
    oauth, header = doc.get("oauth", {}), doc.get("header", {})
    return WebhookAuth(
        oauth_client_id=oauth.get("client_id"),
        oauth_client_secret=oauth.get("client_secret"),
        token_ttl=int(oauth.get("token_ttl", 3600)),
        header_name=header.get("name"),
        header_secret=header.get("secret"),
        standard_webhooks_secret=doc.get("standard_webhooks", {}).get("secret"),
        allowed_ips=tuple(ip.strip() for ip in doc.get("allowed_ips", ())),
        trusted_proxy_hops=int(doc.get("trusted_proxy_hops", 0)),
    )


def to_document(integration: Integration) -> dict[str, Any]:
    """Return *integration* as a config document (secrets included) that parses back to it."""
    properties: dict[str, Any] = {"user_identifier": list(integration.user_identifiers)}
    if integration.partition is not None:
        properties["partition"] = integration.partition
    if integration.regulations != DEFAULT_REGULATIONS:
        properties["regulations"] = sorted(integration.regulations)
    document: dict[str, Any] = {
        "type_id": "marketo",
        "authentication": {
            "client_id": integration.client_id,
            "client_secret": integration.client_secret,
            "instance": integration.instance,
        },
        "properties": properties,
        "mappings": [{"id": m.field, "value": m.source} for m in integration.mappings],
        "upsert_mode": integration.upsert_mode,
    }
    hook = integration.webhook
    if hook is not None:
        webhook: dict[str, Any] = {}
        if hook.oauth_client_id is not None:
            webhook["oauth"] = {
                "client_id": hook.oauth_client_id,
                "client_secret": hook.oauth_client_secret,
                "token_ttl": hook.token_ttl,
            }
        if hook.header_name is not None:
            webhook["header"] = {"name": hook.header_name, "secret": hook.header_secret}
        if hook.standard_webhooks_secret is not None:
            webhook["standard_webhooks"] = {"secret": hook.standard_webhooks_secret}
        if hook.allowed_ips:
            webhook["allowed_ips"] = list(hook.allowed_ips)
        if hook.trusted_proxy_hops:
            webhook["trusted_proxy_hops"] = hook.trusted_proxy_hops
        document["webhook"] = webhook
    return document


def redact(raw: Any) -> Any:
    """Return a deep copy of *raw* with every secret value replaced by ``"********"``.

    A value is secret when its key contains "secret" or "password" (``client_secret``,
    ``webhook.header.secret``, …), at any depth. Works on any shape, however deep.
    """
    holder: list[Any] = [None]
    memo: dict[int, Any] = {}
    stack: list[tuple[Any, Any, Any]] = [(raw, holder, 0)]
    while stack:  # iterative, so deeply nested junk cannot exhaust the recursion limit
        value, parent, slot = stack.pop()
        if id(value) in memo:
            parent[slot] = memo[id(value)]
        elif isinstance(value, Mapping):
            copy: dict[Any, Any] = {}
            memo[id(value)] = parent[slot] = copy
            for key, item in value.items():
                copy[key] = MASK if isinstance(key, str) and _is_secret_key(key) else None
                if copy[key] is None:
                    stack.append((item, copy, key))
        elif isinstance(value, list | tuple):
            items: list[Any] = [None] * len(value)
            memo[id(value)] = parent[slot] = items
            stack.extend((item, items, i) for i, item in enumerate(value))
        else:
            parent[slot] = value
    return holder[0]


# -- the `connector validate` command -------------------------------------------------------------


def validate_files(paths: Sequence[str]) -> tuple[int, list[str]]:
    """Check config files for ``connector validate``; return (exit code, output lines).

    Exit code 0 when every file is valid (one summary line each), 1 when any is not (one line
    per problem: ``FILE: /json/pointer: message``), 2 when no file is given.
    """
    if not paths:
        return 2, ["usage: connector validate FILE [FILE ...]"]
    code, lines = 0, list[str]()
    for path in paths:
        try:
            raw = read_json_file(path)
        except ConfigError as exc:
            code = 1
            lines.extend(f"{path}: {p.message}" for p in exc.problems)
            continue
        try:
            problems = check(raw)
            integration = None if problems else parse(raw, Path(path).stem)
        except Exception as exc:  # the command must answer, never print a traceback
            code = 1
            lines.append(f"{path}: internal error while checking ({type(exc).__name__})")
            continue
        if integration is None:
            code = 1
            lines.extend(f"{path}: {p}" for p in problems)
        else:
            lines.append(f"{path}: OK ({summary(integration)})")
    return code, lines


def summary(integration: Integration) -> str:
    """Return a one-line description of *integration*, without secrets."""
    kinds = ", then ".join(integration.user_identifiers)
    count = len(integration.mappings)
    parts = [
        f"instance {integration.instance}",
        f"identifier{'s' if len(integration.user_identifiers) > 1 else ''} {kinds}",
        f"{count} mapping{'' if count == 1 else 's'}",
        "create or update" + (f" in partition {integration.partition}" if integration.partition else "")
        if integration.upsert_mode
        else "update only",
    ]
    if integration.regulations != DEFAULT_REGULATIONS:
        parts.append("regulations " + ", ".join(sorted(integration.regulations)))
    hook = integration.webhook
    if hook is not None:
        methods = [
            name
            for name, on in (
                ("oauth", hook.oauth_client_id),
                ("header", hook.header_name),
                ("standard webhooks", hook.standard_webhooks_secret),
                (f"{len(hook.allowed_ips)} allowed IPs", hook.allowed_ips),
            )
            if on
        ]
        parts.append("webhook " + (", ".join(methods) if methods else "without authentication"))
    return ", ".join(parts)


# -- helpers --------------------------------------------------------------------------------------


def _pointer(parts: Iterable[Any]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _sort_key(problem: Problem) -> tuple[tuple[tuple[int, int, str], ...], str]:
    steps = problem.path.split("/")[1:] if problem.path else []
    return tuple((1, int(s), "") if s.isdigit() else (0, 0, s) for s in steps), problem.message


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _quote(value: Any, limit: int = _MAX_ECHO) -> str:
    return "'" + clip(str(value), limit) + "'"


def _got(value: Any) -> str:
    """Return a short rendering of a scalar from the document, or "" for containers."""
    if isinstance(value, str):
        return _quote(value)
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return ""


def _first_repeat(values: Any) -> Any:
    seen: list[Any] = []
    for value in values if isinstance(values, list) else []:
        if value in seen:
            return value
        seen.append(value)
    return None


def _suggest(key: Any, known: list[str]) -> str:
    match = difflib.get_close_matches(str(key)[:100], known, n=1, cutoff=0.75)
    return f" (did you mean {_quote(match[0])}?)" if match else ""


def _forms_hint(value: str) -> str:
    if value.startswith("consents_purposes_"):
        return (
            "expected consents_purposes_<purpose>_ followed by enabled, enabled_li, "
            "values_<preference>_value or preferences_<preference>_channel_<channel>_enabled"
        )
    return (
        "expected a name starting with consents_purposes_, consents_channels_, user_metadata_ or organization_user_id"
    )
