"""What governs one connector's requests (contract §8): its rate limit's window, its pool, and the
keys they are kept under. The gate (authq's own calls) and the governor (the platform's) build the
same ``Limits`` from the same records, so both count in one window of one length.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.model.records import ConnectionPool, Connector
from tasks.provider.limiter import UNIT_SECONDS
from tasks.storage import schema

# A provider's Retry-After counts at most this long (contract §8): a 429 saying 31 years
# must not silence a connector for 31 years.
RETRY_AFTER_AT_MOST = 3600.0
WINDOW_HEADROOM = 1.1   # see Limits.of
DEFAULT_LEASE_SECONDS = 30.0   # a slot's lease when the pool names no timeout


@dataclass
class Limits:
    """What governs one connector's requests: its rate limit, and its pool if any."""

    tenant: str
    connector_id: str
    rate_limit: int
    window_seconds: float
    pool: ConnectionPool | None = None

    @classmethod
    def of(cls, connector: Connector, pool: ConnectionPool | None) -> Limits:
        # The window is a little longer than the unit: permits are timed where they are
        # granted, requests counted where they arrive, and the time in between (connecting,
        # a busy machine) varies by tens of milliseconds. The headroom keeps "at most N in
        # any unit" true as the provider counts, not only as Redis does.
        unit = float(UNIT_SECONDS[connector.rate_limit.unit])
        return cls(connector.tenant, connector.id, connector.rate_limit.duration, unit * WINDOW_HEADROOM, pool)

    def lease_seconds(self, default: float = DEFAULT_LEASE_SECONDS) -> float:
        """How long a slot of the pool is held at most: the pool's ``timeout``, else ``default``."""
        return float(self.pool.timeout) if self.pool and self.pool.timeout else default

    @property
    def rate_key(self) -> str:
        return schema.rate_log(self.tenant, self.connector_id)

    @property
    def blocked_key(self) -> str:
        return schema.rate_blocked(self.tenant, self.connector_id)

    @property
    def pool_key(self) -> str | None:
        return schema.pool_slots(self.tenant, self.pool.id) if self.pool else None
