"""What every blueprint of the web app shares: the per-app ``Runtime`` and the request-body checks."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_content_length, get_input_stream

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
    check_json_type(request.environ.get("CONTENT_TYPE", ""))


def check_json_type(content_type: str) -> None:
    """Refuse a request whose ``Content-Type`` is not JSON (``application/json`` or ``*/*+json``).

    Raises:
        UnsupportedMediaType: another type, or none.
    """
    mimetype = content_type.split(";", 1)[0].strip().lower()
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(f"content type must be application/json, got {mimetype or 'none'}")


def read_body() -> bytes:
    return body_of(request.environ, runtime().settings.max_body_bytes)


def body_of(environ: Mapping[str, Any], limit: int) -> bytes:
    """The body of the request *environ* describes, read by werkzeug's rules (``Content-Length``, a
    chunked body the server terminates), refusing more than *limit* bytes.

    Raises:
        PayloadTooLarge: the body is larger than *limit*.
    """
    too_large = PayloadTooLarge(f"request body is larger than {limit} bytes")
    try:
        body = get_input_stream(environ, max_content_length=limit).read()  # type: ignore[arg-type]
    except RequestEntityTooLarge:
        raise too_large from None
    if get_content_length(environ) is None and len(body) >= limit:  # type: ignore[arg-type]
        raise too_large  # chunked: werkzeug stops reading at the limit
    return body


def parse_json(body: bytes) -> Any:
    return events.parse_json(body, max_depth=runtime().settings.max_json_depth)
