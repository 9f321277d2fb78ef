"""The governor of the platform's own traffic to a connector's provider (contract §8, §9).

The permits are the workers' (``tasks/provider/permits.py``): the same script on the same keys,
so the platform's requests and authq's own share one rate limit and one pool. What the governor
adds is waiting without cost:

- Waiters of one connector queue in this process, first come first served, each a future: no
  task, thread or Redis connection of its own. One *pump* per connector per process asks Redis
  for the head waiter's permit; a refusal says when one could be free, and the pump sleeps until
  then, so a hundred waiters cost what one does.
- A pool slot freed early (a ``DELETE /permits/{id}``, a worker's request ending) is published
  on the pool's channel by the script that frees it; the pump listens on that channel through the
  process's event hub (``api/event_hub.py``: its one pub/sub connection) and looks again at once.
  A slot nobody frees lapses with its lease, which is when the script says to look again anyway.
- A request that asks not to wait is answered at once: by one attempt, or, when others already
  wait in line here, refused without asking Redis (it never takes a permit ahead of them).
- A request decided on a connector record kept from an earlier read (the proxy's) names that
  record's SHA-1: the permit is taken only while the record is still the one stored, checked by
  the same script (``permits.take_if_current``), else ``NotAsKept`` and nothing is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from api.event_hub import EventHub, Listener
from api.parsed_records import digest
from api.store import ApiStore
from tasks.errors import EventsUnavailable, NotAsKept, RefusalCode, Refused
from tasks.model.ids import unique_id
from tasks.model.records import Connector, new_id
from tasks.provider import permits
from tasks.provider.connector_limits import Limits
from tasks.provider.permits import Decision, Grant, NotCurrent
from tasks.storage import schema

log = logging.getLogger("authq.api")

IDLE_CHECK_SECONDS = 1.0     # a sleeping pump sees this often whether anybody still waits (no Redis call)
# Without the event hub (Redis reconnecting) a slot's release is not heard: look again this often.
POOL_RECHECK_SECONDS = 1.0
LINE = tuple[str, str]       # (tenant, connector id)


@dataclass(eq=False)
class _Waiter:
    future: asyncio.Future[Grant]


@dataclass(eq=False)
class _Line:
    """One connector's waiters in this process, and what the last refusal said."""

    limits: Limits
    waiters: deque[_Waiter] = field(default_factory=deque)
    pump: asyncio.Task[None] | None = None
    code: RefusalCode = "rate_limited"
    free_at: float = 0.0     # loop time a permit could be free, as the last refusal said
    refused: Decision | None = None  # the refusal of the request that started the line: the pump's first answer


class Governor:
    def __init__(self, store: ApiStore, hub: EventHub) -> None:
        self._store = store
        self._hub = hub
        self._lines: dict[LINE, _Line] = {}
        self._background: set[asyncio.Task[object]] = set()
        self.script_calls = 0    # permit scripts sent by this process (what waiting costs Redis)

    async def acquire(self, tenant: str, connector: Connector, *, max_wait: float, record: bool = True,
                      kept: str | None = None) -> Grant:
        """A permit for one request to the connector's provider, waiting up to ``max_wait`` seconds
        in line behind this process's earlier waiters; ``Refused`` when none came in time.

        ``record=False`` (the proxy's, which gives its permits back itself with ``give_back``): a
        permit granted at once is not kept under its id, which saves its release two round trips
        when it holds no pool slot. One handed out by the line's pump is recorded whoever asked.

        ``kept``: the SHA-1 of the stored JSON ``connector`` was read from, when the request was
        decided on a record kept from an earlier read; ``NotAsKept`` when it is no longer current."""
        limits = (Limits.of(connector, None) if connector.connection_pool_id is None  # (no pool: nothing to read)
                  else await self._limits(tenant, connector))
        key = (tenant, connector.id)
        line = self._lines.get(key)
        loop = asyncio.get_running_loop()
        if line is not None and line.waiters:
            if kept is not None:  # (it waits in any case: the check may cost a round trip of its own)
                await self._check_kept(tenant, connector.id, kept)
            if max_wait <= 0:  # they asked first: no permit ahead of them
                raise Refused(line.code, max(0.0, line.free_at - loop.time()))
        else:
            # Nobody waits here: ask at once. Requests arriving together ask side by side (their
            # scripts share round trips), where the line's one pump would ask for one at a time:
            # a connector under its limit costs one script a request, not one round trip in turn.
            outcome = await self._attempt(limits, record, kept)
            if isinstance(outcome, Grant):
                return outcome
            if max_wait <= 0:
                raise Refused(outcome.code, outcome.wait)
            line = self._lines.get(key)  # (another request may have started the line meanwhile)
            if line is None:  # this request starts it: the pump need not ask again at once
                line = self._lines[key] = _Line(limits, refused=outcome)
        if line is None:
            line = self._lines[key] = _Line(limits)
        line.limits = limits  # the latest record's: a changed limit applies from the next attempt
        waiter = _Waiter(loop.create_future())
        line.waiters.append(waiter)
        if line.pump is None:
            line.pump = loop.create_task(self._pump(key, line), name=f"governor-{connector.id}")
        handed = False
        try:
            await asyncio.wait({waiter.future}, timeout=max_wait)
            if waiter.future.done():
                handed = True
                return waiter.future.result()
            raise Refused(line.code, max(0.0, line.free_at - loop.time()))
        finally:
            if not handed:
                self._leave(line, waiter)

    async def release(self, tenant: str, grant_id: str) -> bool:
        """Free a permit's slot now: False when it is unknown, already freed or lapsed."""
        return await self._store.run(permits.release(tenant, grant_id))

    async def give_back(self, grant: Grant) -> None:
        """The request ``grant`` let through is done: free its pool slot (an unrecorded grant
        without one holds nothing: its rate-limit permit is spent)."""
        if grant.recorded:
            await self.release(grant.tenant, grant.id)
        elif grant.connection_pool_id is not None:
            await self._store.run(permits.free_slot(grant.tenant, grant.connection_pool_id, grant.id))

    async def block(self, tenant: str, connector: Connector, retry_after: float, host: str = permits.ANY_HOST) -> None:
        """The provider answered 429 with ``retry_after``: no permit for anyone (workers included)
        until then, an hour at most."""
        await self._store.run(permits.block(await self._limits(tenant, connector), retry_after, host))

    async def close(self) -> None:
        pumps = [line.pump for line in self._lines.values() if line.pump is not None]
        for task in pumps:
            task.cancel()
        if pending := pumps + list(self._background):
            await asyncio.wait(pending, timeout=5)

    # -- one attempt -----------------------------------------------------------------------

    async def _limits(self, tenant: str, connector: Connector) -> Limits:
        # A pool deleted since the connector was assigned to it governs nothing any more.
        pool = (await self._store.pool(tenant, connector.connection_pool_id)
                if connector.connection_pool_id is not None else None)
        return Limits.of(connector, pool)

    async def _attempt(self, limits: Limits, record: bool = True, kept: str | None = None) -> Grant | Decision:
        # A recorded permit's id is the platform's handle on it (DELETE /permits/{id}): unguessable.
        # Another's only tells the rate log's members and the pool's leases apart.
        permit_id = new_id("pmt") if record else f"pmt_{unique_id()}"
        lease = limits.lease_seconds()
        self.script_calls += 1
        if kept is None:
            decision = await self._store.run(permits.take(limits, permit_id, lease, record=record))
        else:
            answer = await self._store.run(permits.take_if_current(
                limits, permit_id, lease, schema.connector(limits.tenant, limits.connector_id), kept, record=record))
            if isinstance(answer, NotCurrent):
                raise NotAsKept(answer.stored)
            decision = answer
        return permits.granted(limits, permit_id, decision, lease, record) if decision.granted else decision

    async def _check_kept(self, tenant: str, connector_id: str, kept: str) -> None:
        stored = await self._store.pipelined.execute("GET", schema.connector(tenant, connector_id))
        if stored is None or digest(stored) != kept:
            raise NotAsKept(stored)

    # -- waiting ---------------------------------------------------------------------------

    def _leave(self, line: _Line, waiter: _Waiter) -> None:
        """A waiter gone (its time up, its client gone): out of the line; a grant handed to it
        meanwhile is freed."""
        with contextlib.suppress(ValueError):
            line.waiters.remove(waiter)
        if waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
            self._release_later(waiter.future.result())
        waiter.future.cancel()

    def _hand(self, line: _Line, grant: Grant) -> None:
        """The grant to the first waiter still waiting; freed again if nobody is."""
        while line.waiters:
            waiter = line.waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_result(grant)
                return
        self._release_later(grant)

    def _release_later(self, grant: Grant) -> None:
        task = asyncio.get_running_loop().create_task(self._release_quietly(grant))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _release_quietly(self, grant: Grant) -> None:
        with contextlib.suppress(RedisError, OSError):  # else its lease lapses by itself
            await self.give_back(grant)

    async def _pump(self, key: LINE, line: _Line) -> None:
        """Permits for the line's waiters, head first, until nobody waits."""
        try:
            while line.waiters:
                await self._serve(line)
        except Exception as exc:  # Redis gone: every waiter hears it (a 503), none waits in vain
            for waiter in line.waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(exc)
            line.waiters.clear()
        finally:  # (nothing awaited since the line was last seen empty: no waiter is left behind)
            if self._lines.get(key) is line:
                del self._lines[key]

    async def _serve(self, line: _Line) -> None:
        """The pump while the connector's pool stays the same (a new pool: a new channel)."""
        pool = line.limits.pool
        async with contextlib.AsyncExitStack() as stack:
            releases: Listener | None = None
            subscribed = pool is None
            while line.waiters and line.limits.pool == pool:
                outcome = line.refused or await self._attempt(line.limits)
                line.refused = None
                if isinstance(outcome, Grant):
                    self._hand(line, outcome)
                    continue
                line.code, line.free_at = outcome.code, asyncio.get_running_loop().time() + outcome.wait
                if not subscribed:
                    # Listen for freed slots only once there is something to wait for; then look
                    # again at once: a slot freed before the subscription was confirmed is seen.
                    subscribed = True
                    releases = await self._listen(stack, line.limits)
                    if releases is not None:
                        continue
                await self._sleep(line, outcome, releases)

    async def _listen(self, stack: contextlib.AsyncExitStack, limits: Limits) -> Listener | None:
        """The pool's channel of freed slots for the rest of ``stack``, or None when the hub cannot
        subscribe now (the pump then looks every ``POOL_RECHECK_SECONDS``)."""
        assert limits.pool is not None
        channel = schema.pool_freed(limits.tenant, limits.pool.id)
        try:
            return await stack.enter_async_context(self._hub.listen(channel))
        except EventsUnavailable:
            log.warning("governor polls for pool slots: no subscription", extra={"channel": channel})
            return None

    async def _sleep(self, line: _Line, refused: Decision, releases: Listener | None) -> None:
        """Until a permit could be free: when the script said, or sooner for a pool slot freed."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        rate_free = start + refused.rate_wait
        until = start + refused.wait
        if refused.status == permits.POOL_EXHAUSTED and releases is None:
            until = min(until, max(rate_free, start + POOL_RECHECK_SECONDS))
        if releases is not None:
            releases.clear()  # the attempt just made covers whatever was published before it
        while line.waiters and (remaining := until - loop.time()) > 0:
            nap = min(remaining, IDLE_CHECK_SECONDS)
            if releases is None:
                await asyncio.sleep(nap)
                continue
            notice = await releases.get(timeout=nap)
            if notice is not None and refused.status == permits.POOL_EXHAUSTED:
                releases.clear()
                until = min(until, rate_free)  # a slot is free: as soon as the rate limit allows
