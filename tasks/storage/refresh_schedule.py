"""The refresh schedule: which connectors' tokens are due, kept per tenant so a scan can be fair.

Each tenant has a sorted set, ``refresh_schedule(tenant)``: connector id -> its token's
expiry, as ``commands.write_connector`` stores it. The scan queues a refresh when the score
is within the refresh window; once it has, it moves the score to the next attempt plus the
window (``push_back``), so the connector leaves the due range until its backoff has passed.
A refresh that stores new credentials writes the new expiry over it (the backoff ends);
one that fails leaves it, and the next attempt backs off further.

``REFRESH_TENANTS`` indexes the tenants by their schedule's earliest score, so a scan finds
the tenants with anything due without reading any connector. A write lowers a tenant's entry
(``ZADD LT``) and nothing else moves it: it may be earlier than the schedule's earliest
(the connector was pushed back, refreshed or deleted), never later. The scan ``settle``s
each tenant it visits, in one script: the entry becomes the schedule's earliest score, or
goes when the schedule is empty.

Earlier versions kept one fleet-wide schedule, ``EXPIRING`` (members ``tenant/connector``);
``adopt_legacy`` moves what it still holds, a page per scan, so an upgrade loses no refresh.
"""

from __future__ import annotations

from typing import Any

from tasks.storage import schema
from tasks.storage.batch import Batch
from tasks.storage.steps import Lua, Op, Script

Due = tuple[str, float]  # (connector id, its score)

# KEYS: the tenant's schedule, REFRESH_TENANTS. ARGV: the tenant.
_SETTLE = Lua("""
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then return redis.call('ZREM', KEYS[2], ARGV[1]) end
redis.call('ZADD', KEYS[2], first[2], ARGV[1])
return 1
""")

# KEYS: the tenant's schedule, the version's count of scheduled refreshes.
# ARGV: the connector id, the score the scan read, now + window, base, cap, jitter (0.8..1],
# the count's lifetime beyond the delay. 0 if the score moved since it was read (a refresh
# stored new credentials, or the connector was deleted: nothing to do); else the attempt's
# number, the delay ``min(cap, base * 2^(n-1)) * jitter`` added to now + window.
_PUSH_BACK = Lua("""
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not seen or tonumber(seen) ~= tonumber(ARGV[2]) then return 0 end
local n = redis.call('INCR', KEYS[2])
local delay = math.min(tonumber(ARGV[5]), tonumber(ARGV[4]) * 2 ^ (n - 1)) * tonumber(ARGV[6])
redis.call('EXPIRE', KEYS[2], math.ceil(delay + tonumber(ARGV[7])))
redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[3]) + delay, ARGV[1])
return n
""")


def due_tenants(horizon: float, limit: int) -> Op[list[str]]:
    """Up to ``limit`` tenants that may have a connector due by ``horizon``, longest due first."""
    found = yield ("ZRANGEBYSCORE", schema.REFRESH_TENANTS, "-inf", horizon, "LIMIT", 0, limit)
    return [t.decode() if isinstance(t, bytes) else t for t in found]


def due_connectors(tenant: str, horizon: float, limit: int) -> Op[list[Due]]:
    """Up to ``limit`` of the tenant's connectors due by ``horizon``, earliest first."""
    found = yield ("ZRANGEBYSCORE", schema.refresh_schedule(tenant), "-inf", horizon, "WITHSCORES", "LIMIT", 0, limit)
    return [(m.decode() if isinstance(m, bytes) else m, s) for m, s in _pairs(found)]


def push_back(
    tenant: str,
    due: Due,
    version: int,
    now_plus_window: float,
    base: float,
    cap: float,
    jitter: float,
    count_slack: float,
) -> Op[int]:
    """Move a due connector to its next attempt (see ``_PUSH_BACK``): its attempt number, 0 if it moved meanwhile."""
    connector_id, seen = due
    keys = [schema.refresh_schedule(tenant), schema.refresh_queued(tenant, connector_id, version)]
    args = [connector_id, repr(seen), repr(now_plus_window), repr(base), repr(cap), repr(jitter), repr(count_slack)]
    return int((yield Script(_PUSH_BACK, keys, args)))


def forget(tenant: str, connector_id: str) -> Op[None]:
    yield ("ZREM", schema.refresh_schedule(tenant), connector_id)


def settle(tenant: str) -> Op[None]:
    """The tenant's index entry made its schedule's earliest score, or removed if it has none."""
    yield Script(_SETTLE, [schema.refresh_schedule(tenant), schema.REFRESH_TENANTS], [tenant])


def adopt_legacy(limit: int) -> Op[int]:
    """Move up to ``limit`` entries of earlier versions' ``EXPIRING`` into the tenants' schedules
    (a score written since stays: ``NX``), in one script; how many it moved."""
    found = yield ("ZRANGE", schema.EXPIRING, 0, limit - 1, "WITHSCORES")
    if not found:
        return 0
    batch = Batch()
    pairs = _pairs(found)
    for member, score in pairs:
        tenant, connector_id = schema.member_parts(member)
        if tenant and schema.is_id(connector_id):
            batch.zadd(schema.refresh_schedule(tenant), {connector_id: score}, nx=True)
            batch.zadd(schema.REFRESH_TENANTS, {tenant: score}, lt=True)
        batch.zrem(schema.EXPIRING, member.decode() if isinstance(member, bytes) else member)
    yield from batch.op()
    return len(pairs)


def _pairs(found: list[Any]) -> list[tuple[bytes | str, float]]:
    """A ``WITHSCORES`` reply as (member, score) pairs: redis-py answers pairs or a flat list."""
    if found and isinstance(found[0], list | tuple):
        return [(m, float(s)) for m, s in found]
    return [(m, float(s)) for m, s in zip(found[::2], found[1::2], strict=True)]
