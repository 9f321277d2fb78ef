"""A process's kept webhook subscriptions: a batch guarded on their version is written only
while they are still what was read, whatever changed them since (an endpoint made, disabled or
deleted, the hash written back as it was, Redis flushed)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import redis

from tasks.model.audit import NOBODY, AuditEvent
from tasks.model.webhooks import Webhook
from tasks.storage import schema, webhooks
from tasks.storage.batch import Batch
from tasks.storage.store import run
from tasks.storage.webhook_subscriptions import SubscriptionCache


def made(tenant: str, events: list[str]) -> Webhook:
    return Webhook(id=f"whk_{secrets.token_hex(8)}", tenant=tenant, url="https://example.com/h",
                   events=events, secret_sealed="sealed", created_at=datetime.now(UTC))


def guarded_write(client: redis.Redis, cache: SubscriptionCache, tenant: str, key: str) -> bool:
    batch = Batch()
    cache.heard(lambda op: run(client, op), tenant).guard(batch)
    batch.set(key, "written")
    return run(client, batch.op())


def test_a_guarded_batch_is_written_only_while_the_subscriptions_are_the_ones_kept(redis_client):  # type: ignore[no-untyped-def]
    tenant, key = f"t{secrets.token_hex(4)}", f"test:{secrets.token_hex(4)}"
    reader = lambda op: run(redis_client, op)  # noqa: E731
    cache = SubscriptionCache()
    assert cache.heard(reader, tenant).subscribers == {} and cache.heard(reader, tenant).version is None
    assert guarded_write(redis_client, cache, tenant, key)  # never an endpoint: the absence is the version

    hook = made(tenant, ["job.succeeded"])
    event = AuditEvent.new("webhook.created", NOBODY)
    run(redis_client, webhooks.create_webhook(hook, event))
    assert not guarded_write(redis_client, cache, tenant, key + "-stale")
    assert redis_client.get(key + "-stale") is None
    heard = cache.refresh(reader, tenant)
    assert heard.subscribers == {hook.id: frozenset({"job.succeeded"})}
    assert guarded_write(redis_client, cache, tenant, key + "-fresh")

    # Deleted, then the hash written back exactly as it was: still a new version.
    run(redis_client, webhooks.delete_webhook(tenant, hook.id, event))
    redis_client.hset(schema.webhook_subscriptions(tenant), hook.id, "job.succeeded")
    assert not guarded_write(redis_client, cache, tenant, key + "-after-delete")
    # Flushed away entirely: the kept version is gone too.
    cache.refresh(reader, tenant)
    redis_client.delete(schema.webhook_subscriptions(tenant), schema.webhook_subscriptions_version(tenant))
    assert not guarded_write(redis_client, cache, tenant, key + "-after-flush")
    assert cache.refresh(reader, tenant).subscribers == {}
