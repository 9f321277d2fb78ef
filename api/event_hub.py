"""One Redis pub/sub connection per API process, shared by everything that waits for a notice.

A pub/sub connection is taken out of any pool for as long as it is subscribed. Held once per
event stream (and drawn from the pool every request's commands use), enough streams emptied
that pool and every other request answered 503. Here a process has one pub/sub connection of
its own, made outside the command pool; a channel is subscribed once however many listeners
it has (the first listener subscribes, the last one unsubscribes) and each message is fanned
out to the listeners' queues. Channels are plain names: nothing here knows what a job is.

A hub may also have an *inbox*: a channel of its own, subscribed once and kept, on which
publishers that know this process listens (a worker ending a job its ``Prefer: wait``
submission waits for) send ``{channel}\n{data}``; ``listen_addressed`` hears the messages about
one channel without subscribing to it, so a listener that comes and goes per request costs Redis
no SUBSCRIBE and no UNSUBSCRIBE.

What a listener can rely on:

- ``listen()`` returns once Redis has confirmed the subscription, so state read after it is
  never older than the notices to come: subscribe, then read, and no change is missed.
- A notice is a nudge to read the state again. A listener that falls behind (``QUEUE_SIZE``
  notices waiting) has them replaced by one ``MISSED``: its memory stays bounded and it still
  learns it must re-read.
- When the connection drops (or stops answering PINGs), the hub reconnects, backing off,
  subscribes again to every channel that has listeners and, once Redis confirms, hands each
  listener ``MISSED``: whatever was published meanwhile is gone (pub/sub is at most once), so
  it re-reads. A listener that joins while the hub is disconnected waits for the reconnection,
  at most ``SUBSCRIBE_TIMEOUT``; then ``listen()`` raises ``EventsUnavailable`` (a 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError

from api.event_listeners import MISSED, InboxRouter, Listener, Notice
from tasks.errors import EventsUnavailable

log = logging.getLogger("authq.api")

QUEUE_SIZE = 16             # notices a listener may have waiting; beyond, they become one MISSED
SUBSCRIBE_TIMEOUT = 5.0     # how long listen() waits for Redis to confirm a subscription
PING_SECONDS = 10.0         # a quiet connection is PINGed this often; two unanswered: it is dead
RECONNECT_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)  # seconds before each reconnection attempt, the last repeated


@dataclass
class _Channel:
    listeners: set[Listener] = field(default_factory=set)
    wanted: bool = False  # the last command issued for it is SUBSCRIBE (not UNSUBSCRIBE)
    # One group per SUBSCRIBE issued and not yet confirmed, oldest first: the joiners it will let in.
    unconfirmed: deque[list[asyncio.Future[None]]] = field(default_factory=deque)


class EventHub:
    """Channel -> listeners over one pub/sub connection of the hub's own."""

    def __init__(self, redis_url: str, *, inbox: str | None = None, name: str = "authq-api-events",
                 queue_size: int = QUEUE_SIZE,
                 subscribe_timeout: float = SUBSCRIBE_TIMEOUT, ping_seconds: float = PING_SECONDS,
                 reconnect_delays: tuple[float, ...] = RECONNECT_DELAYS) -> None:
        # Only a factory of connections (make_connection), never asked for a pooled one: the
        # hub's connection is counted in no pool, and no pool's connection is ever subscribed.
        # RESP2: subscription replies and messages are plain replies, read in order; RESP3 would
        # make them push frames that redis-py may hand to its push handler instead.
        self._factory = ConnectionPool.from_url(redis_url, client_name=name, socket_keepalive=True,
                                                socket_connect_timeout=5, protocol=2)
        # A URL's own options win over from_url's arguments: a `?protocol=3` would be kept.
        self._factory.connection_kwargs["protocol"] = 2
        self._queue_size = queue_size
        self._subscribe_timeout = subscribe_timeout
        self._ping_seconds = ping_seconds
        self._reconnect_delays = reconnect_delays
        self._channels: dict[str, _Channel] = {}
        # The process's own channel (``listen_addressed``): subscribed once, kept for good.
        self.inbox = inbox
        self._addressed: dict[str, set[Listener]] = {}
        self._inbox_joined: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[tuple[str, ...]] = asyncio.Queue()
        self._connection: AbstractConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.connections_made = 0  # how many times the hub connected (1 + its reconnections)

    # lifecycle
    def start(self) -> None:
        """Connect in the background (idempotent); listen() waits for it when it must."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="event-hub")

    async def close(self) -> None:
        self._closing = True  # (redis-py may swallow a cancellation while it disconnects: the loop checks this too)
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=5)
            self._task = None
        for channel in self._channels.values():
            for group in channel.unconfirmed:
                for future in group:
                    if not future.done():
                        future.set_exception(EventsUnavailable("The event hub is closed."))
        self._channels.clear()

    # listening
    @contextlib.asynccontextmanager
    async def listen(self, channel: str, timeout: float | None = None) -> AsyncIterator[Listener]:
        """Subscribed to ``channel`` (confirmed by Redis) for the ``async with`` block."""
        self.start()
        listener = Listener(channel, self._queue_size)
        await self._join(listener, self._subscribe_timeout if timeout is None else timeout)
        try:
            yield listener
        finally:
            self._leave(listener)

    @contextlib.asynccontextmanager
    async def listen_addressed(self, channel: str, timeout: float | None = None) -> AsyncIterator[Listener]:
        """For the ``async with`` block, the messages about ``channel`` that publishers send to
        this hub's ``inbox`` (publishers that know who listens), with no subscription of its own:
        joining and leaving cost Redis nothing. Returns once the inbox's subscription is confirmed;
        the same ``MISSED`` rules hold."""
        assert self.inbox is not None, "a hub without an inbox has no addressed listeners"
        await self._inbox_ready(self._subscribe_timeout if timeout is None else timeout)
        listener = Listener(channel, self._queue_size)
        listener.joining = False
        self._addressed.setdefault(channel, set()).add(listener)
        try:
            yield listener
        finally:
            group = self._addressed.get(channel)
            if group is not None:
                group.discard(listener)
                if not group:
                    del self._addressed[channel]

    async def _inbox_ready(self, timeout: float) -> None:
        """The inbox subscribed (once; again only after a try that failed)."""
        self.start()
        joined = self._inbox_joined
        if joined is None or (joined.done() and (joined.cancelled() or joined.exception() is not None)):
            assert self.inbox is not None
            router = InboxRouter(self.inbox, self._queue_size, self._addressed)
            joined = self._inbox_joined = asyncio.get_running_loop().create_task(
                self._join(router, self._subscribe_timeout))
            joined.add_done_callback(_retrieve)  # a failed try is seen by its waiters, or by the next try
        if joined.done():
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(joined)
        except TimeoutError:
            raise EventsUnavailable("Redis did not confirm the inbox's subscription in time.") from None

    def listeners(self, channel: str) -> int:
        found = self._channels.get(channel)
        return 0 if found is None else len(found.listeners)

    async def _join(self, listener: Listener, timeout: float) -> None:
        channel = self._channels.setdefault(listener.channel, _Channel())
        channel.listeners.add(listener)
        if not channel.wanted:
            channel.wanted = True
            channel.unconfirmed.append([])
            if self._connection is not None:  # else the reconnection subscribes every wanted channel
                self._outbox.put_nowait(("SUBSCRIBE", listener.channel))
        if channel.unconfirmed:
            confirmed = asyncio.get_running_loop().create_future()
            channel.unconfirmed[-1].append(confirmed)  # the latest SUBSCRIBE is the one that counts
            try:
                async with asyncio.timeout(timeout):
                    await confirmed
            except TimeoutError:
                self._leave(listener)
                raise EventsUnavailable("Redis did not confirm the subscription in time.") from None
            except BaseException:
                self._leave(listener)
                raise
        listener.joining = False

    def _leave(self, listener: Listener) -> None:
        channel = self._channels.get(listener.channel)
        if channel is None:
            return
        channel.listeners.discard(listener)
        if channel.listeners:
            return
        if channel.wanted:
            channel.wanted = False
            if self._connection is not None:
                self._outbox.put_nowait(("UNSUBSCRIBE", listener.channel))
        if not channel.unconfirmed:
            del self._channels[listener.channel]

    # the connection
    async def _run(self) -> None:
        """Connect, serve, and when the connection fails, connect again (backing off). Any
        error ends one connection, never the hub: every stream of the process depends on it."""
        attempt = 0
        while not self._closing:
            if attempt:
                await asyncio.sleep(self._reconnect_delays[min(attempt, len(self._reconnect_delays)) - 1])
            connection: AbstractConnection = self._factory.make_connection()  # type: ignore[no-untyped-call]
            try:
                await connection.connect()  # type: ignore[no-untyped-call]
                self._subscribe_all(connection)
                self.connections_made += 1
                attempt = 0
                await self._serve(connection)
            except Exception as exc:  # any: see the docstring
                if attempt == 0:
                    log.warning("event hub lost its Redis connection; reconnecting",
                                extra={"error": type(exc).__name__})
                attempt += 1
            finally:
                self._connection = None
                await connection.disconnect(nowait=True)

    def _subscribe_all(self, connection: AbstractConnection) -> None:
        """A fresh connection: one SUBSCRIBE for every channel that has listeners, confirming
        every joiner still waiting (whatever it waited for was sent on a connection now gone)."""
        self._outbox = asyncio.Queue()
        for name, channel in list(self._channels.items()):
            if not channel.listeners:
                del self._channels[name]
                continue
            channel.wanted = True
            channel.unconfirmed = deque([[future for group in channel.unconfirmed for future in group]])
        self._connection = connection
        names = list(self._channels)
        for start in range(0, len(names), 1000):
            self._outbox.put_nowait(("SUBSCRIBE", *names[start:start + 1000]))

    async def _serve(self, connection: AbstractConnection) -> None:
        """Read and write until the connection fails (the error is raised)."""
        outbox = self._outbox
        writer = asyncio.get_running_loop().create_task(self._write(connection, outbox))
        writer.add_done_callback(_retrieve)
        try:
            await self._read(connection, writer)
        finally:
            # Stopped by a marker as well as cancelled: a cancellation that reaches redis-py
            # while it sends can be swallowed by its disconnect, and the writer would go on.
            outbox.put_nowait(())
            writer.cancel()
            await asyncio.wait({writer}, timeout=1)

    async def _write(self, connection: AbstractConnection, outbox: asyncio.Queue[tuple[str, ...]]) -> None:
        while True:
            command = await outbox.get()
            if not command:  # the marker: this connection is done with
                return
            if not connection.is_connected:  # (send_command would open a new socket, unsubscribed)
                raise RedisConnectionError("The event hub's connection is closed.")
            await connection.send_command(*command, check_health=False)

    async def _read(self, connection: AbstractConnection, writer: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while True:
            if writer.done():
                writer.result()  # a failed send: raise its error
                raise RedisConnectionError("The event hub's writer stopped.")
            reply = await connection.read_response(timeout=self._ping_seconds)
            if reply is None:  # quiet: is the connection still there?
                if loop.time() - heard > 2 * self._ping_seconds:
                    raise RedisConnectionError("Redis did not answer the event hub's PING.")
                self._outbox.put_nowait(("PING",))
                continue
            heard = loop.time()
            self._dispatch(reply)

    def _dispatch(self, reply: object) -> None:
        if not isinstance(reply, list) or len(reply) < 2:
            return
        kind, name = reply[0], reply[1]
        channel = self._channels.get(name.decode() if isinstance(name, bytes) else str(name))
        if channel is None:
            return
        if kind == b"message" and len(reply) == 3:
            notice = Notice(data=reply[2] if isinstance(reply[2], bytes) else str(reply[2]).encode())
            for listener in channel.listeners:
                listener.deliver(notice)
        elif kind == b"subscribe":
            if channel.unconfirmed:
                for future in channel.unconfirmed.popleft():
                    if not future.done():
                        future.set_result(None)
            # Listeners already in were subscribed on a connection that dropped: tell them.
            for listener in channel.listeners:
                if not listener.joining:
                    listener.deliver(MISSED)
        elif kind == b"unsubscribe" and not channel.listeners and not channel.unconfirmed:
            del self._channels[name.decode() if isinstance(name, bytes) else str(name)]


__all__ = ["MISSED", "QUEUE_SIZE", "SUBSCRIBE_TIMEOUT", "EventHub", "Listener", "Notice"]


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a finished writer's error as seen (the reader raises it, or the connection is gone anyway)."""
    if not task.cancelled():
        task.exception()
