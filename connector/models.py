"""Frozen value types passed between the pure core and the I/O edges. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Identifier = Literal["email", "leadID"]
Action = Literal["updateOnly", "createOrUpdate"]
LookupField = Literal["email", "id"]
OnUserDeleted = Literal["forget", "forget_and_clear"]
ConsentTimeSource = Literal["payload", "received"]  # the entity's updated_at/created_at, or the arrival time


@dataclass(frozen=True)
class FieldMapping:
    """One config mapping: Marketo lead field ``field`` <- Didomi property ``source``."""

    field: str
    source: str


@dataclass(frozen=True)
class WebhookAuth:
    """How the platform authenticates to ``POST /webhooks/<id>`` (all optional, any combination)."""

    oauth_client_id: str | None = None
    oauth_client_secret: str | None = field(default=None, repr=False)
    token_ttl: int = 3600
    header_name: str | None = None
    header_secret: str | None = field(default=None, repr=False)
    standard_webhooks_secret: str | None = field(default=None, repr=False)
    allowed_ips: tuple[str, ...] = ()
    trusted_proxy_hops: int = 0

    @property
    def authenticates(self) -> bool:
        """True when at least one credential check is configured (an IP allowlist alone is not one)."""
        return bool(self.oauth_client_id or self.header_secret or self.standard_webhooks_secret)


@dataclass(frozen=True)
class Integration:
    """A validated integration config (Didomi's Marketo shape). Build it with ``config.parse``."""

    id: str
    instance: str  # normalised base URL: scheme://host[:port], no trailing "/rest" or "/"
    client_id: str
    client_secret: str = field(repr=False)
    user_identifiers: tuple[Identifier, ...] = ("email",)
    mappings: tuple[FieldMapping, ...] = ()
    upsert_mode: bool = False
    partition: str | None = None
    regulations: frozenset[str] = frozenset({"gdpr"})
    webhook: WebhookAuth | None = None
    on_user_deleted: OnUserDeleted = "forget"  # what a user.deleted webhook does (connector.erasure)


@dataclass(frozen=True)
class Consent:
    """A confirmed Didomi consent event, normalised.

    ``properties`` holds every Didomi property name present in the event, flattened
    against the ids the event actually carries (e.g. ``consents_purposes_newsletter_enabled``),
    so mapping is a dictionary lookup and never splits ids on ``_``.
    """

    event_id: str
    event_type: str
    regulation: str
    organization_user_id: str
    consent_at: str  # ISO-8601: the entity's updated_at, else created_at, else the arrival time
    properties: Mapping[str, Any]
    user_id: str | None = None
    status: str = "confirmed"
    consent_time_source: ConsentTimeSource = "payload"


@dataclass(frozen=True)
class Ignored:
    """An envelope we acknowledge but do not act on, with the reason (e.g. "pending_approval")."""

    reason: str
    event_id: str | None = None
    event_type: str | None = None


@dataclass(frozen=True)
class LeadUpdate:
    """What one consent event asks Marketo to write to one lead."""

    action: Action
    lookup_field: LookupField
    lookup_value: str | int
    attributes: Mapping[str, Any]
    consent_at: str  # ISO-8601 timestamp of the consent that produced these values
    partition: str | None = None


@dataclass(frozen=True)
class Skipped:
    """A consent that maps to nothing Marketo should receive, with the reason."""

    reason: str
