"""Open event streams per API key (api/stream_slots.py) on the session's real Redis: at most the
limit per key, keys apart, a release frees a slot, a lease nobody renews (a crashed process's)
stops counting, and a renewed one keeps counting past its first expiry."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
import redis
from redis.asyncio import Redis

from api.pipelining import AutoPipeline
from api.stream_slots import StreamSlots
from tasks.storage import schema


@pytest.fixture
async def pipeline(redis_server) -> AsyncIterator[AutoPipeline]:  # type: ignore[no-untyped-def]
    client = Redis.from_url(redis_server.url)
    yield AutoPipeline(client)
    await client.aclose()


def key_hash() -> str:
    return schema.hash_api_key(f"key-{secrets.token_hex(8)}")


async def test_at_most_the_limit_per_key_and_keys_apart(pipeline, redis_client: redis.Redis):
    slots, mine, yours = StreamSlots(pipeline, limit=3), key_hash(), key_hash()
    held = [await slots.acquire(mine) for _ in range(3)]
    assert all(held) and await slots.acquire(mine) is None
    assert await slots.acquire(yours) is not None
    assert redis_client.zcard(schema.api_streams(mine)) == 3
    assert 0 < redis_client.pttl(schema.api_streams(mine)) <= 60_000  # the key dies with its last lease

    slots.release(held[0])  # type: ignore[arg-type]
    await slots.close()      # the release is sent in the background
    assert await slots.acquire(mine) is not None and await slots.acquire(mine) is None


async def test_a_lease_nobody_renews_stops_counting(pipeline):
    """A process that died holding streams: its leases run out and the key's slots come back."""
    crashed, alive, key = StreamSlots(pipeline, limit=2, lease_seconds=0.3), StreamSlots(pipeline, limit=2), key_hash()
    assert await crashed.acquire(key) and await crashed.acquire(key)
    assert await alive.acquire(key) is None
    await asyncio.sleep(0.4)
    assert await alive.acquire(key) is not None


async def test_a_kept_lease_outlives_its_first_expiry(pipeline):
    slots, key = StreamSlots(pipeline, limit=1, lease_seconds=0.3, renew_seconds=0.0), key_hash()
    slot = await slots.acquire(key)
    assert slot is not None
    for _ in range(4):  # 0.6 s in all, renewed each 0.15 s
        await asyncio.sleep(0.15)
        await slots.keep(slot)
    assert await slots.acquire(key) is None
