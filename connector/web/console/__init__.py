"""The admin console at ``/console/``: server-rendered pages over the same registry, store and validators.

Every route needs a signed-in session (``connector.web.console.session``) except the sign-in page
and the static files; every POST needs the session's CSRF token. The console is off (404) when no
admin token is set, like the admin API. Errors render as a page with a clear message, never a
traceback; nothing stored changes on a refused request.
"""

from __future__ import annotations

from connector.web.console import auth, dead, events, integrations, overview  # noqa: F401  (routes)
from connector.web.console.base import console

__all__ = ["console"]
