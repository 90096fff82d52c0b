"""Everything about a sandbox instance that can be chosen: credentials, token lifetime, limits, sizes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.partitions import DEFAULT_PARTITION, Partition

SANDBOX_CLIENT_ID = "sandbox-client"
SANDBOX_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - a fixed, public sandbox credential

# Keys POST /_sandbox/config may change at runtime, with their types.
ADJUSTABLE: dict[str, type] = {
    "token_ttl": float,
    "legacy_query_token": bool,
    "limits": bool,
    "rate_limit": int,
    "rate_window": float,
    "max_concurrent": int,
    "daily_quota": int,
    "import_rows_per_second": float,
}


@dataclass(frozen=True)
class SandboxConfig:
    """Marketo's documented values by default; limits on."""

    clients: Mapping[str, str] = field(default_factory=lambda: {SANDBOX_CLIENT_ID: SANDBOX_CLIENT_SECRET})
    scope: str = "sandbox-api-user@example.com"
    token_ttl: float = 3600.0
    legacy_query_token: bool = False  # accept ?access_token= (Marketo removes it after 2026-08-31)
    limits: bool = True
    rate_limit: int = 100
    rate_window: float = 20.0
    max_concurrent: int = 10
    daily_quota: int = 50_000
    max_body_bytes: int = 1_048_576
    max_import_bytes: int = 10_485_760  # bulk import: "less than 10MB"
    import_rows_per_second: float = 5_000.0  # modelled bulk import speed (Adobe publishes none)
    max_control_body_bytes: int = 64 * 1_048_576
    max_uri_bytes: int = 8_192
    max_batch: int = 300
    max_filter_values: int = 300
    max_matches: int = 1_000
    partitions: tuple[Partition, ...] = (DEFAULT_PARTITION,)
    first_lead_id: int = 1

    def public(self) -> dict[str, Any]:
        """The adjustable settings and the client ids (never the secrets), for GET /_sandbox/config."""
        out: dict[str, Any] = {key: getattr(self, key) for key in ADJUSTABLE}
        out["client_ids"] = sorted(self.clients)
        return out
