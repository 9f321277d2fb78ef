"""Handing due webhook deliveries to workers: one sorted set of what is due, scanned, never a
long Celery countdown.

``WEBHOOK_DUE`` scores each pending delivery with when a worker should next be given it. A
worker is handed a delivery by publishing a message (``authq.deliver_webhook``), and whoever
publishes first *claims* it: its score is pushed on by ``CLAIM_SECONDS``, longer than an
attempt can last. So a message lost (a worker SIGKILLed, a Redis restart) costs a delay, never
the delivery: once the claim runs out the scan finds it due again and publishes it again.
Nothing waits in the broker for longer than it takes a worker to pick it up, so the broker's
visibility timeout (30 s, docs/architecture.md) never sees a countdown.

An attempt (``begin``) takes the delivery's lease (two messages for one delivery never send it
twice at once) and a slot of its endpoint (at most ``AUTHQ_WEBHOOK_ENDPOINT_CONCURRENCY`` in
flight per endpoint fleet-wide, so a hanging endpoint holds only that many worker threads and
every other endpoint's deliveries go on). Its end (``finish``) writes the delivery, its next
score (or removes it), the endpoint (disabled by a ``410``), the counts, and gives the slot and
lease back: one batch.
"""

from __future__ import annotations

import time

from tasks.model.webhooks import DELIVERY_KEPT_SECONDS, Delivery, Webhook
from tasks.storage import schema, webhooks
from tasks.storage.batch import Batch
from tasks.storage.steps import Lua, Op, Script

# KEYS: the due set; ARGV: now, claim until, at most. The due members, each claimed.
CLAIM_DUE = Lua("""
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member)
end
return due
""")

# KEYS: the due set; ARGV: claim until, members. Those still pending, each claimed.
CLAIM_THESE = Lua("""
local claimed = {}
for i = 2, #ARGV do
  if redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[1], ARGV[i]) == 1 then
    table.insert(claimed, ARGV[i])
  end
end
return claimed
""")

# KEYS: the delivery's lease, the endpoint's slots, the due set
# ARGV: token, lease ms, now ms, slots per endpoint, slot expiry ms, due member, claim until
# 1: begun; 0: another attempt of this delivery runs; -1: the endpoint's slots are all taken.
BEGIN = Lua("""
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
  redis.call('DEL', KEYS[1])
  return -1
end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], 'XX', ARGV[7], ARGV[6])
return 1
""")

BEGUN, RUNNING, BUSY = 1, 0, -1
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
OUTCOMES = ("delivered", "retried", "failed", "gone")


def claim_seconds(timeout: float) -> float:
    """How long a claim holds: an attempt's deadline, and time to spare for the queue and Redis."""
    return 2 * timeout + 30.0


def claim_due(now: float, until: float, at_most: int) -> Op[list[tuple[str, str, str]]]:
    """Claim up to ``at_most`` due deliveries: their (tenant, webhook id, message id)."""
    members = yield Script(CLAIM_DUE, [schema.WEBHOOK_DUE], [repr(now), repr(until), at_most])
    return [schema.due_parts(m) for m in members or []]


def claim(members: list[str], until: float) -> Op[list[tuple[str, str, str]]]:
    """Claim these deliveries (just written): those still pending."""
    if not members:
        return []
    claimed = yield Script(CLAIM_THESE, [schema.WEBHOOK_DUE], [repr(until), *members])
    return [schema.due_parts(m) for m in claimed or []]


def begin(tenant: str, webhook_id: str, message_id: str, token: str, lease_seconds: float,
          slots: int, until: float) -> Op[int]:
    """Take the delivery's lease and a slot of its endpoint: ``BEGUN``, ``RUNNING`` or ``BUSY``."""
    now_ms = round(time.time() * 1000)
    lease_ms = round(lease_seconds * 1000)
    keys = [schema.delivery_lease(tenant, schema.delivery_id(webhook_id, message_id)),
            schema.webhook_slots(tenant, webhook_id), schema.WEBHOOK_DUE]
    return int((yield Script(BEGIN, keys, [token, lease_ms, now_ms, slots, now_ms + lease_ms,
                                          schema.due_member(tenant, webhook_id, message_id), repr(until)])))


def attempt_records(tenant: str, webhook_id: str, message_id: str) -> Op[tuple[Delivery | None, Webhook | None]]:
    """The delivery and its endpoint, in one round trip."""
    raw_delivery, raw_webhook = yield ("MGET", schema.delivery(tenant, schema.delivery_id(webhook_id, message_id)),
                                       schema.webhook(tenant, webhook_id))
    return (None if raw_delivery is None else Delivery.model_validate_json(raw_delivery),
            None if raw_webhook is None else Webhook.model_validate_json(raw_webhook))


def put_off(tenant: str, webhook_id: str, message_id: str, at: float) -> Op[None]:
    """Due again at ``at`` (its endpoint was busy): unless it was finished meanwhile."""
    yield ("ZADD", schema.WEBHOOK_DUE, "XX", repr(at), schema.due_member(tenant, webhook_id, message_id))


def finish(tenant: str, delivery: Delivery, token: str, outcome: str | None, seconds: float | None,
           disable: Webhook | None = None) -> Op[bool]:
    """Store the attempt's end: the delivery, its due entry (next attempt, or gone), the
    endpoint when a ``410`` disabled it, the counts (``outcome``; None: no attempt was made),
    the slot and lease given back."""
    member = schema.due_member(tenant, delivery.webhook_id, delivery.event_id)
    batch = Batch()
    batch.set(schema.delivery(tenant, schema.delivery_id(delivery.webhook_id, delivery.event_id)),
              delivery.model_dump_json(), ex=DELIVERY_KEPT_SECONDS)
    if delivery.final or delivery.next_attempt_at is None:
        batch.zrem(schema.WEBHOOK_DUE, member)
    else:
        batch.zadd(schema.WEBHOOK_DUE, {member: delivery.next_attempt_at.timestamp()})
    if outcome is not None:
        batch.hincrby(schema.WEBHOOK_OUTCOMES, outcome, 1)
    if seconds is not None:
        bucket = next((bound for bound in BUCKETS if seconds <= bound), None)
        if bucket is not None:
            batch.hincrby(schema.WEBHOOK_DURATIONS, repr(bucket), 1)
        batch.hincrbyfloat(schema.WEBHOOK_DURATIONS, "sum", seconds)
        batch.hincrby(schema.WEBHOOK_DURATIONS, "count", 1)
    batch.zrem(schema.webhook_slots(tenant, delivery.webhook_id), token)
    batch.release_lease(schema.delivery_lease(tenant, schema.delivery_id(delivery.webhook_id, delivery.event_id)),
                        token)
    written = yield from batch.op()
    if disable is not None:
        # Apart, and only if the endpoint still exists: a delete during the attempt stands. (A
        # crash in between leaves it enabled; its next delivery meets the 410 again.)
        endpoint = Batch()
        endpoint.expect_present(schema.webhook(tenant, disable.id))
        webhooks.write_webhook(endpoint, disable)
        yield from endpoint.op()
    return written


def drop(tenant: str, webhook_id: str, message_id: str, token: str) -> Op[None]:
    """Nothing left to send (delivered already, or its endpoint or record is gone): off the due set."""
    batch = Batch()
    batch.zrem(schema.WEBHOOK_DUE, schema.due_member(tenant, webhook_id, message_id))
    batch.zrem(schema.webhook_slots(tenant, webhook_id), token)
    batch.release_lease(schema.delivery_lease(tenant, schema.delivery_id(webhook_id, message_id)), token)
    yield from batch.op()
