"""Auto-pipelining (api/pipelining.py) against the session's real Redis: calls made together
share one round trip, each caller gets its own reply or its own error, and a script Redis
has forgotten is sent again."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, DataError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.pipelining import AutoPipeline, _Wire

COUNT_AND_ECHO = "redis.call('INCR', KEYS[1]); return ARGV[1]"


@pytest.fixture
async def client(redis_server):  # type: ignore[no-untyped-def]
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def test_calls_made_together_share_one_round_trip(client, monkeypatch):  # type: ignore[no-untyped-def]
    pipe = AutoPipeline(client)
    await pipe.execute("PING")  # connected (and authenticated) first
    sent: list[int] = []
    real_send = _Wire.send

    def counting_send(self, batch):  # type: ignore[no-untyped-def]
        sent.append(len(batch))
        real_send(self, batch)

    monkeypatch.setattr(_Wire, "send", counting_send)
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


async def test_replies_are_what_redis_py_makes_of_them_on_the_clients_database(redis_server):  # type: ignore[no-untyped-def]
    client = Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/3", decode_responses=True, client_name="pipe-test")
    pipe = AutoPipeline(client)
    try:
        assert await pipe.execute("SET", "pipelining:db", "x") is True  # SET's callback, as redis-py's pipeline
        assert await pipe.execute("GET", "pipelining:db") == "x"        # decoded, as the client asks
        assert await pipe.execute("CLIENT", "GETNAME") == "pipe-test"
        assert await client.get("pipelining:db") == "x"                 # on database 3 ...
        async with Redis.from_url(redis_server.url) as other:
            assert await other.get("pipelining:db") is None             # ... not 0
    finally:
        await pipe.close()
        await client.aclose()


async def test_an_argument_redis_has_no_form_for_fails_its_caller_only(client):  # type: ignore[no-untyped-def]
    pipe = AutoPipeline(client)
    results = await asyncio.gather(pipe.execute("SET", "pipelining:none", None),
                                   pipe.execute("SET", "pipelining:n2", 2), return_exceptions=True)
    assert isinstance(results[0], DataError) and results[1] is True
    assert await client.get("pipelining:n2") == b"2" and await client.exists("pipelining:none") == 0


async def test_a_killed_connection_fails_its_callers_and_the_next_call_connects_again(redis_server):  # type: ignore[no-untyped-def]
    client = Redis.from_url(redis_server.url, client_name="pipe-killed")
    pipe = AutoPipeline(client)
    try:
        assert await pipe.execute("PING") is True
        waiting = asyncio.ensure_future(pipe.execute("BLPOP", "pipelining:never", 5))  # held by Redis
        await asyncio.sleep(0.1)
        async with Redis.from_url(redis_server.url) as admin:  # as a Redis restart or a failover would
            ids = [c["id"] for c in await admin.client_list() if c.get("name") == "pipe-killed"]
            assert len(ids) == 1  # the pipeline's one connection
            assert await admin.client_kill_filter(_id=ids[0]) == 1
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(waiting, 3)
        assert await pipe.execute("SET", "pipelining:again", "1") is True  # connected anew
    finally:
        await pipe.close()
        await client.aclose()


async def test_a_redis_that_does_not_answer_times_out_every_waiting_caller():  # type: ignore[no-untyped-def]
    silent = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)  # accepts, never answers
    port = silent.sockets[0].getsockname()[1]
    client = Redis(host="127.0.0.1", port=port)
    pipe = AutoPipeline(client, reply_timeout=0.3)
    try:
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(pipe.execute("GET", "a"), pipe.execute("GET", "b"), return_exceptions=True)
        assert all(isinstance(r, RedisTimeoutError) for r in results), results
        assert 0.25 < asyncio.get_running_loop().time() - started < 2
    finally:
        await pipe.close()
        await client.aclose()
        silent.close()


async def test_a_wrong_password_is_redis_pys_authentication_error(redis_server):  # type: ignore[no-untyped-def]
    client = Redis(host="127.0.0.1", port=redis_server.port, password="not-the-password")
    pipe = AutoPipeline(client)
    try:
        with pytest.raises(AuthenticationError):
            await pipe.execute("GET", "a")
    finally:
        await pipe.close()
        await client.aclose()
