"""At most ``MAX_STREAMS_PER_KEY`` open event streams per API key, counted fleet-wide.

Each open stream holds a lease in the key's sorted set (``authq:api-streams:{sha}``, scored by
expiry on the Redis clock; the lease scripts of ``tasks/provider/limit_scripts.py``). Taking one drops
the expired leases first, so the count is right across every API process sharing the Redis,
and a process that dies without releasing its leases stops counting for them within
``LEASE_SECONDS``. A live stream renews its lease every ``RENEW_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from api.pipelining import AutoPipeline
from tasks.provider.limit_scripts import LEASE_ACQUIRE, LEASE_RENEW
from tasks.storage import schema

MAX_STREAMS_PER_KEY = 50   # the contract's limit (§5 jobs)
LEASE_SECONDS = 60.0       # how long a stream of a crashed API process keeps counting
RENEW_SECONDS = 20.0       # how often a live stream renews its lease
RETRY_AFTER_SECONDS = 5    # the 429's hint: streams end by themselves (the job's end, or their time is up)
_MICRO = 1_000_000


@dataclass
class StreamSlot:
    """One open stream's lease."""

    key: str
    lease_id: str
    renew_at: float  # time.monotonic() of its next renewal


class StreamSlots:
    def __init__(self, pipeline: AutoPipeline, limit: int = MAX_STREAMS_PER_KEY,
                 lease_seconds: float = LEASE_SECONDS, renew_seconds: float = RENEW_SECONDS) -> None:
        self._pipeline = pipeline
        self.limit = limit
        self._lease = max(1, round(lease_seconds * _MICRO))
        self._renew_seconds = renew_seconds
        self._releasing: set[asyncio.Task[None]] = set()

    async def acquire(self, key_hash: str) -> StreamSlot | None:
        """A slot for one more stream of the key, or None when it holds ``limit`` already."""
        slot = StreamSlot(schema.api_streams(key_hash), secrets.token_hex(12), time.monotonic() + self._renew_seconds)
        granted = await self._pipeline.eval(LEASE_ACQUIRE, [slot.key], [self.limit, self._lease, slot.lease_id])
        return slot if int(granted) else None

    async def keep(self, slot: StreamSlot) -> None:
        """Renew the lease when it is due (a no-op otherwise)."""
        now = time.monotonic()
        if now < slot.renew_at:
            return
        slot.renew_at = now + self._renew_seconds
        await self._pipeline.eval(LEASE_RENEW, [slot.key], [self._lease, slot.lease_id])

    def release(self, slot: StreamSlot) -> None:
        """Free the slot, in the background: a stream's end (even a cancelled one) never waits
        for Redis, and a release that fails is made good by the lease's expiry."""
        task = asyncio.get_running_loop().create_task(self._release(slot))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _release(self, slot: StreamSlot) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._pipeline.execute("ZREM", slot.key, slot.lease_id)

    async def close(self) -> None:
        """Wait for the releases under way (before the Redis client closes)."""
        if self._releasing:
            await asyncio.wait(set(self._releasing), timeout=5)
