"""Auto-pipelining (api/pipelining.py) against the session's real Redis: calls made together
share one round trip, each caller gets its own reply or its own error, and a script Redis
has forgotten is sent again."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from api.pipelining import AutoPipeline

COUNT_AND_ECHO = "redis.call('INCR', KEYS[1]); return ARGV[1]"


@pytest.fixture
async def client(redis_server):  # type: ignore[no-untyped-def]
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def test_calls_made_together_share_one_round_trip(client, monkeypatch):  # type: ignore[no-untyped-def]
    pipe = AutoPipeline(client)
    sent: list[int] = []
    real_send = AutoPipeline._send

    async def counting_send(self, batch):  # type: ignore[no-untyped-def]
        sent.append(len(batch))
        await real_send(self, batch)

    monkeypatch.setattr(AutoPipeline, "_send", counting_send)
    await client.delete("pipelining:counter")
    await client.script_load(COUNT_AND_ECHO)  # known to Redis: EVALSHA answers at the first try
    replies = await asyncio.gather(*(pipe.eval(COUNT_AND_ECHO, ["pipelining:counter"], [f"v{i}"]) for i in range(20)))
    assert replies == [f"v{i}".encode() for i in range(20)]  # each caller its own reply, in order
    assert sent == [20]  # one flush for the twenty
    assert int(await client.get("pipelining:counter")) == 20

    assert await pipe.execute("GET", "pipelining:counter") == b"20"  # alone: a batch of one
    assert sent == [20, 1]


async def test_an_error_fails_only_its_own_caller(client):  # type: ignore[no-untyped-def]
    pipe = AutoPipeline(client)
    await client.set("pipelining:text", "not a number")
    results = await asyncio.gather(pipe.execute("INCR", "pipelining:text"), pipe.execute("SET", "pipelining:ok", "1"),
                                   return_exceptions=True)
    assert isinstance(results[0], ResponseError)
    assert results[1] is True or results[1] == b"OK"
    assert await client.get("pipelining:ok") == b"1"


async def test_a_forgotten_script_is_sent_again(client):  # type: ignore[no-untyped-def]
    pipe = AutoPipeline(client)
    assert await pipe.eval(COUNT_AND_ECHO, ["pipelining:n"], ["a"]) == b"a"
    await client.script_flush()  # as after a Redis restart
    await client.delete("pipelining:n")
    assert await pipe.eval(COUNT_AND_ECHO, ["pipelining:n"], ["b"]) == b"b"
    assert await client.get("pipelining:n") == b"1"  # refused by SHA, then run once by its text


async def test_a_cancelled_caller_leaves_the_others_their_replies(client):  # type: ignore[no-untyped-def]
    pipe = AutoPipeline(client)
    first = asyncio.ensure_future(pipe.execute("SET", "pipelining:c1", "x"))
    second = asyncio.ensure_future(pipe.execute("GET", "pipelining:c1"))
    await asyncio.sleep(0)  # both queued
    first.cancel()
    assert await second == b"x"  # the batch still ran, in order: the SET was sent regardless
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_dead_connection_fails_every_caller_of_the_batch():
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    pipe = AutoPipeline(dead)
    results = await asyncio.gather(pipe.execute("GET", "a"), pipe.execute("GET", "b"), return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results) and len(results) == 2
    await dead.aclose()
