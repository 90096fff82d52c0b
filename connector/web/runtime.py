"""What every blueprint of the web app shares: the per-app ``Runtime`` and the request-body checks."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, request

from connector import events, webhook_auth
from connector.errors import PayloadTooLarge, UnsupportedMediaType
from connector.metrics import WebhookCounter
from connector.outbox import Store
from connector.registry import Registry
from connector.settings import Settings
from connector.web.tools import ConsoleTools

INTEGRATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_EVENT_ID = 2**63 - 1


@dataclass
class Runtime:
    """What the views need, built once per app."""

    settings: Settings
    store: Store
    registry: Registry
    issuer: webhook_auth.TokenIssuer
    clock: Callable[[], float] = time.time
    on_enqueue: Callable[[], None] = field(default=lambda: None)
    webhooks: WebhookCounter = field(default_factory=WebhookCounter)
    tools: ConsoleTools = field(default_factory=ConsoleTools)


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["connector"]
    return rt


def require_json() -> None:
    mimetype = (request.mimetype or "").lower()
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(f"content type must be application/json, got {request.mimetype or 'none'}")


def read_body() -> bytes:
    limit = runtime().settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    body = request.get_data(cache=True)
    if request.content_length is None and len(body) >= limit:  # chunked: werkzeug stops reading at the limit
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    return body


def parse_json(body: bytes) -> Any:
    return events.parse_json(body, max_depth=runtime().settings.max_json_depth)
