"""The event hub (api/event_hub.py) against the session's real Redis: one connection of its own,
one subscription per channel whatever the number of listeners, fan-out, the last listener
unsubscribing, a bounded queue for a listener that falls behind, and a dropped connection
resubscribed with every listener told that it may have missed something."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis
from redis.asyncio import Redis

from api.event_hub import MISSED, EventHub, Notice
from tasks.errors import EventsUnavailable


@pytest.fixture
def name() -> str:
    """The hub's connection name: this test's hub is told apart from any other in CLIENT LIST."""
    return f"hub-test-{secrets.token_hex(4)}"


@pytest.fixture
async def hub(redis_server, name: str) -> AsyncIterator[EventHub]:  # type: ignore[no-untyped-def]
    hub = EventHub(redis_server.url, name=name, queue_size=4, reconnect_delays=(0.2,))
    yield hub
    await hub.close()


@pytest.fixture
async def publisher(redis_server) -> AsyncIterator[Redis]:  # type: ignore[no-untyped-def]
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def channel() -> str:
    return f"hub-test:{secrets.token_hex(6)}"


def subscribers(redis_client: redis.Redis, name: str) -> int:
    return int(redis_client.pubsub_numsub(name)[0][1])


def hub_connections(redis_client: redis.Redis, name: str) -> list[dict[str, str]]:
    return [c for c in redis_client.client_list() if c.get("name") == name]


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.02)


async def test_one_subscription_per_channel_fanned_out_to_every_listener(hub, publisher, redis_client, name):
    a, b = channel(), channel()
    async with hub.listen(a) as one, hub.listen(a) as two, hub.listen(a) as three, hub.listen(b) as other:
        assert subscribers(redis_client, a) == 1 and subscribers(redis_client, b) == 1
        assert len(hub_connections(redis_client, name)) == 1  # every channel, one connection
        assert await publisher.publish(a, "running") == 1     # Redis delivers once, to the hub
        for listener in (one, two, three):
            assert await listener.get(timeout=5) == Notice(b"running")
        await publisher.publish(b, "succeeded")
        assert await other.get(timeout=5) == Notice(b"succeeded")
        assert one.waiting == two.waiting == three.waiting == 0  # b's message went to b's listener only


async def test_the_last_listener_to_leave_unsubscribes(hub, redis_client):
    a = channel()
    async with hub.listen(a):
        async with hub.listen(a):
            assert hub.listeners(a) == 2
        assert hub.listeners(a) == 1
        await asyncio.sleep(0.1)  # an UNSUBSCRIBE, were one sent, would have landed
        assert subscribers(redis_client, a) == 1
    assert hub.listeners(a) == 0
    await eventually(lambda: subscribers(redis_client, a) == 0)


async def test_a_listener_is_subscribed_when_listen_returns_even_right_after_an_unsubscribe(hub, publisher,
                                                                                            redis_client):
    a = channel()
    for _ in range(20):  # in, out, in again at once: the second SUBSCRIBE is the one waited for
        async with hub.listen(a):
            pass
        async with hub.listen(a) as listener:
            assert subscribers(redis_client, a) == 1
            await publisher.publish(a, "x")
            assert await listener.get(timeout=5) == Notice(b"x")


async def test_a_listener_that_falls_behind_gets_one_missed_and_no_more(hub, publisher):
    slow, fast = channel(), channel()
    async with hub.listen(slow) as behind, hub.listen(fast) as keeping_up:
        for i in range(10):
            await publisher.publish(slow, f"n{i}")
        await publisher.publish(fast, "after")  # one connection delivers in order: the ten came first
        assert await keeping_up.get(timeout=5) == Notice(b"after")
        assert behind.waiting == 1                          # not ten: its queue holds 4 at most
        assert await behind.get(timeout=1) == MISSED
        await publisher.publish(slow, "later")
        assert await behind.get(timeout=5) == Notice(b"later")  # then it follows again


async def test_up_to_its_size_a_queue_keeps_every_notice_in_order(hub, publisher):
    a, fence = channel(), channel()
    async with hub.listen(a) as listener, hub.listen(fence) as done:
        for i in range(4):
            await publisher.publish(a, f"n{i}")
        await publisher.publish(fence, "x")
        await done.get(timeout=5)
        assert [await listener.get(timeout=1) for _ in range(4)] == [Notice(f"n{i}".encode()) for i in range(4)]


async def test_a_dropped_connection_is_resubscribed_and_every_listener_told_it_missed(hub, publisher, redis_client,
                                                                                     name):
    a, b = channel(), channel()
    async with hub.listen(a) as one, hub.listen(a) as two, hub.listen(b) as three:
        [connection] = hub_connections(redis_client, name)
        redis_client.client_kill_filter(_id=connection["id"])
        assert await publisher.publish(a, "lost") == 0  # nobody subscribed: pub/sub keeps nothing
        for listener in (one, two, three):
            assert await listener.get(timeout=5) == MISSED  # told once the channel is subscribed again
        assert subscribers(redis_client, a) == 1 and subscribers(redis_client, b) == 1
        assert len(hub_connections(redis_client, name)) == 1 and hub.connections_made == 2
        await publisher.publish(a, "after")
        assert await one.get(timeout=5) == Notice(b"after") and await two.get(timeout=5) == Notice(b"after")


async def test_a_listener_joining_while_the_hub_reconnects_waits_for_its_subscription(hub, redis_client, name):
    async with hub.listen(channel()):
        [connection] = hub_connections(redis_client, name)
    redis_client.client_kill_filter(_id=connection["id"])
    a = channel()
    async with hub.listen(a) as listener:  # the hub is reconnecting (0.2 s): listen waits for it
        assert subscribers(redis_client, a) == 1
        assert listener.waiting == 0  # a newcomer reads the state itself: no MISSED for it


async def test_listen_fails_as_a_redis_outage_when_no_subscription_comes(name):
    hub = EventHub("redis://127.0.0.1:9/0", name=name, subscribe_timeout=0.3, reconnect_delays=(0.1,))
    try:
        with pytest.raises(EventsUnavailable):
            async with hub.listen(channel()):
                pass
        assert hub.listeners("anything") == 0
    finally:
        await hub.close()


async def test_a_redis_url_asking_for_resp3_still_gets_a_working_hub(redis_server, publisher, name):
    """The URL's options override ``from_url``'s arguments: the hub insists on RESP2, in which
    subscription replies and messages are read in order, rather than push frames it never sees."""
    hub = EventHub(f"{redis_server.url}?protocol=3", name=name, subscribe_timeout=3)
    try:
        a = channel()
        async with hub.listen(a) as listener:
            await publisher.publish(a, "running")
            assert await listener.get(timeout=5) == Notice(b"running")
    finally:
        await hub.close()


# -- the inbox: one subscription of the process's own, messages addressed by channel -----------

@pytest.fixture
async def inbox_hub(redis_server, name: str) -> AsyncIterator[EventHub]:  # type: ignore[no-untyped-def]
    hub = EventHub(redis_server.url, inbox=f"hub-test-inbox:{secrets.token_hex(6)}", name=name, queue_size=4,
                   reconnect_delays=(0.2,))
    yield hub
    await hub.close()


async def test_addressed_listeners_hear_only_their_channel_through_one_subscription_made_once(
        inbox_hub, publisher, redis_client):
    hub, a, b = inbox_hub, channel(), channel()
    async with hub.listen_addressed(a) as one, hub.listen_addressed(a) as two, hub.listen_addressed(b) as three:
        assert subscribers(redis_client, hub.inbox) == 1
        assert subscribers(redis_client, a) == 0 and subscribers(redis_client, b) == 0  # no SUBSCRIBE per channel
        await publisher.publish(hub.inbox, f"{a}\n{{\"status\": \"succeeded\"}}")
        await publisher.publish(hub.inbox, "no newline: not addressed to anyone")
        assert await one.get(timeout=5) == Notice(b'{"status": "succeeded"}')
        assert await two.get(timeout=5) == Notice(b'{"status": "succeeded"}')
        assert await three.get(timeout=0.3) is None
    assert subscribers(redis_client, hub.inbox) == 1  # kept for the next listener: no UNSUBSCRIBE either
    async with hub.listen_addressed(a) as again:
        await publisher.publish(hub.inbox, f"{a}\nlater")
        assert await again.get(timeout=5) == Notice(b"later")


async def test_addressed_listeners_are_told_they_missed_what_a_dropped_connection_lost(
        inbox_hub, publisher, redis_client, name):
    hub, a = inbox_hub, channel()
    async with hub.listen_addressed(a) as listener:
        [connection] = hub_connections(redis_client, name)
        redis_client.client_kill_filter(_id=connection["id"])
        assert await publisher.publish(hub.inbox, f"{a}\nlost") == 0
        assert await listener.get(timeout=5) == MISSED
        await publisher.publish(hub.inbox, f"{a}\nafter")
        assert await listener.get(timeout=5) == Notice(b"after")


async def test_an_inbox_that_cannot_be_subscribed_is_an_outage_and_is_tried_again(name):
    hub = EventHub("redis://127.0.0.1:9/0", inbox="hub-test-inbox:x", name=name, subscribe_timeout=0.3,
                   reconnect_delays=(0.1,))
    try:
        for _ in range(2):
            with pytest.raises(EventsUnavailable):
                async with hub.listen_addressed(channel()):
                    pass
    finally:
        await hub.close()
