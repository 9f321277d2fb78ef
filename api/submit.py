"""Accepting a job: store it, hand it to the queue, answer 202 (or 200 after ``Prefer: wait``).

The record is written before the job is published, so a worker never sees an id it can't
read; if the broker refuses, the record is removed and the client gets 503 and can retry:
nothing half-accepted is left behind.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from api import idempotency
from api.auth import actor_fields
from api.responses import error
from api.typedefs import BOX, INLINE_QUEUE, QUEUE, REQUEST_ID, SETTINGS, STORE
from api.waiting import JobWatch, preferred_wait
from tasks.errors import IdempotencyKeyInUse, QueueUnavailable, TenantFull
from tasks.jobs.queue_port import JobCopy
from tasks.jobs.waiter import INBOX_FIELD
from tasks.model.audit import ACTOR_FIELD
from tasks.model.records import Job, new_id, utcnow
from tasks.model.views import JobType

log = logging.getLogger("authq.api")
POLL_AFTER_SECONDS = "1"


def unavailable() -> web.Response:
    return error(503, "The job queue is unavailable, so nothing was queued. Retry in a few seconds.",
                 headers={"Retry-After": "5"})


async def accept(request: web.Request, tenant: str, job_type: JobType, connector_id: str | None,
                 body: dict[str, Any], job_id: str | None = None, cap: int = 0,
                 inbox: str | None = None) -> tuple[Job, str]:
    """Store and publish a job; raise ``QueueUnavailable`` (having removed it) if the broker
    refuses, ``TenantFull`` if the tenant has ``cap`` jobs in flight (0: no cap). ``inbox``: the
    channel of this process's event hub that a waiter for the job listens on.

    Returns the job and its stored JSON (its public view, as a poll serves it)."""
    # Validated: with pydantic 2 that is cheaper than model_construct (3.5 µs against 7.2, measured).
    job = Job(id=job_id or new_id("job"), tenant=tenant, type=job_type, connector_id=connector_id, created_at=utcnow())
    store = request.app[STORE]
    inline = request.app.get(INLINE_QUEUE)
    # Who asked travels with the job, sealed with its request, to the end where its change is audited.
    sealed = request.app[BOX].seal_json({**body, ACTOR_FIELD: actor_fields(request)} if inbox is None
                                        else {**body, ACTOR_FIELD: actor_fields(request), INBOX_FIELD: inbox})
    job_json = job.stored_json()
    if inline is not None:
        # Stored and queued in one Redis transaction: either both happened or neither did.
        try:
            message = inline.inline_message(tenant, job.id, job_type, request.get(REQUEST_ID),
                                            JobCopy(job_json, sealed))
            stored = await store.create_job(job, job_json, sealed, message, cap)
        except RedisError:
            log.exception("could not store and queue job", extra={"job_id": job.id, "tenant": tenant,
                                                                "request_id": request.get(REQUEST_ID)})
            raise QueueUnavailable from None
        if not stored:
            raise TenantFull
    else:
        if not await store.create_job(job, job_json, sealed, cap=cap):
            raise TenantFull
        try:
            await request.app[QUEUE].enqueue(tenant, job.id, job_type, request.get(REQUEST_ID),
                                             JobCopy(job_json, sealed))
        except Exception:
            log.exception("could not publish job", extra={"job_id": job.id, "tenant": tenant,
                                                        "request_id": request.get(REQUEST_ID)})
            await store.discard_job(tenant, job.id)
            raise QueueUnavailable from None
    # DEBUG: at load a line per accepted job cost ~10% of the API's time (bench/). The request
    # id travels with the job instead: every line of its run, in the worker, carries it.
    log.debug("job accepted", extra={"job_id": job.id, "tenant": tenant, "connector_id": connector_id,
                                    "job_type": job_type, "request_id": request.get(REQUEST_ID)})
    return job, job_json


async def submit(request: web.Request, tenant: str, job_type: JobType, connector_id: str | None,
                 body: dict[str, Any], job_id: str | None = None) -> web.StreamResponse:
    store = request.app[STORE]
    try:
        held = await idempotency.reserve(store.redis, request, tenant, body)
    except IdempotencyKeyInUse:
        return error(409, "A request with this Idempotency-Key is still being accepted; retry shortly.",
                     headers={"Retry-After": "1"})
    if isinstance(held, idempotency.Replay):
        first = await store.job_json(tenant, held.job_id)
        if first is not None:
            return _answer(held.job_id, first, held.status)
        held = None  # the job has expired since: treat as new
    wait = preferred_wait(request)
    if wait is None:
        accepted = await _accept_or_refusal(request, tenant, job_type, connector_id, body, job_id, held)
        if isinstance(accepted, web.Response):
            return accepted
        job, stored, status = accepted[0], accepted[1].encode(), 202
    else:
        # Listening (on the process's inbox, which the job's request names) before the job is
        # stored: every save of it is heard, and the job as accepted is where the wait starts.
        job_id = job_id or new_id("job")
        async with JobWatch(request, tenant, job_id, wait, addressed=True) as watch:
            accepted = await _accept_or_refusal(request, tenant, job_type, connector_id, body, job_id, held,
                                                watch.inbox)
            if isinstance(accepted, web.Response):
                return accepted
            job, stored = accepted[0], await watch.outcome(accepted[1].encode())
        status = 200 if Job.stored_finished(stored) else 202
    if held:
        await idempotency.remember(store.redis, held, job.id, status)
    response = _answer(job.id, stored, status)
    if wait is not None:
        response.headers["Preference-Applied"] = f"wait={wait:g}"
    return response


async def _accept_or_refusal(request: web.Request, tenant: str, job_type: JobType, connector_id: str | None,
                             body: dict[str, Any], job_id: str | None,
                             held: tuple[str, str] | None, inbox: str | None = None) -> tuple[Job, str] | web.Response:
    """``accept``, or the answer to give when the queue or the tenant's cap refused the job."""
    try:
        return await accept(request, tenant, job_type, connector_id, body, job_id,
                            cap=request.app[SETTINGS].max_queued_per_tenant, inbox=inbox)
    except (QueueUnavailable, TenantFull) as refused:
        if held:
            await idempotency.release(request.app[STORE].redis, held)
        if isinstance(refused, TenantFull):
            return error(429, "This tenant has too many jobs queued or running; retry when some have finished.",
                         headers={"Retry-After": "5"})
        return unavailable()


def _answer(job_id: str, stored: bytes, status: int) -> web.Response:
    """The job as ``{"data": view}``, from its stored view (``Job.stored_json``) as it is."""
    headers = {"Location": f"/api/v1/jobs/{job_id}"}
    if not Job.stored_finished(stored):
        headers["Retry-After"] = POLL_AFTER_SECONDS
    return web.Response(body=b'{"data":' + stored + b"}", status=status, headers=headers,
                        content_type="application/json")
