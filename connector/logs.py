"""Logging set-up: text or JSON lines, with every registered secret masked as a last line of defence."""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime

_secrets: set[str] = set()
_lock = threading.Lock()
MASK = "********"


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
        doc = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = mask(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False)


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
