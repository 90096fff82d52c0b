"""``connector send``: push one sample payload through the real pipeline, for QA people."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from connector import config, events, mapping
from connector.audit import event_document, iso
from connector.errors import ConfigError, PayloadError, Problem
from connector.fields import FieldInfo, convert_attributes, describe_fields, fields_from_json
from connector.intake import new_event
from connector.marketo import MarketoClient
from connector.models import Ignored, Integration, LeadUpdate, Skipped
from connector.outbox import STATES
from connector.service import build, remember_secrets
from connector.settings import Settings
from connector.stores import open_store


def _read_payload(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([Problem(path, f"cannot read file: {exc.strerror or exc}")]) from None


def sync_request(
    integration: Integration, update: LeadUpdate, describe: Mapping[str, FieldInfo] | None = None
) -> dict[str, Any]:
    """The exact Sync Leads call *update* makes (no credentials): ``send --dry-run`` and the console show it.

    With *describe* (the instance's fields), values are converted as delivery converts them.

    Raises:
        ValueError: a value that delivery could not convert (the event would be a dead letter).
    """
    client = MarketoClient(integration.instance, integration.client_id, integration.client_secret)
    attributes = dict(update.attributes)
    if describe is not None:
        attributes = convert_attributes(attributes, describe)
    lead = {update.lookup_field: update.lookup_value, **attributes}
    return client.build_sync_request(update.action, update.lookup_field, [lead], update.partition)


def read_describe_file(path: str) -> dict[str, FieldInfo]:
    """Return the lead fields in *path*: a Describe Lead answer as Marketo returns it (or its ``result`` list).

    Raises:
        ConfigError: unreadable file, not JSON, or no list of field descriptions in it.
    """
    try:
        document = config.read_json_file(path)
    except ConfigError as exc:
        raise ConfigError([Problem(f"{path}: {p.path or '/'}", p.message) for p in exc.problems]) from None
    result = document.get("result") if isinstance(document, dict) else document
    if not isinstance(result, list) or not all(isinstance(item, dict) for item in result):
        where = "/result" if isinstance(document, dict) else "/"
        message = "must be the describe answer of GET /rest/v1/leads/describe.json: a list of field objects"
        raise ConfigError([Problem(f"{path}: {where}", message)])
    return {f.name: f for f in describe_fields(result)}


def cached_describe(settings: Settings, config_file: str) -> tuple[dict[str, FieldInfo] | None, str]:
    """The fields the database kept from the config's instance (the worker's last describe), and a note saying so.

    Returns (None, why not) when there is none: no such database (none is created), nothing cached yet,
    or a config that does not load (``send_payload`` then reports it).
    """
    try:
        integration = config.load_file(config_file)
    except ConfigError:
        return None, ""
    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return None, "note: no --describe FILE and no database: values are shown as mapped, before conversion"
    store = open_store(url)
    try:
        cached = store.cached_fields(integration.instance)
    finally:
        store.close()
    if cached is None:
        return None, (
            f"note: no --describe FILE and no describe of {integration.instance} cached in the database yet: "
            "values are shown as mapped, before conversion"
        )
    text, fetched_at = cached
    return {f.name: f for f in fields_from_json(text)}, (
        f"note: converted with the describe of {integration.instance} cached in the database at {iso(fetched_at)}"
    )


def send_payload(
    settings: Settings,
    config_file: str,
    payload_file: str,
    *,
    dry_run: bool,
    db: str | None,
    describe: Mapping[str, FieldInfo] | None = None,
) -> tuple[int, str]:
    """Return (exit code, text to print).

    With *dry_run* and *describe* (the instance's fields by name), the printed values are converted
    as delivery converts them; without *describe* they are shown as mapped, before conversion.

    Raises:
        ConfigError: invalid config or unreadable payload file.
        PayloadError: the payload is not a Didomi envelope.
    """
    try:
        integration = config.load_file(config_file)
    except ConfigError as exc:
        raise ConfigError([Problem(f"{config_file}: {p.path or '/'}", p.message) for p in exc.problems]) from None
    remember_secrets(integration)
    body = _read_payload(payload_file)
    envelope = events.parse_json(body)
    received_at = time.time()
    result = events.normalise(envelope, integration.regulations, received_at=received_at)
    if isinstance(result, Ignored):
        return 0, f"ignored: {result.reason} (nothing would be sent to Marketo)"
    update = mapping.map_consent(result, integration)
    if isinstance(update, Skipped):
        return 0, f"skipped: {update.reason} (nothing would be sent to Marketo)"
    if dry_run:
        try:
            request = sync_request(integration, update, describe)
        except ValueError as exc:
            return 1, f"would be a dead letter: cannot convert value: {exc} (nothing would be sent to Marketo)"
        return 0, json.dumps([request], indent=2)
    with tempfile.TemporaryDirectory(prefix="connector-send-") as tmp:
        url = db or f"sqlite:///{tmp}/send.db"
        service = build(settings.with_database(url))
        try:
            service.registry.put(integration.id, config.read_json_file(config_file), "file")
            added = service.store.add_event(new_event(integration, envelope, body, result, received_at))
            if not added.created:
                raise PayloadError(f"this payload was already received as event {added.event_id}", code="duplicate")
            service.worker().drain()
            stored = service.store.get_event(added.event_id)
        finally:
            service.close()
    assert stored is not None
    record = stored
    doc = event_document(record)
    lines: list[str] = [f"event {doc['id']}: {doc['outcome']}"]
    lookup = doc["lookup"] or {}
    lines.append(f"  lead {lookup.get('field')}={lookup.get('value')}  attributes {json.dumps(doc['attributes'])}")
    for attempt in doc["attempts"]:
        lines.append(
            f"  {attempt['at']} {attempt['outcome']} requestId={attempt['marketo_request_id']}"
            + (f" {attempt['code']} {attempt['message']}" if attempt["code"] else "")
        )
    assert record.state in STATES
    return (0 if record.state in ("delivered", "skipped") else 1), "\n".join(lines)
