"""Marketo's response shapes: the JSON envelope (always HTTP 200) and nginx's HTML pages for HTTP failures.

Success: ``{"requestId", "result", "success": true}`` (plus ``nextPageToken`` when paging) and no
``errors``/``warnings`` keys, as recorded lead responses. Failure: ``{"requestId", "success": false,
"errors": [{"code": "<string>", "message"}]}``. Bodies are compact UTF-8 JSON with Content-Type
``application/json;charset=UTF-8``. HTTP 413/414/5xx come from Marketo's nginx front as HTML, so a
client that parses JSON without checking the status fails here as it would in production.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response

from connector.sandbox.codes import HTTP_REASONS

JSON_TYPE = "application/json;charset=UTF-8"


def json_response(body: Any, status: int = 200) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(text.encode("utf-8"), status=status, content_type=JSON_TYPE)


def success(request_id: str, result: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> Response:
    return json_response({"requestId": request_id, "result": result, "success": True, **(extra or {})})


def failure(request_id: str, code: str, message: str) -> Response:
    return json_response({"requestId": request_id, "success": False, "errors": [{"code": code, "message": message}]})


def http_failure(status: int) -> Response:
    title = f"{status} {HTTP_REASONS.get(status, 'Error')}"
    page = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return Response(page, status=status, content_type="text/html")
