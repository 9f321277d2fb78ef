"""The orphan sweep (``worker/sweeper.py``) against a real Redis holding real broker messages.

What is proven: a job whose message is gone (taken off the queue by a worker that died, or
by a Redis shut down, before it was recorded as delivered) is published again — at the
second sweep that finds it without a message and unchanged, never at the first; a job with
its message queued, or delivered (kombu's ``unacked`` hash), a job a run holds the lease
of, a finished job and a job younger than ``MIN_AGE`` are left alone; a job that changed
between the sweeps starts over as a suspect.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from authq.redis_server import RedisServer, start_redis
from tasks.model.records import Job, new_id, utcnow
from tasks.storage import schema
from tasks.storage.store import Store
from worker.inline_queue import RedisInlineQueue
from worker.sweeper import MIN_AGE, SUSPECTS, sweep
from worker.wire import UNACKED


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of its own: the session's has workers that would consume these messages."""
    server = start_redis(tmp_path / "redis", secrets.token_urlsafe(12), appendonly=False)
    yield server
    server.stop()


@pytest.fixture
def own_redis(own_server: RedisServer) -> Iterator[redis.Redis]:
    client = own_server.client()
    yield client
    client.close()


@pytest.fixture
def inline() -> RedisInlineQueue:
    """Messages exactly as the API queues them."""
    return RedisInlineQueue()


def stored_job(client: redis.Redis, tenant: str, *, age: float = MIN_AGE + 5, status: str = "queued") -> Job:
    job = Job(id=new_id("job"), tenant=tenant, type="authorise", connector_id=new_id("con"),
              created_at=utcnow() - timedelta(seconds=age), status=status)  # type: ignore[arg-type]
    Store(client, 3600).create_job(job, "sealed")
    return job


def test_only_a_job_without_any_message_is_published_again_at_the_second_look(
        own_redis: redis.Redis, inline: RedisInlineQueue) -> None:
    tenant = f"t{secrets.token_hex(3)}"
    lost = stored_job(own_redis, tenant)
    queued = stored_job(own_redis, tenant)
    own_redis.lpush(*inline.inline_message(tenant, queued.id, "authorise"))
    delivered = stored_job(own_redis, tenant, status="running")
    _, payload = inline.inline_message(tenant, delivered.id, "authorise")
    own_redis.hset(UNACKED, "tag-1", json.dumps([json.loads(payload), "", "authq.interactive"]))
    leased = stored_job(own_redis, tenant, status="running")
    own_redis.set(schema.job_lease(tenant, leased.id), "token", px=30_000)
    stored_job(own_redis, tenant, age=1)  # too young to be a suspect
    finished = stored_job(own_redis, tenant)
    Store(own_redis, 3600).save_job(finished.model_copy(update={"status": "succeeded", "finished_at": utcnow()}))

    published: list[tuple[str, str, str]] = []
    publish = lambda *args: published.append(args)  # noqa: E731

    assert sweep(own_redis, publish) == 0, "a single look is never enough"
    assert published == []
    assert set(k.decode() for k in own_redis.hkeys(SUSPECTS)) == {f"{tenant}/{lost.id}"}

    assert sweep(own_redis, publish) == 1
    assert published == [(tenant, lost.id, "authorise")]
    assert own_redis.hlen(SUSPECTS) == 0  # published: it starts over


def test_a_job_that_changed_between_sweeps_is_not_published(own_redis: redis.Redis) -> None:
    tenant = f"t{secrets.token_hex(3)}"
    job = stored_job(own_redis, tenant)
    published: list[tuple[str, str, str]] = []
    sweep(own_redis, lambda *a: published.append(a))
    # Meanwhile a delivery started it (its message now unseen in between, say): it changed.
    Store(own_redis, 3600).save_job(job.model_copy(update={"status": "running", "attempts": 1}))
    sweep(own_redis, lambda *a: published.append(a))
    assert published == []
    sweep(own_redis, lambda *a: published.append(a))  # unchanged since, and still no message
    assert published == [(tenant, job.id, "authorise")]


def test_a_job_missing_from_its_tenant_set_or_expired_is_ignored(own_redis: redis.Redis) -> None:
    tenant = f"t{secrets.token_hex(3)}"
    job = stored_job(own_redis, tenant)
    own_redis.delete(schema.job(tenant, job.id))  # the record is gone (expired, discarded)
    published: list[tuple[str, str, str]] = []
    for _ in range(2):
        sweep(own_redis, lambda *a: published.append(a), now=time.time())
    assert published == []
