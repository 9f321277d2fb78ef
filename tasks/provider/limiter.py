"""Fleet-wide rate limits and connection-pool slots, kept in Redis (contract §8).

Celery's own ``rate_limit`` counts per worker process; these count once for every worker on
every machine that shares the Redis. Each decision is one Lua script, so check-and-take is
atomic, and the clock is the Redis server's ``TIME`` so machines with skewed clocks agree.
Times inside the scripts are integer microseconds (about 1.7e15 today: exact in a double).

Neither class blocks: they answer "granted" or "how long to wait", and the caller defers
its job rather than sleeping in a worker.
"""

from __future__ import annotations

import secrets

import redis

UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}

_MICRO = 1_000_000

# A sliding-window log: one sorted-set member per grant, scored by its server time (µs).
# A grant is allowed while fewer than `limit` grants lie in (now - window, now], so any
# `limit + 1` consecutive grants span at least one full window: no burst, at any alignment.
# KEYS[1] log key; ARGV[1] limit, ARGV[2] window (µs), ARGV[3] unique member suffix.
# Returns {wait µs (0 = granted), server seconds, server microseconds}.
# (Redis >= 5 replicates scripts by effects, so writing after TIME is allowed; on older
# servers `redis.replicate_commands()` would be needed first.)
_RATE_LUA = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- grants at or before now - window no longer count
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now, t[1] .. '.' .. t[2] .. '-' .. ARGV[3])
  -- the newest grant matters for one window more; then the whole log is dead
  redis.call('PEXPIRE', key, math.ceil(window / 1000))
  return {0, t[1], t[2]}
end
-- a permit frees when all but limit-1 of the counted grants have aged out: the wait is
-- until the (count - limit)th oldest (0-based) leaves the window
local pivot = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
return {tonumber(pivot[2]) + window - now, t[1], t[2]}
"""

# Leases in a sorted set scored by expiry time (µs). Expired leases are dropped first, so
# a crashed holder's slot frees when its lease runs out.
# KEYS[1] pool key; ARGV[1] limit, ARGV[2] lease (µs), ARGV[3] lease id. Returns 1 or 0.
_ACQUIRE_LUA = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZCARD', key) >= tonumber(ARGV[1]) then
  return 0
end
local lease = tonumber(ARGV[2])
redis.call('ZADD', key, now + lease, ARGV[3])
-- keep the key while its longest lease lives, never shortening another holder's
local ttl = math.ceil(lease / 1000)
if redis.call('PTTL', key) < ttl then
  redis.call('PEXPIRE', key, ttl)
end
return 1
"""

# A holder keeping its lease (a long-lived one: the API's event streams): its expiry moved to
# now + lease, re-added if it had lapsed meanwhile (the holder is alive, so it counts).
# KEYS[1] lease key; ARGV[1] lease (µs), ARGV[2] lease id. Returns 1.
_RENEW_LUA = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local lease = tonumber(ARGV[1])
redis.call('ZADD', key, now + lease, ARGV[2])
local ttl = math.ceil(lease / 1000)
if redis.call('PTTL', key) < ttl then
  redis.call('PEXPIRE', key, ttl)
end
return 1
"""

# Microseconds until the earliest live lease expires (0 when none is held).
_WAIT_HINT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local first = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #first == 0 then
  return 0
end
return tonumber(first[2]) - now
"""


def _micros(seconds: float, what: str) -> int:
    if not seconds > 0:
        raise ValueError(f"{what} must be positive, not {seconds!r}")
    return max(1, round(seconds * _MICRO))


class RateLimiter:
    """At most ``limit`` permits in any ``window_seconds`` interval, per key, fleet-wide."""

    def __init__(self, client: redis.Redis) -> None:
        self._script = client.register_script(_RATE_LUA)

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
        self._acquire = client.register_script(_ACQUIRE_LUA)
        self._wait_hint = client.register_script(_WAIT_HINT_LUA)

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

# The scripts, for callers with another Redis client (the API's asyncio one).
RATE_LIMIT_SCRIPT = _RATE_LUA
LEASE_ACQUIRE_SCRIPT = _ACQUIRE_LUA
LEASE_RENEW_SCRIPT = _RENEW_LUA
