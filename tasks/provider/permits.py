"""Taking and freeing the permit one request for a connector needs (contract §8, §9), written once.

A permit is the rate limit's (a member of the connector's sliding-window log) and, when the
connector is in a connection pool, a slot of the pool (a lease), taken together by one script
(``limit_scripts.PERMIT``) or not at all. The workers' gate (``gate.py``, sync, for authq's own
calls) and the API's governor (``api/governor.py``, asyncio, for the platform's) run these same
operations over their own clients, on the same keys: one limit for everyone.

The governor's permits also have a record (``schema.permit``), so that the platform can free the
slot by the permit's id; it lapses with the lease. Freeing a slot publishes on the pool's channel
(``schema.pool_freed``): whoever waits for a slot of that pool looks again at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tasks.errors import RefusalCode
from tasks.model.records import iso
from tasks.model.views import PermitView
from tasks.provider import limit_scripts
from tasks.provider.connector_limits import RETRY_AFTER_AT_MOST, Limits
from tasks.storage import schema
from tasks.storage.steps import Lua, Op, Script

PERMIT = Lua(limit_scripts.PERMIT)
PERMIT_IF_CURRENT = Lua(limit_scripts.PERMIT_IF_CURRENT)
RELEASE = Lua(limit_scripts.RELEASE)
ANY_HOST = "*"          # a block written without a host holds the connector wherever it sends
_MICRO = 1_000_000
GRANTED, BLOCKED, RATE_LIMITED, POOL_EXHAUSTED = 0, 1, 2, 3
GONE, NOT_AS_KEPT = 4, 5  # PERMIT_IF_CURRENT's: the kept record is gone, or not the one stored


@dataclass(frozen=True, slots=True)
class Decision:
    """What the permit script answered: granted, or why not and how long until it could be."""

    status: int
    rate_wait: float    # seconds until the rate limit (or the provider's block) allows one
    slot_wait: float    # seconds until a slot frees by a lease running out (a release may come sooner)
    server_time: float  # the Redis clock (epoch seconds) the decision was made at

    @property
    def granted(self) -> bool:
        return self.status == GRANTED

    @property
    def wait(self) -> float:
        """Seconds until a permit could be granted, as far as Redis can tell now."""
        return max(self.rate_wait, self.slot_wait)

    @property
    def code(self) -> RefusalCode:
        """The refusal's ``code`` (§9): a full pool, else the rate limit (a provider's block included)."""
        return "pool_exhausted" if self.status == POOL_EXHAUSTED else "rate_limited"


@dataclass(frozen=True, slots=True)
class Grant:
    """A permit the governor handed out, until it is released or its lease lapses."""

    id: str
    tenant: str
    connector_id: str
    connection_pool_id: int | None
    server_time: float     # when it was granted: the Redis clock, epoch seconds
    lease_seconds: float   # how long it holds its pool slot at most
    # Kept under its id in Redis, so ``DELETE /permits/{id}`` finds it (the permits endpoint's).
    # The proxy's own are not: it gives them back itself, by their pool slot if they hold one.
    recorded: bool = True

    # (as dates only when shown: a proxied request's grant is never shown, and making its two
    # dates on every request cost it a little for nothing)
    @property
    def granted_at(self) -> datetime:
        return datetime.fromtimestamp(self.server_time, UTC)

    @property
    def expires_at(self) -> datetime:
        return self.granted_at + timedelta(seconds=self.lease_seconds)

    def view(self) -> PermitView:
        return {"id": self.id, "connector_id": self.connector_id, "connection_pool_id": self.connection_pool_id,
                "granted_at": iso(self.granted_at), "expires_at": iso(self.expires_at)}


@dataclass(frozen=True, slots=True)
class NotCurrent:
    """``take_if_current``'s answer when the kept record is not the one stored: nothing was taken."""

    stored: bytes | None   # the record as stored now (None: it is gone)


def take(limits: Limits, permit_id: str, lease_seconds: float, *, host: str = "",
         record: bool = False) -> Op[Decision]:
    """Take a permit for one request to ``host`` ('' = wherever the connector sends): one script call.

    With ``record``, the permit is kept under its id for as long as its lease (a governor's grant)."""
    keys, args = _permit_call(limits, permit_id, lease_seconds, host, record)
    return _decision((yield Script(PERMIT, keys, args)))


def take_if_current(limits: Limits, permit_id: str, lease_seconds: float, record_key: str, digest: str, *,
                    record: bool = False) -> Op[Decision | NotCurrent]:
    """``take`` for a request decided on a kept record: only while ``record_key`` still holds the
    record whose SHA-1 is ``digest`` (checked in the same script call)."""
    keys, args = _permit_call(limits, permit_id, lease_seconds, "", record)
    reply = yield Script(PERMIT_IF_CURRENT, [record_key, *keys], [digest, *args])
    status = int(reply[0])
    if status == GONE:
        return NotCurrent(None)
    if status == NOT_AS_KEPT:
        return NotCurrent(bytes(reply[5]))
    return _decision(reply)


def _permit_call(limits: Limits, permit_id: str, lease_seconds: float, host: str,
                 record: bool) -> tuple[list[str], list[str | int]]:
    """PERMIT's keys and arguments (``limit_scripts``)."""
    keys = [limits.rate_key, limits.blocked_key]
    pool = limits.pool
    if pool is not None:
        keys.append(schema.pool_slots(limits.tenant, pool.id))
    stored = ""
    if record:
        keys.append(schema.permit(limits.tenant, permit_id))
        stored = json.dumps({"connector_id": limits.connector_id, "connection_pool_id": pool.id if pool else None})
    return keys, [limits.rate_limit, _micros(limits.window_seconds), host, permit_id,
                  pool.limit if pool else 0, _micros(lease_seconds), stored]


def _decision(reply: list[int]) -> Decision:
    status, rate_wait, slot_wait, seconds, micros = (int(part) for part in reply)
    return Decision(status, rate_wait / _MICRO, slot_wait / _MICRO, seconds + micros / _MICRO)


def granted(limits: Limits, permit_id: str, decision: Decision, lease_seconds: float, recorded: bool = True) -> Grant:
    """The grant a granted ``decision`` stands for, timed by the Redis clock that made it."""
    return Grant(permit_id, limits.tenant, limits.connector_id, limits.pool.id if limits.pool else None,
                 decision.server_time, lease_seconds, recorded)


def free_slot(tenant: str, pool_id: int, lease_id: str) -> Op[None]:
    """Free a pool slot now (a no-op when its lease lapsed) and say so on the pool's channel."""
    yield Script(RELEASE, [schema.pool_slots(tenant, pool_id)], [lease_id, schema.pool_freed(tenant, pool_id)])


def release(tenant: str, permit_id: str) -> Op[bool]:
    """Free a governor's permit by its id: False when there is none (unknown, released, lapsed)."""
    key = schema.permit(tenant, permit_id)
    stored = yield ("GET", key)
    if stored is None:
        return False
    pool_id = json.loads(stored).get("connection_pool_id")
    if pool_id is None:
        return bool((yield ("DEL", key)))
    held = yield Script(RELEASE, [schema.pool_slots(tenant, pool_id), key],
                        [permit_id, schema.pool_freed(tenant, pool_id)])
    return bool(held)


def block(limits: Limits, seconds: float, host: str = ANY_HOST) -> Op[None]:
    """A provider said 429 + Retry-After: no permit for ``host`` (every host: ``ANY_HOST``) until
    then, an hour at most (a 429 saying 31 years must not silence a connector for 31 years)."""
    seconds = min(seconds, RETRY_AFTER_AT_MOST)
    if seconds > 0:
        yield ("SET", limits.blocked_key, host, "PX", max(1, int(seconds * 1000)))


def _micros(seconds: float) -> int:
    return max(1, round(seconds * _MICRO))

