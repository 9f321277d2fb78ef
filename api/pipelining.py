"""Auto-pipelining: the Redis calls of requests handled together share one round trip, on one
connection of their own.

Under load, aiohttp runs the handlers of many requests in one turn of the event loop, and each
reaches its Redis command at about the same moment. The first caller of a turn schedules a flush
for the end of the turn (``call_soon``), the others join it, and the flush writes them all at
once. Each script still runs atomically on its own in Redis; one caller's error reply fails that
caller only. With one request at a time the batch is one call: the cost is one extra loop turn.
(The idea is ioredis's ``enableAutoPipelining``.)

The batches go down one connection that this module drives itself, with hiredis parsing the
replies as they arrive, in order, straight into the callers' futures: no pooled connection, no
redis-py ``Pipeline`` and no coroutine per reply. Measured side by side, redis-py's pipeline cost
50-60 us of the API's CPU per command and this about a third of that; for a credentials read or
a proxied request (two commands each) that was a sixth of the request's cost. It is the API's
one performance shortcut around redis-py, kept here: what goes over it is what redis-py would
send, replies pass through the client's own response callbacks, and errors are redis-py's own
exception classes, so callers cannot tell the difference. Transactions and checked writes still
take a pooled connection each (``api/store.py``); event streams and waiters use neither
(``api/event_hub.py``).

A connection lost, refused or silent for ``reply_timeout`` seconds fails every caller waiting on
it with redis-py's ``ConnectionError`` / ``TimeoutError`` (the API answers 503); the next call
connects again.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ssl
from collections import deque
from typing import Any

import hiredis
from redis._parsers.base import BaseParser  # redis-py's mapping of error replies to its exceptions
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

Call = tuple[tuple[Any, ...], "asyncio.Future[Any]"]
CONNECT_TIMEOUT = 5.0


class AutoPipeline:
    def __init__(self, client: Redis, reply_timeout: float = 10.0) -> None:
        self.client = client
        self.reply_timeout = reply_timeout
        self._waiting: list[Call] = []
        self._wire: _Wire | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._queued: list[Call] = []  # batches flushed while connecting: sent once connected

    async def execute(self, *command: Any) -> Any:
        """Run one Redis command (``"GET", key``); its reply, or the error Redis gave."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.append((command, future))
        return await future

    async def eval(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script by its SHA1, sending its text only if Redis doesn't know it (yet)."""
        try:
            return await self.execute("EVALSHA", _sha1(script), len(keys), *keys, *args)
        except NoScriptError:  # a Redis restarted or flushed since: EVAL loads it again
            return await self.execute("EVAL", script, len(keys), *keys, *args)

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self._wire is not None:
            self._wire.close()

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        if self._wire is not None and self._wire.open:
            self._wire.send(batch)
            return
        self._queued.extend(batch)
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        try:
            self._wire = await _Wire.open_to(self.client, self.reply_timeout)
        except BaseException as exc:  # every caller waiting for this connection hears why
            queued, self._queued = self._queued, []
            failure = exc if isinstance(exc, (RedisConnectionError, RedisTimeoutError)) else _connection_error(exc)
            for _, future in queued:
                if not future.done():
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(failure)
            if not isinstance(exc, Exception):
                raise
        else:
            queued, self._queued = self._queued, []
            self._wire.send(queued)
        finally:
            self._connecting = None


def _connection_error(exc: BaseException) -> RedisConnectionError | RedisTimeoutError:
    if isinstance(exc, TimeoutError):
        return RedisTimeoutError("Timed out connecting to Redis.")
    return RedisConnectionError(f"Error connecting to Redis: {exc}")


class _Wire(asyncio.Protocol):
    """One connection: commands written in batches, replies matched to callers in order."""

    def __init__(self, client: Redis, reply_timeout: float) -> None:
        self._callbacks = client.response_callbacks
        kwargs = client.connection_pool.connection_kwargs
        encoding = kwargs.get("encoding", "utf-8") if kwargs.get("decode_responses") else None
        self._reader = hiredis.Reader(encoding=encoding) if encoding else hiredis.Reader()
        self._reply_timeout = reply_timeout
        # (future, command name, loop time sent) per command sent and not yet answered
        self._pending: deque[tuple[asyncio.Future[Any], str, float]] = deque()
        self._transport: asyncio.Transport | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self.open = False

    @classmethod
    async def open_to(cls, client: Redis, reply_timeout: float) -> _Wire:
        """Connected, authenticated and on the client's database, as redis-py connects."""
        pool = client.connection_pool
        kwargs = pool.connection_kwargs
        loop = asyncio.get_running_loop()
        timeout = kwargs.get("socket_connect_timeout") or CONNECT_TIMEOUT
        async with asyncio.timeout(timeout):
            if issubclass(pool.connection_class, UnixDomainSocketConnection):
                _, wire = await loop.create_unix_connection(lambda: cls(client, reply_timeout), kwargs["path"])
            else:
                tls = _tls_context(kwargs) if issubclass(pool.connection_class, SSLConnection) else None
                _, wire = await loop.create_connection(lambda: cls(client, reply_timeout),
                                                       str(kwargs.get("host") or "localhost"),
                                                       int(kwargs.get("port") or 6379), ssl=tls)
            handshake: list[tuple[Any, ...]] = []
            if kwargs.get("password"):
                handshake.append(("AUTH", *([kwargs["username"]] if kwargs.get("username") else []),
                                  kwargs["password"]))
            if kwargs.get("client_name"):
                handshake.append(("CLIENT", "SETNAME", kwargs["client_name"]))
            if int(kwargs.get("db") or 0):
                handshake.append(("SELECT", int(kwargs["db"])))
            futures = [loop.create_future() for _ in handshake]
            wire.send(list(zip(handshake, futures, strict=True)))
            try:
                await asyncio.gather(*futures)
            except BaseException:
                wire.close()
                raise
        return wire

    def send(self, batch: list[Call]) -> None:
        if not batch:
            return
        assert self._transport is not None
        now = asyncio.get_running_loop().time()
        packed = []
        for command, future in batch:
            try:
                packed.append(hiredis.pack_command(command))
            except TypeError as exc:  # an argument Redis has no form for (None, a dict …): that caller's error
                future.set_exception(DataError(f"Invalid input of type {exc}: convert to bytes, str or a number."))
                continue
            self._pending.append((future, str(command[0]).upper(), now))
        self._transport.write(b"".join(packed))
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_at(now + self._reply_timeout, self._check)

    def close(self) -> None:
        self.open = False
        if self._transport is not None:
            self._transport.close()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self.open = True

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            future, name, _ = self._pending.popleft()
            if future.done():  # its caller was cancelled (the client went away)
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(BaseParser.parse_error(str(reply)))  # type: ignore[no-untyped-call]
                continue
            callback = self._callbacks.get(name)
            try:
                future.set_result(callback(reply) if callback is not None else reply)
            except Exception as exc:  # a reply its callback cannot read: that caller's error
                future.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self._fail(RedisConnectionError("Connection closed by the Redis server." if exc is None
                                        else f"Error talking to Redis: {exc}"))

    # replies that do not come
    def _check(self) -> None:
        self._watchdog = None
        if not self._pending:
            return
        oldest = self._pending[0][2]
        now = asyncio.get_running_loop().time()
        if now - oldest < self._reply_timeout:
            self._watchdog = asyncio.get_running_loop().call_at(oldest + self._reply_timeout, self._check)
            return
        self.open = False
        self._fail(RedisTimeoutError(f"Redis did not answer within {self._reply_timeout:g} s."))
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, error: Exception) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._pending:
            future, _, _ = self._pending.popleft()
            if not future.done():
                future.set_exception(error)


def _tls_context(kwargs: dict[str, Any]) -> ssl.SSLContext:
    """The TLS a ``rediss://`` URL asks for, from redis-py's own connection options."""
    context = ssl.create_default_context(cafile=kwargs.get("ssl_ca_certs"), capath=kwargs.get("ssl_ca_path"))
    if kwargs.get("ssl_certfile"):
        context.load_cert_chain(kwargs["ssl_certfile"], kwargs.get("ssl_keyfile"), kwargs.get("ssl_password"))
    if kwargs.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.check_hostname = bool(kwargs.get("ssl_check_hostname", True))
    return context


@functools.cache
def _sha1(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()
