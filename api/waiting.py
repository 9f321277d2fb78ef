"""``Prefer: wait=N`` (RFC 7240): hold an answer up to N seconds for a job to finish."""

from __future__ import annotations

import asyncio
import re
import time

from aiohttp import web

from api.event_hub import SUBSCRIBE_TIMEOUT
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


async def wait_for_job(request: web.Request, job: Job, seconds: float) -> Job:
    """The job once it ended, or as it is when ``seconds`` are up.

    The waiter listens on the job's channel through the process's event hub (no Redis
    connection of its own) and reads the record after subscribing, then again on each notice
    (and every ``RECHECK_SECONDS`` in case one was lost). If the hub cannot subscribe in time
    (Redis reconnecting), it polls the record instead."""
    if job.finished:
        return job
    store = request.app[STORE]
    deadline = time.monotonic() + seconds
    try:
        async with request.app[EVENT_HUB].listen(schema.job_events(job.tenant, job.id),
                                                 timeout=min(seconds, SUBSCRIBE_TIMEOUT)) as changes:
            while True:
                latest = await store.job(job.tenant, job.id)
                if latest is None:
                    return job
                job = latest
                remaining = deadline - time.monotonic()
                if job.finished or remaining <= 0:
                    return job
                if await changes.get(timeout=min(RECHECK_SECONDS, remaining)) is not None:
                    changes.clear()  # the read covers every notice that waited
    except EventsUnavailable:
        pass
    return await _poll(request, job, deadline)


async def _poll(request: web.Request, job: Job, deadline: float) -> Job:
    """Poll the record (cheap GETs, backing off 10 ms -> 250 ms) until it ends or time is up."""
    store = request.app[STORE]
    delay = 0.01
    while not job.finished:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 1.5, 0.25)
        latest = await store.job(job.tenant, job.id)
        if latest is None:
            break
        job = latest
    return job
