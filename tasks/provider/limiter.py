"""Fleet-wide rate limits and connection-pool slots, kept in Redis (contract §8).

Celery's own ``rate_limit`` counts per worker process; these count once for every worker on
every machine that shares the Redis. Each decision is one Lua script, so check-and-take is
atomic, and the clock is the Redis server's ``TIME`` so machines with skewed clocks agree.
Times inside the scripts are integer microseconds (about 1.7e15 today: exact in a double).

Neither class blocks: they answer "granted" or "how long to wait", and the caller defers
its job rather than sleeping in a worker. Their Lua is ``tasks/provider/limit_scripts.py``'s,
the same pieces the permits of the gate and the API's governor are made of.
"""

from __future__ import annotations

import secrets

import redis

from tasks.provider import limit_scripts

UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}

_MICRO = 1_000_000


def _micros(seconds: float, what: str) -> int:
    if not seconds > 0:
        raise ValueError(f"{what} must be positive, not {seconds!r}")
    return max(1, round(seconds * _MICRO))


class RateLimiter:
    """At most ``limit`` permits in any ``window_seconds`` interval, per key, fleet-wide."""

    def __init__(self, client: redis.Redis) -> None:
        self._script = client.register_script(limit_scripts.RATE)

    def attempt(self, key: str, limit: int, window_seconds: float) -> tuple[float, float]:
        """``try_acquire`` plus the Redis server time (epoch seconds) the decision was made at."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit!r}")
        window = _micros(window_seconds, "window_seconds")
        wait, sec, usec = self._script(keys=[key], args=[limit, window, secrets.token_hex(8)])
        return int(wait) / _MICRO, int(sec) + int(usec) / _MICRO

    def try_acquire(self, key: str, limit: int, window_seconds: float) -> float:
        """Take a permit: 0.0 when granted, else the seconds to wait until one frees up."""
        return self.attempt(key, limit, window_seconds)[0]


class PoolSemaphore:
    """At most ``limit`` live leases per pool key, fleet-wide; leases expire on their own."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._acquire = client.register_script(limit_scripts.LEASE_ACQUIRE)
        self._wait_hint = client.register_script(limit_scripts.LEASE_WAIT_HINT)

    def try_acquire(self, pool_key: str, limit: int, lease_seconds: float) -> str | None:
        """A lease id when a slot was free (at most `limit` leases live at once), else None."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit!r}")
        lease_id = secrets.token_hex(16)
        granted = self._acquire(keys=[pool_key], args=[limit, _micros(lease_seconds, "lease_seconds"), lease_id])
        return lease_id if int(granted) else None

    def release(self, pool_key: str, lease_id: str) -> None:
        """Free the slot now (a no-op when the lease already expired)."""
        self._client.zrem(pool_key, lease_id)  # a single command: atomic on its own

    def wait_hint(self, pool_key: str) -> float:
        """Seconds until the earliest lease expires: when to retry at the latest (0.0 if none)."""
        return max(0.0, int(self._wait_hint(keys=[pool_key])) / _MICRO)
