"""Marketo's error codes and messages as the sandbox answers them, and the exception carrying one.

Messages follow Adobe's error-code table; 606 and 615 use the wording real instances send
(see ``../shared/research/marketo.md`` §4). ``%s`` placeholders are filled by the caller.
"""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    "601": "Access token invalid",
    "602": "Access token expired",
    "603": "Access denied",
    "604": "Request time-out",
    "605": "HTTP Method not supported",
    "606": "Max rate limit '%s' exceeded with in '%s' secs",
    "607": "Daily quota reached",
    "608": "API Temporarily Unavailable",
    "609": "Invalid JSON",
    "610": "Requested resource not found",
    "611": "System error",
    "612": "Invalid Content Type",
    "613": "Invalid Multipart Request",
    "614": "Invalid Subscription",
    "615": "Concurrent access limit '%s' reached",
    "616": "Invalid subscription type",
    "701": "%s cannot be blank",
    "702": "No data found for a given search scenario",
    "703": "The feature is not enabled for the subscription",
    "704": "Invalid date format",
    "709": "Business Rule Violation",
    "713": "Transient Error",
    "719": "Lock wait timeout exception",
    "1001": "Invalid value '%s'. Required of type '%s'",
    "1002": "Missing value for the required parameter '%s'",
    "1003": "Invalid data",
    "1004": "Lead not found",
    "1005": "Lead already exists",
    "1006": "Field '%s' not found",
    "1007": "Multiple lead match lookup criteria",
    "1008": "Access denied to partition '%s'",
    "1009": "Partition name must be specified",
    "1010": "Partition update not allowed",
    "1011": "Field '%s' not supported",
    "1013": "Object not found",
    "1014": "Failed to create Object",
    "1016": "Too many imports",
    "1019": "Import in progress",
    "1022": "Object in use",
    "1029": "Too many jobs in queue",
}

# Reason phrases for the HTTP-level failures the sandbox can produce (nginx wording).
HTTP_REASONS: dict[int, str] = {
    413: "Request Entity Too Large",
    414: "Request-URI Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


def message_for(code: str, *args: object) -> str:
    """The standard message for ``code`` with its placeholders filled (missing ones left as ``%s``)."""
    template = MESSAGES.get(code, "Error")
    wanted = template.count("%s")
    if not wanted:
        return template
    filled = [str(a) for a in args[:wanted]] + ["%s"] * max(0, wanted - len(args))
    return template % tuple(filled)


def http_status_code(code: str) -> int | None:
    """``code`` as an HTTP status when it names one the sandbox answers at HTTP level (5xx), else None."""
    if code.isdigit() and len(code) == 3 and 500 <= int(code) <= 599:
        return int(code)
    return None


class ApiError(Exception):
    """A response-level Marketo error: HTTP 200 with ``success: false`` and this one error."""

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        self.message = message if message is not None else message_for(code)
        super().__init__(f"{self.code} {self.message}")


class HttpFailure(Exception):
    """A failure answered at HTTP level (an injected 5xx), with nginx's HTML body instead of JSON."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"HTTP {status}")
