"""Logging set-up: text or JSON lines, with every registered secret masked as a last line of defence.

JSON lines carry the context a call site passes with ``extra=`` as top-level fields (``integration``,
``event_id``, ``lead``, ``marketo_request_id``, ``code``, ...), masked like the message, so a log
pipeline can filter on them without parsing the message.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from datetime import UTC, datetime

_secrets: set[str] = set()
_lock = threading.Lock()
MASK = "********"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def register_secret(value: str | None) -> None:
    """Mask *value* wherever it would appear in a log line (values shorter than 4 chars are ignored)."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def mask(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class _Redacting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in doc:
                doc[name] = _field(value)
        if record.exc_info:
            doc["exception"] = mask(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False, default=str)


def _field(value: object) -> object:
    """A JSON-ready, masked copy of one ``extra=`` value."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_field(v) for v in value]
    return mask(str(value))


def configure_from_env(default_level: str = "INFO") -> None:
    """``configure`` from CONNECTOR_LOG_LEVEL / CONNECTOR_LOG_FORMAT (commands without connector settings)."""
    configure(os.environ.get("CONNECTOR_LOG_LEVEL") or default_level, os.environ.get("CONNECTOR_LOG_FORMAT") or "text")


def configure(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Redacting())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    logging.getLogger("waitress").setLevel(max(root.level, logging.WARNING))
    logging.getLogger("werkzeug").setLevel(max(root.level, logging.WARNING))
