"""Auto-pipelining: the Redis calls of requests handled together share one round trip.

Under load, aiohttp runs the handlers of many requests in one turn of the event loop, and
each reaches its Redis write at about the same moment. Sent one by one, every write pays
redis-py's per-call costs (a pooled connection, a send, a reply read, a future); here the
first caller of a turn schedules a flush for the end of the turn (``call_soon``), the others
join it, and one pipeline (``transaction=False``) carries them all. Each script still runs
atomically on its own in Redis; one caller's error reply fails that caller only. With one
request at a time the batch is one call: the cost is a single extra loop turn.

(The idea is ioredis's ``enableAutoPipelining``. Measured side by side at load, it cut the
API's time per accepted job from ~410 µs to ~310 µs; see the README's Benchmarks.) Every single
command or script the API's store sends goes through it (``api/store.py``); transactions,
checked writes take a pooled connection each; event streams and waiters use none of the pool
(``api/event_hub.py``).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

Call = tuple[tuple[Any, ...], "asyncio.Future[Any]"]


class AutoPipeline:
    def __init__(self, client: Redis) -> None:
        self.client = client
        self._waiting: list[Call] = []
        self._tasks: set[asyncio.Task[None]] = set()

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

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[Call]) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for command, _ in batch:
                    pipe.execute_command(*command)
                replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # the connection failed: every caller of the batch hears it
            for _, future in batch:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):  # the loop is shutting down
                    future.cancel()
                else:
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():  # its caller was cancelled (the client went away)
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


@functools.cache
def _sha1(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()
