"""Synthetic but realistic Didomi webhook envelopes, the integration config and the sandbox leads."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime
from typing import Any

INTEGRATION_ID = "bench"
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
WEBHOOK_HEADER = "X-Webhook-Secret"
WEBHOOK_SECRET = "bench-webhook-secret-0123456789"  # noqa: S105 - a fixed benchmark credential


def email(lead: int) -> str:
    return f"lead{lead:07d}@bench.example.com"


def leads(count: int) -> list[dict[str, Any]]:
    """Sandbox seed: *count* leads with known emails (ids 1..count)."""
    return [{"id": i + 1, "email": email(i), "firstName": "Bench", "lastName": f"Lead{i}"} for i in range(count)]


def integration_document(instance: str, *, authenticated: bool = True) -> dict[str, Any]:
    """The email integration of ``sample_configs/email.json`` pointed at *instance*, with a webhook secret."""
    doc: dict[str, Any] = {
        "type_id": "marketo",
        "authentication": {"client_id": "sandbox-client", "client_secret": "sandbox-secret", "instance": instance},
        "properties": {"user_identifier": ["email"]},
        "mappings": [
            {"id": "consentNewsletter", "value": "consents_purposes_newsletter_enabled"},
            {"id": "consentNewsletterText", "value": "consents_purposes_newsletter_enabled"},
            {"id": "consentGeolocation", "value": "consents_purposes_geolocation_data_enabled"},
            {"id": "newsletterTopics", "value": "consents_purposes_audientse-fxqe89b2_values_jmHmf37H_value"},
        ],
        "upsert_mode": False,
    }
    if authenticated:
        doc["webhook"] = {"header": {"name": WEBHOOK_HEADER, "secret": WEBHOOK_SECRET}}
    return doc


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(seq: int, lead: int, rng: random.Random) -> dict[str, Any]:
    """One ``event.created`` consent for *lead*, the *seq*-th of the run (later seq = newer consent)."""
    at = _iso(BASE_TIME + seq * 0.001)
    purposes: list[dict[str, Any]] = [
        {"id": "newsletter", "enabled": rng.random() < 0.6},
        {"id": "geolocation_data", "enabled": rng.random() < 0.4},
    ]
    if rng.random() < 0.3:
        topic = rng.choice(["dK7rBBXk", "Qp2mZt8w", "Lx9vR4cn"])
        purposes.append({"id": "audientse-fxqe89b2", "enabled": True, "values": {"jmHmf37H": {"value": topic}}})
    return {
        "type": "event.created",
        "regulation": "gdpr",
        "parameters": {
            "entity": {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "organization_id": "acme",
                "created_at": at,
                "updated_at": at,
                "status": "confirmed",
                "regulation": "gdpr",
                "user": {
                    "id": str(uuid.UUID(int=(lead + 1) << 64, version=4)),
                    "organization_user_id": email(lead),
                    "metadata": {},
                    "country": "FR",
                    "last_seen_country": "FR",
                },
                "consents": {
                    "purposes": purposes,
                    "vendors": {"enabled": [], "disabled": [], "enabled_li": [], "disabled_li": []},
                    "channels": [],
                },
                "proofs_id": [],
            }
        },
    }


def body(seq: int, lead: int, rng: random.Random) -> bytes:
    return json.dumps(envelope(seq, lead, rng), separators=(",", ":")).encode()
