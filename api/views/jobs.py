"""``GET /jobs/{id}`` (with ``Prefer: wait``)."""

from __future__ import annotations

from aiohttp import web

from tasks.errors import NotFound

from ..auth import tenant
from ..responses import one
from ..typedefs import STORE
from ..waiting import preferred_wait, wait_for_job


async def show(request: web.Request) -> web.StreamResponse:
    owner = tenant(request)
    wait = preferred_wait(request)
    if wait is None:
        # The hot path of every client: the stored bytes are the public view; no parsing.
        raw = await request.app[STORE].job_json(owner, request.match_info["job"])
        if raw is None:
            raise NotFound("Job")
        headers = {} if b'"finished_at":null' not in raw else {"Retry-After": "1"}
        return web.Response(body=b'{"data":' + raw + b"}", content_type="application/json", headers=headers)
    job = await request.app[STORE].job(owner, request.match_info["job"])
    if job is None:
        raise NotFound("Job")
    job = await wait_for_job(request, job, wait)
    headers = {"Preference-Applied": f"wait={wait:g}"}
    if not job.finished:
        headers["Retry-After"] = "1"
    return one(job.view(), headers=headers)
