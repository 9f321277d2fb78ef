"""The gate every outbound request authq makes for a connector passes (contract §8).

A permit of the connector's rate limit and, when it has a pool, a slot of the pool, taken together
by one script or not at all (``permits.take``, the same the API's governor takes the platform's
permits with). A wait shorter than ``SLEEP_AT_MOST`` is slept through; a longer one raises
``Deferred`` and the job runs again later, so no worker sits idle behind a limit. A provider's 429
with ``Retry-After`` blocks the connector's requests to that host for that long, an hour at most:
the block names the host that sent it, so a reauthorise that moves the connector elsewhere is not
held up by it, while the connector stays blocked at the old host until the move has succeeded (a
failed move leaves it where it was). A block the platform reports through the API names no host
(``permits.ANY_HOST``) and holds every request of the connector.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from tasks.errors import Deferred
from tasks.provider import permits
from tasks.provider.connector_limits import DEFAULT_LEASE_SECONDS, RETRY_AFTER_AT_MOST, Limits
from tasks.storage.store import run

__all__ = ["DEFAULT_LEASE_SECONDS", "POOL_RECHECK_SECONDS", "RETRY_AFTER_AT_MOST", "SLEEP_AT_MOST", "Gate", "Limits"]

SLEEP_AT_MOST = 0.3
# A pool slot is normally freed when its request ends, long before its lease runs out, and
# a worker does not listen for the release: a job waiting for one looks again this soon.
POOL_RECHECK_SECONDS = 1.0
_WHY = {permits.BLOCKED: "provider_rate_limited", permits.RATE_LIMITED: "rate_limit",
        permits.POOL_EXHAUSTED: "connection_pool"}


class Gate:
    def __init__(self, client: redis.Redis, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.redis = client
        self.lease_seconds = lease_seconds

    def _wait_or_defer(self, seconds: float, why: str) -> None:
        if seconds > SLEEP_AT_MOST:
            raise Deferred(seconds, why)
        time.sleep(seconds)

    @contextmanager
    def permit(self, limits: Limits, host: str) -> Iterator[None]:
        """A slot and a permit for one request to ``host`` (``host:port`` as connected to)."""
        lease_id = secrets.token_hex(16)
        lease_seconds = limits.lease_seconds(self.lease_seconds)
        while not (decision := run(self.redis, permits.take(limits, lease_id, lease_seconds, host=host))).granted:
            wait = decision.wait
            if decision.status == permits.POOL_EXHAUSTED:
                # no sooner than the rate limit allows, no later than a recheck for a release
                wait = max(decision.rate_wait, 0.05, min(decision.slot_wait, POOL_RECHECK_SECONDS))
            self._wait_or_defer(wait, _WHY[decision.status])
        try:
            yield
        finally:
            if limits.pool is not None:
                run(self.redis, permits.free_slot(limits.tenant, limits.pool.id, lease_id))

    def block(self, limits: Limits, seconds: float, host: str) -> None:
        """``host`` said 429 + Retry-After: nobody calls it for this connector until then (an
        hour at most)."""
        run(self.redis, permits.block(limits, seconds, host))
