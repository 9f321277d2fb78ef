"""One job's life: queued -> running -> succeeded | failed (retrying between attempts).

``run_job`` is everything a Celery task does; it knows nothing of Celery. It is safe to
call twice for the same job (at-least-once delivery): a finished job is left as it is,
and ``attempts`` counts every start, so a job that keeps killing its worker ends
``failed`` after ``max_attempts`` instead of looping.
"""

from __future__ import annotations

import logging
from typing import Any

from tasks.errors import Deferred, JobFailed, RetryLater
from tasks.flows.authorise import authorise, reauthorise
from tasks.flows.callbacks import authenticate, woo_app_auth
from tasks.flows.refresh import refresh
from tasks.jobs.at_once import Handler, end_at_once, open_copy
from tasks.jobs.context import JobContext
from tasks.jobs.ending import count, finish
from tasks.jobs.queue_port import JobCopy
from tasks.model.records import PROVIDER_STEPS, Job, ProgressStep
from tasks.storage import schema
from tasks.storage.leases import Lease, RunLeases, Taken
from tasks.storage.store import Start

log = logging.getLogger("authq.jobs")

HANDLERS: dict[str, Handler] = {
    "authorise": authorise, "reauthorise": reauthorise, "authenticate": authenticate,
    "woo_app_auth": woo_app_auth, "refresh": refresh,
}
MAX_BACKOFF = 60.0


def backoff(attempt: int, hint: float | None = None) -> float:
    """Exponential backoff (1, 2, 4 … s, capped), or the provider's Retry-After when larger."""
    delay = min(MAX_BACKOFF, 2.0 ** max(0, attempt - 1))
    return min(MAX_BACKOFF, max(delay, hint or 0.0))


def _retry_later(job: Job, delay: float, error_code: str) -> RetryLater:
    log.info("job will run again", extra={"job_id": job.id, "connector_id": job.connector_id, "tenant": job.tenant,
                                          "attempts": job.attempts, "error_code": error_code,
                                          "delay": round(delay, 3)})
    return RetryLater(delay)


def run_job(ctx: JobContext, tenant: str, job_id: str, leases: RunLeases | None = None,
            copy: JobCopy | None = None) -> Job | None:
    """Run the job once (or leave it, if it has ended). With ``leases``, under the job's run
    lease, taken in the round trip that reads the job; ``Taken`` if another run holds it.
    With ``copy`` (its message's), a job that needs nobody else is first tried at once
    (``at_once.run_at_once``); any other uses the copy's request, opened, if the stored
    one is the same ciphertext."""
    opened = open_copy(ctx, tenant, job_id, copy) if copy is not None else None
    if opened is not None:
        ended = end_at_once(ctx, opened) if opened.local else None
        if ended is not None:
            return ended
    # (A local job's request was handed to its handler once; the usual way opens its own.)
    known = opened.request if opened is not None and not opened.local else None
    if leases is None:
        return _run(ctx, tenant, job_id, ctx.store.start_job(tenant, job_id), None, known)
    lease = leases.new(tenant, job_id)
    start = ctx.store.start_job(tenant, job_id, lease.key, lease.token, leases.ttl_ms)
    if start.taken_ms is not None:
        raise Taken.after(start.taken_ms)
    with leases.holding(lease):
        return _run(ctx, tenant, job_id, start, lease, known)


def _run(ctx: JobContext, tenant: str, job_id: str, start: Start, lease: Lease | None,
         known: tuple[str, dict[str, Any]] | None = None) -> Job | None:
    """The usual way; ``known``: a sealed request already opened (the message's copy)."""
    job, sealed = start.job, start.sealed
    if job is None:
        log.warning("job record missing (expired or never stored)", extra={"job_id": job_id, "tenant": tenant})
        return None
    if job.finished:
        return job
    # Starts are counted in Redis as they begin, a run that killed its worker included (the
    # record's own count covers records written before the counter existed).
    job.attempts = max(start.starts, job.attempts + 1)
    if job.attempts > ctx.max_attempts:
        job.attempts -= 1  # the starts that ran
        return finish(ctx, job, lease, error=JobFailed(
            "attempts_exhausted",
            f"The job was started {job.attempts} times without finishing (its worker kept dying); giving up.",
        ).as_error())
    # Running, but not stored as such yet: it is stored ``running`` when it first waits on a
    # provider (PROVIDER_STEPS). A job that never leaves the machine goes from queued (or
    # retrying) to its end in one write; a poller could not have seen it running anyway.
    job.status = "running"
    job.started_at = job.started_at or ctx.now()
    job.error = None

    def step(name: str) -> None:
        job.progress.append(ProgressStep(step=name, at=ctx.now()))
        if name in PROVIDER_STEPS:
            ctx.store.save_job(job)

    handler = HANDLERS.get(job.type)
    mark = len(job.progress)
    try:
        if handler is None:
            raise JobFailed("not_supported", f"{job.type} jobs are not available in this version of authq yet.")
        if sealed is None:
            raise JobFailed("internal_error", "The job's stored request is missing; submit it again.")
        body = known[1] if known is not None and known[0] == sealed else ctx.box.open_json(sealed)
        outcome = handler(ctx, job, body, step)
        assert outcome is not None  # (only a local_only handler answers None)
    except Deferred as deferred:
        # Waiting for a permit is not an attempt: give the start back and queue again.
        job.attempts -= 1
        job.status = "queued"
        del job.progress[mark:]  # the steps re-run when it does
        ctx.store.save_job(job, also=lambda batch: batch.incrby(schema.job_starts(job.tenant, job.id), -1))
        reason = deferred.reason
        count(ctx, job, lambda m: m.waited(reason))
        log.info("job deferred", extra={"job_id": job.id, "tenant": tenant, "reason": deferred.reason,
                                        "delay": round(deferred.delay, 3)})
        raise
    except JobFailed as exc:
        if exc.retryable and job.attempts < ctx.max_attempts:
            job.status = "retrying"
            job.error = exc.as_error()
            ctx.store.save_job(job)
            count(ctx, job, lambda m: m.retried(job.type))
            raise _retry_later(job, backoff(job.attempts, getattr(exc, "retry_after", None)), exc.code) from None
        return finish(ctx, job, lease, error=exc.as_error())
    except Exception as exc:  # a bug or an outage we did not foresee: retry, then fail loudly
        log.exception("job raised unexpectedly", extra={"job_id": job.id, "tenant": tenant,
                                                       "error_type": type(exc).__name__})
        if job.attempts < ctx.max_attempts:
            job.status = "retrying"
            ctx.store.save_job(job)
            count(ctx, job, lambda m: m.retried(job.type))
            raise _retry_later(job, backoff(job.attempts), "internal_error") from None
        return finish(ctx, job, lease, error=JobFailed(
            "internal_error", f"The job failed unexpectedly ({type(exc).__name__}); see the worker log for job {job.id}.",
        ).as_error())
    return finish(ctx, job, lease, result=outcome.result, connector=outcome.connector)
