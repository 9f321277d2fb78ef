"""``Prefer: wait=N`` (RFC 7240): hold an answer up to N seconds for a job to finish."""

from __future__ import annotations

import asyncio
import re
import time

from aiohttp import web

from api.typedefs import STORE
from tasks.model.records import Job

MAX_WAIT = 30.0
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.I)


def preferred_wait(request: web.Request) -> float | None:
    match = _WAIT.search(request.headers.get("Prefer", ""))
    if not match:
        return None
    return min(MAX_WAIT, float(match.group(1)))


async def wait_for_job(request: web.Request, job: Job, seconds: float) -> Job:
    """Poll the record (cheap GETs, backing off 10 ms -> 250 ms) until it ends or time is up."""
    store = request.app[STORE]
    deadline = time.monotonic() + seconds
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
