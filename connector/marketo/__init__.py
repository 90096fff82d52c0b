"""The Marketo REST client: the only package that speaks HTTP to Marketo.

It authenticates (token cache shared per ``(instance, client_id)``), sends every REST call
through a ``CallGate`` (the rate governor), and translates HTTP statuses, network failures and
Marketo's ``success:false`` codes into ``connector.errors`` at one boundary. Record-level
codes (``result[i].reasons``) are returned, never raised.

Secrets: the client secret travels only in the identity query string, so no URL with a query
and no ``str()`` of a requests exception ever reaches a message or a log line.
"""

from connector.marketo.client import (
    MAX_BATCH,
    MAX_BODY_BYTES,
    SYNC_ACTIONS,
    CallGate,
    MarketoClient,
)
from connector.marketo.codes import error_for_code
from connector.marketo.results import RecordResult, SyncResult
from connector.marketo.tokens import DEFAULT_TOKENS, TokenCache

__all__ = [
    "DEFAULT_TOKENS",
    "MAX_BATCH",
    "MAX_BODY_BYTES",
    "SYNC_ACTIONS",
    "CallGate",
    "MarketoClient",
    "RecordResult",
    "SyncResult",
    "TokenCache",
    "error_for_code",
]
