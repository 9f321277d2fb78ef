"""Webhook endpoints in Redis, and the outbox: an event's deliveries, written with the change.

An endpoint is a record (its secret sealed), a member of the tenant's index and a field of the
tenant's subscriptions hash (endpoint id -> the event types it hears; a disabled endpoint has
none). A change that emits events (a job's end, a connector's deletion) reads that hash first,
then queues ``record_events`` into the very batch that makes the change: each event's delivery
to each endpoint that hears it (the delivery record, with the message's bytes; its place in
the endpoint's log; its entry in the fleet's due set, due now). The change and its deliveries
land together or not at all, so a crash after the change can only delay a delivery
(``webhook_queue.py`` hands due deliveries to workers), never lose it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from tasks.model.audit import AuditEvent
from tasks.model.webhooks import DELIVERY_KEPT_SECONDS, Delivery, Event, Webhook
from tasks.storage import audit, schema
from tasks.storage.batch import Batch
from tasks.storage.steps import Op, Transaction
from tasks.storage.webhook_subscriptions import Subscribers, changed


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def record_events(into: Batch | Transaction, tenant: str, subscribers: Subscribers,
                  events: Sequence[Event]) -> list[str]:
    """Queue, into the change's own batch, each event's delivery to each endpoint that hears it;
    their members of ``WEBHOOK_DUE`` (for handing them to a worker at once once it is written)."""
    due = []
    oldest_kept = round((time.time() - DELIVERY_KEPT_SECONDS) * 1000)
    for event in events:
        for webhook_id, types in subscribers.items():
            if event.type != "ping" and event.type not in types:
                continue
            delivery = Delivery(event_id=event.id, webhook_id=webhook_id, type=event.type, body=event.body,
                                created_at=event.at)
            into.set(schema.delivery(tenant, schema.delivery_id(webhook_id, event.id)), delivery.model_dump_json(),
                     ex=DELIVERY_KEPT_SECONDS)
            log = schema.webhook_deliveries(tenant, webhook_id)
            into.zadd(log, {event.id: round(event.at.timestamp() * 1000)})
            into.zremrangebyscore(log, "-inf", f"({oldest_kept}")
            into.expire(log, DELIVERY_KEPT_SECONDS)
            member = schema.due_member(tenant, webhook_id, event.id)
            into.zadd(schema.WEBHOOK_DUE, {member: event.at.timestamp()})
            due.append(member)
    return due


# --- endpoints ----------------------------------------------------------------------------------

def _subscribe(into: Batch | Transaction, webhook: Webhook) -> None:
    changed(into, webhook.tenant)
    if webhook.disabled:
        into.hdel(schema.webhook_subscriptions(webhook.tenant), webhook.id)
    else:
        into.hset(schema.webhook_subscriptions(webhook.tenant), webhook.id, " ".join(webhook.events))


def create_webhook(webhook: Webhook, event: AuditEvent) -> Op[None]:
    """The endpoint, its subscription and its ``webhook.created`` audit event, in one transaction."""
    tx = Transaction()
    tx.set(schema.webhook(webhook.tenant, webhook.id), webhook.model_dump_json())
    tx.zadd(schema.webhooks(webhook.tenant), {webhook.id: webhook.created_at.timestamp()})
    _subscribe(tx, webhook)
    audit.record(tx, webhook.tenant, event)
    yield tx


def write_webhook(into: Batch | Transaction, webhook: Webhook) -> None:
    """An endpoint rewritten (disabled by a ``410``): the record and its subscription."""
    into.set(schema.webhook(webhook.tenant, webhook.id), webhook.model_dump_json())
    _subscribe(into, webhook)


def webhook(tenant: str, webhook_id: str) -> Op[Webhook | None]:
    if not schema.is_id(webhook_id):
        return None
    raw = yield ("GET", schema.webhook(tenant, webhook_id))
    return None if raw is None else Webhook.model_validate_json(raw)


def webhooks(tenant: str, number: int, per_page: int) -> Op[tuple[list[Webhook], int]]:
    index = schema.webhooks(tenant)
    total = int((yield ("ZCARD", index)))
    start = (number - 1) * per_page
    if start >= total:
        return [], total
    ids = yield ("ZRANGE", index, start, start + per_page - 1)
    raws = (yield ("MGET", *[schema.webhook(tenant, _text(i)) for i in ids])) if ids else []
    return [Webhook.model_validate_json(r) for r in raws if r is not None], total


def delete_webhook(tenant: str, webhook_id: str, event: AuditEvent) -> Op[bool]:
    """The endpoint, its subscription and its log go, with its ``webhook.deleted`` audit event;
    deliveries still due are dropped when they come up. Whether there was one."""
    if not schema.is_id(webhook_id):
        return False
    batch = Batch()
    batch.expect_present(schema.webhook(tenant, webhook_id))
    batch.delete(schema.webhook(tenant, webhook_id))
    batch.zrem(schema.webhooks(tenant), webhook_id)
    batch.hdel(schema.webhook_subscriptions(tenant), webhook_id)
    changed(batch, tenant)
    batch.delete(schema.webhook_deliveries(tenant, webhook_id))
    audit.record(batch, tenant, event)
    return (yield from batch.op())


def send_ping(webhook: Webhook) -> Op[Event]:
    """A ``ping`` to this endpoint only, due now."""
    event = Event.ping(webhook.id)
    batch = Batch()
    batch.expect_present(schema.webhook(webhook.tenant, webhook.id))
    record_events(batch, webhook.tenant, {webhook.id: frozenset({"ping"})}, [event])
    yield from batch.op()
    return event


# --- deliveries ---------------------------------------------------------------------------------

def delivery(tenant: str, webhook_id: str, message_id: str) -> Op[Delivery | None]:
    raw = yield ("GET", schema.delivery(tenant, schema.delivery_id(webhook_id, message_id)))
    return None if raw is None else Delivery.model_validate_json(raw)


def deliveries(tenant: str, webhook_id: str, number: int, per_page: int) -> Op[tuple[list[Delivery], int]]:
    """A page of the endpoint's deliveries, newest first."""
    index = schema.webhook_deliveries(tenant, webhook_id)
    total = int((yield ("ZCARD", index)))
    start = (number - 1) * per_page
    if start >= total:
        return [], total
    ids = yield ("ZREVRANGE", index, start, start + per_page - 1)
    keys = [schema.delivery(tenant, schema.delivery_id(webhook_id, _text(i))) for i in ids]
    raws = (yield ("MGET", *keys)) if keys else []
    return [Delivery.model_validate_json(r) for r in raws if r is not None], total
