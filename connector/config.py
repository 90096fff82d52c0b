"""Integration configs: Didomi's Marketo shape, checked against ``schemas/integration.schema.json``.

This module is the config API (``from connector import config``): ``check``, ``parse``, ``load_file``,
``to_document``, ``validate_files``, ``summary``, and, from the modules that do each job,
``read_json_file`` (:mod:`connector.config_files`), the schema check (:mod:`connector.config_schema`),
the checks a schema cannot express (:mod:`connector.config_rules`) and ``redact``
(:mod:`connector.config_redact`).

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

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from connector.config_files import parse_json_document, read_json_file
from connector.config_redact import MASK, redact
from connector.config_rules import normalise_instance, semantic_problems
from connector.config_schema import SCHEMA_PATH, schema_problems, sort_key
from connector.errors import ConfigError, Problem
from connector.models import FieldMapping, Identifier, Integration, WebhookAuth

__all__ = [  # the config API: `from connector import config`, then config.parse(...), config.redact(...)
    "DEFAULT_REGULATIONS",
    "MASK",
    "SCHEMA_PATH",
    "check",
    "load_file",
    "normalise_instance",
    "parse",
    "parse_json_document",
    "read_json_file",
    "redact",
    "summary",
    "to_document",
    "validate_files",
]

DEFAULT_REGULATIONS = frozenset({"gdpr"})


# -- reading --------------------------------------------------------------------------------------


def load_file(path: str | Path) -> Integration:
    """Read and parse the integration in *path*; its id is the file name without extension.

    Raises:
        ConfigError: the file cannot be read or the config is invalid.
    """
    return parse(read_json_file(path), Path(path).stem)


# -- checking -------------------------------------------------------------------------------------


def check(raw: Any) -> list[Problem]:
    """Return every problem with the config document *raw*, sorted by path; [] when it is valid."""
    problems = schema_problems(raw)
    failed = [p.path for p in problems]

    def clean(path: str) -> bool:
        """True when the schema found nothing wrong at *path* or below it."""
        return not any(f == path or f.startswith(path + "/") for f in failed)

    problems.update(semantic_problems(raw, clean))
    return sorted(problems, key=sort_key)


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
        on_user_deleted=raw.get("on_user_deleted", "forget"),
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
    if integration.on_user_deleted != "forget":
        document["on_user_deleted"] = integration.on_user_deleted
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
