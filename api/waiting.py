"""``Prefer: wait=N`` (RFC 7240): hold an answer up to N seconds for a job to finish.

A waiter works on the job as stored (``Job.stored_json``, the bytes a poll serves): the
workers publish those bytes on the job's channel with every save, so a waiter that hears the
last one answers with it, reading and parsing nothing. (A copy published before the waiter's
read may be heard after it: at worst an older state of a job still running, since a finished
job never changes, and the waiter answers as soon as it holds a finished one.)
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

from aiohttp import web

from api.event_hub import SUBSCRIBE_TIMEOUT, Listener, Notice
from api.typedefs import EVENT_HUB, STORE
from tasks.errors import EventsUnavailable
from tasks.model.records import Job
from tasks.storage import schema

MAX_WAIT = 30.0
RECHECK_SECONDS = 1.0  # a waiter reads the record at least this often, notices or not
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.I)


def preferred_wait(request: web.Request) -> float | None:
    match = _WAIT.search(request.headers.get("Prefer", ""))
    if not match:
        return None
    return min(MAX_WAIT, float(match.group(1)))


def published_job(changes: Listener, notice: Notice) -> bytes | None:
    """The job a notice carries (the newest of those waiting), or None when it must be read:
    a notice of a lost message, or one without the job (an older worker's bare status)."""
    latest = changes.newest(notice)
    return None if latest.missed or not latest.data.startswith(b"{") else latest.data


async def wait_for_job(request: web.Request, tenant: str, job_id: str, stored: bytes, seconds: float) -> bytes:
    """The job (as stored) once it ended, or as it is when ``seconds`` are up.

    The waiter listens on the job's channel through the process's event hub (no Redis
    connection of its own) and reads the record once after subscribing (a save before that
    went unheard); then each notice brings the job's new state, and the record is read again
    only every ``RECHECK_SECONDS`` without one, or after a lost message. If the hub cannot
    subscribe in time (Redis reconnecting), it polls the record instead."""
    if Job.stored_finished(stored):
        return stored
    async with JobWatch(request, tenant, job_id, seconds) as watch:
        return await watch.outcome(stored, read_first=True)


class JobWatch:
    """Listening on a job's channel for an ``async with`` block, ``seconds`` at most.

    ``addressed``: entered before the job is stored (``Prefer: wait`` on a submission), it
    listens through the hub's inbox, which the job's request names (``inbox``), so the workers
    tell this process of every save of it: the job as accepted is all the waiter needs to start
    from, and neither a read of the record nor a subscription of the job's channel is made.
    If the hub cannot subscribe in time, ``outcome`` polls instead."""

    def __init__(self, request: web.Request, tenant: str, job_id: str, seconds: float,
                 addressed: bool = False) -> None:
        self._request, self._tenant, self._job_id = request, tenant, job_id
        self._seconds, self._addressed = seconds, addressed
        self._deadline = time.monotonic() + seconds
        self._stack = contextlib.AsyncExitStack()
        self._changes: Listener | None = None

    async def __aenter__(self) -> JobWatch:
        hub = self._request.app[EVENT_HUB]
        try:
            channel, timeout = schema.job_events(self._tenant, self._job_id), min(self._seconds, SUBSCRIBE_TIMEOUT)
            listening = hub.listen_addressed(channel, timeout) if self._addressed else hub.listen(channel, timeout)
            self._changes = await self._stack.enter_async_context(listening)
        except EventsUnavailable:
            self._changes = None
        return self

    @property
    def inbox(self) -> str | None:
        """The channel the job's request must name for this watch to hear its saves."""
        return self._request.app[EVENT_HUB].inbox if self._addressed and self._changes is not None else None

    async def __aexit__(self, *_: object) -> None:
        await self._stack.aclose()

    async def outcome(self, stored: bytes, *, read_first: bool = False) -> bytes:
        """The job once it ended, or as it is at the deadline; ``read_first``: the job may have
        been saved before the watch began, so read the record once first."""
        changes, store = self._changes, self._request.app[STORE]
        if changes is None:
            return await _poll(self._request, self._tenant, self._job_id, stored, self._deadline)
        latest: bytes | None = await store.job_json(self._tenant, self._job_id) if read_first else stored
        while True:
            if latest is None:  # expired or removed meanwhile: what was last seen stands
                return stored
            stored = latest
            remaining = self._deadline - time.monotonic()
            if Job.stored_finished(stored) or remaining <= 0:
                return stored
            notice = await changes.get(timeout=min(RECHECK_SECONDS, remaining))
            latest = None if notice is None else published_job(changes, notice)
            if latest is None:
                latest = await store.job_json(self._tenant, self._job_id)


async def _poll(request: web.Request, tenant: str, job_id: str, stored: bytes, deadline: float) -> bytes:
    """Poll the record (cheap GETs, backing off 10 ms -> 250 ms) until it ends or time is up."""
    store = request.app[STORE]
    delay = 0.01
    while not Job.stored_finished(stored):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 1.5, 0.25)
        latest = await store.job_json(tenant, job_id)
        if latest is None:
            break
        stored = latest
    return stored
