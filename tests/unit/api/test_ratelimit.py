"""The API's per-key rate limit (api/ratelimit.py, a GCRA) against a real Redis: a key may
send `rate` requests at once, then one every 1/rate seconds; what it keeps is one small
string per key, whatever the rate."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from api.pipelining import AutoPipeline
from api.ratelimit import ApiRateLimiter
from tasks.storage import schema


@pytest.fixture
async def client(redis_server):  # type: ignore[no-untyped-def]
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def test_a_burst_of_rate_then_one_per_interval(client):  # type: ignore[no-untyped-def]
    limiter = ApiRateLimiter(AutoPipeline(client), per_second=2.0)
    key = "ratelimit-burst"
    await client.delete(schema.api_rate(key))
    assert [await limiter.wait_for(key) for _ in range(2)] == [0.0, 0.0]  # the burst: `rate` at once
    wait = await limiter.wait_for(key)
    assert 0.4 < wait <= 0.5  # the third waits for the next interval (1/2 s), not a whole window
    await asyncio.sleep(wait + 0.02)
    assert await limiter.wait_for(key) == 0.0
    assert await limiter.wait_for(key) > 0.4  # and only one passed: the refused one took no place
    assert await client.type(schema.api_rate(key)) == b"string"
    assert 0 < await client.pttl(schema.api_rate(key)) <= 1100  # forgotten once it is back to the burst


async def test_a_refused_request_does_not_push_the_limit_further(client):  # type: ignore[no-untyped-def]
    limiter = ApiRateLimiter(AutoPipeline(client), per_second=1.0)
    key = "ratelimit-refused"
    await client.delete(schema.api_rate(key))
    assert await limiter.wait_for(key) == 0.0
    waits = [await limiter.wait_for(key) for _ in range(50)]
    assert all(0.9 < w <= 1.0 for w in waits)  # a flood waits no longer than one interval
    await asyncio.sleep(1.0)
    assert await limiter.wait_for(key) == 0.0


async def test_a_fractional_rate_is_one_per_interval(client):  # type: ignore[no-untyped-def]
    limiter = ApiRateLimiter(AutoPipeline(client), per_second=0.5)
    key = "ratelimit-slow"
    await client.delete(schema.api_rate(key))
    assert await limiter.wait_for(key) == 0.0
    assert 1.9 < await limiter.wait_for(key) <= 2.0


async def test_keys_are_limited_apart(client):  # type: ignore[no-untyped-def]
    limiter = ApiRateLimiter(AutoPipeline(client), per_second=1.0)
    await client.delete(schema.api_rate("ratelimit-a"), schema.api_rate("ratelimit-b"))
    assert await limiter.wait_for("ratelimit-a") == 0.0
    assert await limiter.wait_for("ratelimit-a") > 0
    assert await limiter.wait_for("ratelimit-b") == 0.0
