"""The audit log in Redis (contract §12): written inside the change's own atomic step, kept 90 days.

``record`` queues an event's writes into the batch, transaction or pipeline that makes the
change (a job's end, a connector's deletion, a key's creation): the event is stored if and
only if the change is. Each event goes into three sorted sets, scored by its time in
milliseconds: the tenant's (``schema.audit_events``), its connector's and its type's, so a
page filtered by either is read from its own set rather than found by scanning the tenant's.
Every write also trims the sets it touches to the last 90 days and sets them to expire 90
days on, so a set nothing writes to any more (a deleted connector's) goes in the end too.

Endpoints that audit what they do call ``record`` with an ``AuditEvent.new(type, actor, connector_id,
**details)`` in the same step as their change (``credentials.read`` with the read's own writes,
``webhook.created`` / ``webhook.deleted`` with the webhook's).

Events of one millisecond are ordered by their ids, which begin with the time
(``tasks.model.audit.new_event_id``); pages are newest first.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol

from tasks.model.audit import AuditEvent
from tasks.model.views import AuditType
from tasks.storage import schema
from tasks.storage.steps import Lua, Op, Script

KEPT_SECONDS = 90 * 86400


class Writes(Protocol):
    """What the event's writes are queued into: a ``Batch``, a ``Transaction``, a redis-py pipeline."""

    def zadd(self, key: str, mapping: Mapping[str, float], /) -> object: ...
    def zremrangebyscore(self, key: str, min: float | str, max: float | str, /) -> object: ...  # noqa: A002
    def expire(self, key: str, seconds: int, /) -> object: ...


def _sets(tenant: str, event: AuditEvent) -> list[str]:
    keys = [schema.audit_events(tenant), schema.audit_by_type(tenant, event.type)]
    if event.connector_id:
        keys.append(schema.audit_by_connector(tenant, event.connector_id))
    return keys


def record(into: Writes, tenant: str, event: AuditEvent) -> None:
    """Queue ``event``'s writes into ``into``, the step that makes the change it records."""
    score = round(event.at.timestamp() * 1000)
    member = event.stored()
    oldest_kept = _oldest_kept_ms()
    for key in _sets(tenant, event):
        into.zadd(key, {member: score})
        into.zremrangebyscore(key, "-inf", f"({oldest_kept}")
        into.expire(key, KEPT_SECONDS)


# ``record``'s writes as one script, for an event that is itself the change (a credentials read):
# atomic like a transaction, but one command, so it shares the API's auto-pipelined round trip
# with other requests' instead of taking a pooled connection for MULTI, nine writes and EXEC.
RECORD = Lua("""
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[2], ARGV[1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ARGV[3])
  redis.call('EXPIRE', key, ARGV[4])
end
return #KEYS
""")


def recorded(tenant: str, event: AuditEvent) -> Script:
    """``event``'s writes (the same as ``record``'s) as one script call."""
    return Script(RECORD, _sets(tenant, event),
                  [event.stored(), round(event.at.timestamp() * 1000), _oldest_kept_ms(), KEPT_SECONDS])


def _oldest_kept_ms(now: float | None = None) -> int:
    return round(((time.time() if now is None else now) - KEPT_SECONDS) * 1000)


def events(tenant: str, number: int, per_page: int, connector_id: str | None = None,
           type_: AuditType | None = None) -> Op[tuple[list[AuditEvent], int]]:
    """Page ``number`` (from 1) of the tenant's events, newest first, of one connector and/or one
    type; and how many there are in all. Events older than 90 days not yet trimmed are not counted."""
    oldest = _oldest_kept_ms()
    start = (number - 1) * per_page
    if connector_id is not None and type_ is not None:
        # One connector's events are few (its own changes over 90 days): read them all, keep the type's.
        raws = yield ("ZREVRANGEBYSCORE", schema.audit_by_connector(tenant, connector_id), "+inf", oldest)
        found = [e for e in map(AuditEvent.from_stored, raws) if e.type == type_]
        return found[start:start + per_page], len(found)
    if connector_id is not None:
        key = schema.audit_by_connector(tenant, connector_id)
    elif type_ is not None:
        key = schema.audit_by_type(tenant, type_)
    else:
        key = schema.audit_events(tenant)
    total = int((yield ("ZCOUNT", key, oldest, "+inf")))
    if start >= total:
        return [], total
    raws = yield ("ZREVRANGEBYSCORE", key, "+inf", oldest, "LIMIT", start, per_page)
    return [AuditEvent.from_stored(raw) for raw in raws], total
