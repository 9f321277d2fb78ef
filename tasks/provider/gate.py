"""The gate every outbound request for a connector passes (contract §8).

First a slot of the connector's connection pool (when it has one), then a permit of its
rate limit. A wait shorter than ``SLEEP_AT_MOST`` is slept through; a longer one raises
``Deferred`` and the job runs again later, so no worker sits idle behind a limit. A
provider's 429 with ``Retry-After`` blocks the connector's requests to that host for that long,
an hour at most: the block names the host that sent it, so a reauthorise that moves the connector
elsewhere is not held up by it, while the connector stays blocked at the old host until the move
has succeeded (a failed move leaves it where it was).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from tasks.errors import Deferred
from tasks.model.records import ConnectionPool, Connector
from tasks.provider.limiter import UNIT_SECONDS, PoolSemaphore, RateLimiter
from tasks.storage import schema

SLEEP_AT_MOST = 0.3
# A provider's Retry-After counts at most this long (contract §8): a 429 saying 31 years
# must not silence a connector for 31 years.
RETRY_AFTER_AT_MOST = 3600.0
WINDOW_HEADROOM = 1.1   # see Limits.of
DEFAULT_LEASE_SECONDS = 30.0
# A pool slot is normally freed when its request ends, long before its lease runs out, and
# Redis can't say when that will be: a job waiting for one looks again this soon.
POOL_RECHECK_SECONDS = 1.0


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

    @property
    def rate_key(self) -> str:
        return schema.rate_log(self.tenant, self.connector_id)

    @property
    def blocked_key(self) -> str:
        return schema.rate_blocked(self.tenant, self.connector_id)

    @property
    def pool_key(self) -> str | None:
        return schema.pool_slots(self.tenant, self.pool.id) if self.pool else None


class Gate:
    def __init__(self, client: redis.Redis, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.redis = client
        self.limiter = RateLimiter(client)
        self.pools = PoolSemaphore(client)
        self.lease_seconds = lease_seconds

    def _wait_or_defer(self, seconds: float, why: str) -> None:
        if seconds > SLEEP_AT_MOST:
            raise Deferred(seconds, why)
        time.sleep(seconds)

    def _blocked_for(self, limits: Limits, host: str) -> float:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(limits.blocked_key)
            pipe.pttl(limits.blocked_key)
            by, ms = pipe.execute()
        if by is None or (by not in (b"1", "1") and by not in (host.encode(), host)):
            return 0.0  # no block, or another host's ("1": written before blocks named their host)
        return ms / 1000 if ms and ms > 0 else 0.0

    @contextmanager
    def permit(self, limits: Limits, host: str) -> Iterator[None]:
        """A slot and a permit for one request to ``host`` (``host:port`` as connected to)."""
        blocked = self._blocked_for(limits, host)
        if blocked:
            self._wait_or_defer(blocked, "provider_rate_limited")
        lease = None
        pool_key = limits.pool_key
        if pool_key and limits.pool:
            lease_seconds = float(limits.pool.timeout or self.lease_seconds)
            while (lease := self.pools.try_acquire(pool_key, limits.pool.limit, lease_seconds)) is None:
                wait = min(self.pools.wait_hint(pool_key), lease_seconds, POOL_RECHECK_SECONDS)
                self._wait_or_defer(max(0.05, wait), "connection_pool")
        try:
            while (wait := self.limiter.try_acquire(limits.rate_key, limits.rate_limit, limits.window_seconds)) > 0:
                self._wait_or_defer(wait, "rate_limit")
            yield
        finally:
            if lease and pool_key:
                self.pools.release(pool_key, lease)

    def block(self, limits: Limits, seconds: float, host: str) -> None:
        """``host`` said 429 + Retry-After: nobody calls it for this connector until then (an
        hour at most)."""
        seconds = min(seconds, RETRY_AFTER_AT_MOST)
        if seconds > 0:
            self.redis.set(limits.blocked_key, host, px=max(1, int(seconds * 1000)))
