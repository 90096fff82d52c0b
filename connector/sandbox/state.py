"""The sandbox's whole in-memory Marketo instance and its rules, independent of HTTP.

Thread-safe: every public method holds one lock (re-entrant), except the artificial latency, which
the app sleeps outside it. Time comes from the injected ``clock`` (see ``clock.ManualClock``), so
token expiry, rate windows, quota days and outages are tested without sleeping.

A REST call goes: authentication (603 no token, 601/602) -> injected error -> limits (607 daily
quota, 606 rate window, 615 concurrency) -> handler. Identity calls never count against the limits.
Calls ending in an error give their window and quota slots back (Marketo: calls returning errors are
not counted); see ``limits``.
"""

from __future__ import annotations

import hmac
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from connector.sandbox.bulk import BulkImports
from connector.sandbox.catalogue import Catalogue
from connector.sandbox.clock import Clock, iso_utc, system_clock
from connector.sandbox.codes import ApiError, HttpFailure, http_status_code, message_for
from connector.sandbox.config import ADJUSTABLE, SandboxConfig
from connector.sandbox.faults import Faults, Outage
from connector.sandbox.inflight import LeadsInFlight
from connector.sandbox.leads import LeadStore
from connector.sandbox.limits import CallLimiter, Ticket, limit_message
from connector.sandbox.partitions import Partitions
from connector.sandbox.query import Params, get_lead, get_leads
from connector.sandbox.seed import prepare_seed
from connector.sandbox.sync import SyncLeads, WriteOutcome, delete_leads
from connector.sandbox.tokens import TokenStore

STAT_KEYS = (
    "identity_calls",
    "rest_calls",
    "accepted",
    "tokens_issued",
    "records_written",
    "created",
    "updated",
    "deleted",
)
T = TypeVar("T")
BAD_CREDENTIALS = {"error": "invalid_client", "error_description": "Bad client credentials"}


class SandboxState:
    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        clock: Clock = system_clock,
        catalogue: Catalogue | None = None,
        leads: Iterable[object] = (),
    ) -> None:
        self.config = config or SandboxConfig()
        self.clock = clock
        self.catalogue = catalogue or Catalogue.default()
        self.partitions = Partitions(self.config.partitions)
        self._lock = threading.RLock()
        self._store = LeadStore(self.catalogue, self.config.first_lead_id)
        self._tokens = TokenStore()
        self._limiter = CallLimiter()
        self._faults = Faults()
        self.in_flight = LeadsInFlight()
        self._imports = BulkImports(self._store, self.catalogue, self.partitions)
        self._request_counter = random.randrange(0x1000, 0x10000)
        self._reset_stats()
        self.seed(leads)
        self._initial_leads = self._store.all()

    # -- identity ---------------------------------------------------------------------------------

    def issue_token(
        self, grant_type: str | None, client_id: str | None, client_secret: str | None
    ) -> tuple[int, dict[str, Any]]:
        """``(http_status, body)`` of the identity endpoint."""
        with self._lock:
            expected = self.config.clients.get(client_id or "")
            if expected is None or not hmac.compare_digest(expected.encode(), (client_secret or "").encode()):
                self.note_error("401")
                return 401, dict(BAD_CREDENTIALS)
            if grant_type != "client_credentials":
                self.note_error("401")
                return 401, {
                    "error": "unsupported_grant_type",
                    "error_description": f"Unsupported grant type: {grant_type}",
                }
            token, expires_in, fresh = self._tokens.issue(str(client_id), self.clock(), self.config.token_ttl)
            self._stats["tokens_issued"] += int(fresh)
            return 200, {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": expires_in,
                "scope": self.config.scope,
            }

    # -- admission --------------------------------------------------------------------------------

    def admit(self, token: str | None) -> Ticket:
        """Let a REST call in, or raise the ApiError / HttpFailure that answers it."""
        with self._lock:
            try:
                now = self.clock()
                if not token:
                    raise ApiError("603")
                code = self._tokens.check(token, now)
                if code:
                    raise ApiError(code)
                injected = self._faults.take_error()
                if injected is not None:
                    status = http_status_code(injected.code)
                    if status is not None:
                        raise HttpFailure(status)
                    raise ApiError(injected.code, injected.message or self._message(injected.code))
                return self._limiter.admit(now, self.config)
            except ApiError as exc:
                self.note_error(exc.code)
                raise
            except HttpFailure as exc:
                self.note_error(str(exc.status))
                raise

    def finish(self, ticket: Ticket, error_code: str | None) -> None:
        """End an admitted call: it counts toward the limits only when it succeeded."""
        with self._lock:
            self._limiter.release(ticket, counted=error_code is None)
            if error_code is None:
                self._stats["accepted"] += 1
            else:
                self.note_error(error_code)

    def note_request(self, kind: str) -> None:
        with self._lock:
            self._stats[f"{kind}_calls"] += 1

    def note_error(self, code: str) -> None:
        with self._lock:
            self._errors[code] += 1

    def request_id(self) -> str:
        with self._lock:
            self._request_counter += 1
            return f"{self._request_counter:x}#{int(self.clock() * 1000):x}"

    # -- lead database ----------------------------------------------------------------------------

    def sync_leads(self, body: object) -> list[dict[str, Any]]:
        with self._lock:
            sync = SyncLeads(self._store, self.catalogue, self.partitions, iso_utc(self.clock()))
            return self._count(sync.run(body, self.config.max_batch))

    def delete_leads(self, body: object) -> list[dict[str, Any]]:
        with self._lock:
            return self._count(delete_leads(self._store, body, self.config.max_batch))

    def get_leads(self, params: Params) -> tuple[list[dict[str, Any]], str | None]:
        with self._lock:
            return get_leads(
                self._store,
                self.catalogue,
                params,
                max_values=self.config.max_filter_values,
                max_matches=self.config.max_matches,
            )

    def get_lead(self, lead_id: int, params: Params) -> list[dict[str, Any]]:
        with self._lock:
            return get_lead(self._store, self.catalogue, lead_id, params)

    def bulk_call(self, call: Callable[[BulkImports, float], T]) -> T:
        """Run *call(imports, now)* on the bulk import queue under the state's lock (``bulk`` module)."""
        with self._lock:
            return call(self._imports, self.clock())

    def describe(self) -> list[dict[str, Any]]:
        return self.catalogue.describe()

    def describe2(self) -> list[dict[str, Any]]:
        return self.catalogue.describe2()

    def partition_list(self) -> list[dict[str, Any]]:
        return self.partitions.as_list()

    # -- control (tests and QA) -------------------------------------------------------------------

    def seed(self, leads: Iterable[object]) -> list[int]:
        """Store leads (ids kept when given); SeedError and nothing stored when any is invalid."""
        with self._lock:
            prepared = prepare_seed(leads, self.catalogue, self.partitions, iso_utc(self.clock()))
            return [self._store.insert(values, lead_id) for lead_id, values in prepared]

    def leads(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._store.all()

    def lead(self, lead_id: int) -> dict[str, Any] | None:
        with self._lock:
            found = self._store.get(lead_id)
            return None if found is None else dict(found)

    def reset(self) -> None:
        """Back to the leads the state was created with; tokens, limits, faults and stats cleared."""
        with self._lock:
            self._store.clear()
            for lead in self._initial_leads:
                self._store.insert(lead, lead["id"])
            self._tokens.clear()
            self._limiter.reset()
            self._faults.clear()
            self.in_flight.reset()
            self._imports.clear()
            self._reset_stats()

    def set_faults(self, spec: object) -> dict[str, Any]:
        with self._lock:
            self._faults.apply(spec, self.clock())
            return self._faults.describe(self.clock())

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def faults(self) -> dict[str, Any]:
        with self._lock:
            return self._faults.describe(self.clock())

    def outage(self) -> Outage | None:
        with self._lock:
            return self._faults.current_outage(self.clock())

    def refusing(self) -> bool:
        outage = self.outage()
        return outage is not None and outage.mode == "refuse"

    def latency_seconds(self) -> float:
        with self._lock:
            return self._faults.latency_ms / 1000.0

    def update_config(self, changes: object) -> dict[str, Any]:
        """Change adjustable settings (see ``config.ADJUSTABLE``); ValueError when any is invalid."""
        if not isinstance(changes, Mapping) or not changes:
            raise ValueError(f"expected an object with some of {sorted(ADJUSTABLE)}")
        checked: dict[str, Any] = {}
        for key, value in changes.items():
            kind = ADJUSTABLE.get(key)
            if kind is None:
                raise ValueError(f"{key!r} cannot be changed; adjustable: {sorted(ADJUSTABLE)}")
            if kind is bool and not isinstance(value, bool):
                raise ValueError(f"{key!r} must be true or false")
            if kind is not bool and (not isinstance(value, int | float) or isinstance(value, bool) or value <= 0):
                raise ValueError(f"{key!r} must be a positive number")
            if kind is int and not float(value).is_integer():
                raise ValueError(f"{key!r} must be an integer")
            checked[key] = kind(value)
        with self._lock:
            self.config = replace(self.config, **checked)
            return self.config.public()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                **{k: self._stats[k] for k in sorted(self._stats)},
                "errors": dict(sorted(self._errors.items())),
                "skipped": dict(sorted(self._skipped.items())),
                "leads": len(self._store),
                "rows_imported": self._imports.rows_imported,
                **self._limiter.snapshot(self.clock(), self.config),
                **self.in_flight.snapshot(),
            }

    # -- internals --------------------------------------------------------------------------------

    def _reset_stats(self) -> None:
        self._stats: Counter[str] = Counter(dict.fromkeys(STAT_KEYS, 0))
        self._errors: Counter[str] = Counter()
        self._skipped: Counter[str] = Counter()

    def _count(self, outcome: WriteOutcome) -> list[dict[str, Any]]:
        self._stats["created"] += outcome.created
        self._stats["updated"] += outcome.updated
        self._stats["deleted"] += outcome.deleted
        self._stats["records_written"] += outcome.created + outcome.updated
        self._skipped.update(outcome.skipped)
        return outcome.result

    def _message(self, code: str) -> str:
        return limit_message(code, self.config) if code in ("606", "615") else message_for(code)
