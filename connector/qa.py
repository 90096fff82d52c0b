"""``connector send``: push one sample payload through the real pipeline, for QA people."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from connector import config, events, mapping
from connector.audit import event_document
from connector.errors import ConfigError, PayloadError, Problem
from connector.intake import new_event
from connector.marketo import MarketoClient
from connector.models import Ignored, Skipped
from connector.outbox import STATES
from connector.service import build, remember_secrets
from connector.settings import Settings


def _read_payload(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([Problem(path, f"cannot read file: {exc.strerror or exc}")]) from None


def send_payload(
    settings: Settings, config_file: str, payload_file: str, *, dry_run: bool, db: str | None
) -> tuple[int, str]:
    """Return (exit code, text to print).

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
        client = MarketoClient(integration.instance, integration.client_id, integration.client_secret)
        lead = {update.lookup_field: update.lookup_value, **update.attributes}
        request = client.build_sync_request(update.action, update.lookup_field, [lead], update.partition)
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
