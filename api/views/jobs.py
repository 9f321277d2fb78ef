"""``GET /jobs/{id}`` (with ``Prefer: wait``)."""

from __future__ import annotations

from aiohttp import web

from tasks.errors import NotFound

from ..auth import tenant
from ..responses import one
from ..typedefs import STORE
from ..waiting import preferred_wait, wait_for_job


async def show(request: web.Request) -> web.StreamResponse:
    job = await request.app[STORE].job(tenant(request), request.match_info["job"])
    if job is None:
        raise NotFound("Job")
    headers = {}
    wait = preferred_wait(request)
    if wait is not None:
        job = await wait_for_job(request, job, wait)
        headers["Preference-Applied"] = f"wait={wait:g}"
    if not job.finished:
        headers["Retry-After"] = "1"
    return one(job.view(), headers=headers)
