"""One job's life: queued -> running -> succeeded | failed (retrying between attempts).

``run_job`` is everything a Celery task does; it knows nothing of Celery. It is safe to
call twice for the same job (at-least-once delivery): a finished job is left as it is,
and ``attempts`` counts every start, so a job that keeps killing its worker ends
``failed`` after ``max_attempts`` instead of looping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .authorise import authorise, reauthorise
from .callbacks import authenticate, woo_app_auth
from .context import JobContext
from .errors import Deferred, JobFailed, RetryLater
from .metrics import JobMetrics
from .records import Job, ProgressStep
from .refresh import refresh

log = logging.getLogger("authq.jobs")

Handler = Callable[[JobContext, Job, dict[str, Any], Callable[[str], None]], dict[str, Any]]
HANDLERS: dict[str, Handler] = {
    "authorise": authorise, "reauthorise": reauthorise, "authenticate": authenticate,
    "woo_app_auth": woo_app_auth, "refresh": refresh,
}
MAX_BACKOFF = 60.0


def backoff(attempt: int, hint: float | None = None) -> float:
    """Exponential backoff (1, 2, 4 … s, capped), or the provider's Retry-After when larger."""
    delay = min(MAX_BACKOFF, 2.0 ** max(0, attempt - 1))
    return min(MAX_BACKOFF, max(delay, hint or 0.0))


def _fail_pending_connector(ctx: JobContext, job: Job) -> None:
    """A failed authorise must not leave its connector ``pending`` for ever.

    Only ``pending`` is changed: a reauthorise's connector keeps its working state.
    """
    connector = ctx.store.connector(job.tenant, job.connector_id) if job.connector_id else None
    if connector is not None and connector.status == "pending":
        ctx.store.save_connector(connector.model_copy(update={"status": "failed", "updated_at": ctx.now()}))


def _count(ctx: JobContext, job: Job, record: Callable[[JobMetrics], None]) -> None:
    """Count into the fleet metrics; a metrics failure is logged and never fails the job."""
    if ctx.metrics is None:
        return
    try:
        record(ctx.metrics)
    except Exception as exc:  # Redis down, a bug: the job's outcome matters more than its count
        log.warning("job metrics not recorded", extra={"job_id": job.id, "tenant": job.tenant,
                                                       "error_type": type(exc).__name__})


def _finish(ctx: JobContext, job: Job, *, result: dict[str, Any] | None = None,
            error: dict[str, Any] | None = None) -> Job:
    if error and job.type == "authorise":
        _fail_pending_connector(ctx, job)  # before the job ends: a crash in between re-runs this
    job.status = "failed" if error else "succeeded"
    job.result = result
    job.error = error
    job.finished_at = ctx.now()
    ctx.store.save_job(job)
    # Counted once the end is stored (a crash in between loses a count, never doubles one).
    # Duration: from the first start (or, never started, from creation) to the end.
    seconds = max(0.0, (job.finished_at - (job.started_at or job.created_at)).total_seconds())
    _count(ctx, job, lambda m: m.finished(job.type, job.status, seconds))
    log.info("job finished", extra={"job_id": job.id, "connector_id": job.connector_id, "tenant": job.tenant,
                                    "status": job.status, "error_code": (error or {}).get("code")})
    return job


def run_job(ctx: JobContext, tenant: str, job_id: str) -> Job | None:
    job = ctx.store.job(tenant, job_id)
    if job is None:
        log.warning("job record missing (expired or never stored)", extra={"job_id": job_id, "tenant": tenant})
        return None
    if job.finished:
        return job
    if job.attempts >= ctx.max_attempts:
        return _finish(ctx, job, error=JobFailed(
            "attempts_exhausted",
            f"The job was started {job.attempts} times without finishing (its worker kept dying); giving up.",
        ).as_error())
    job.attempts += 1
    job.status = "running"
    job.started_at = job.started_at or ctx.now()
    job.error = None
    ctx.store.save_job(job)

    def step(name: str) -> None:
        job.progress.append(ProgressStep(step=name, at=ctx.now()))
        ctx.store.save_job(job)

    handler = HANDLERS.get(job.type)
    mark = len(job.progress)
    try:
        if handler is None:
            raise JobFailed("not_supported", f"{job.type} jobs are not available in this version of authq yet.")
        sealed = ctx.store.submission(tenant, job_id)
        if sealed is None:
            raise JobFailed("internal_error", "The job's stored request is missing; submit it again.")
        body = ctx.box.open_json(sealed)
        result = handler(ctx, job, body, step)
    except Deferred as deferred:
        # Waiting for a permit is not an attempt: give the start back and queue again.
        job.attempts -= 1
        job.status = "queued"
        del job.progress[mark:]  # the steps re-run when it does
        ctx.store.save_job(job)
        _count(ctx, job, lambda m: m.waited(deferred.reason))
        log.info("job deferred", extra={"job_id": job.id, "tenant": tenant, "reason": deferred.reason,
                                        "delay": round(deferred.delay, 3)})
        raise
    except JobFailed as exc:
        if exc.retryable and job.attempts < ctx.max_attempts:
            job.status = "retrying"
            job.error = exc.as_error()
            ctx.store.save_job(job)
            _count(ctx, job, lambda m: m.retried(job.type))
            raise RetryLater(backoff(job.attempts, getattr(exc, "retry_after", None))) from None
        return _finish(ctx, job, error=exc.as_error())
    except Exception as exc:  # a bug or an outage we did not foresee: retry, then fail loudly
        log.exception("job raised unexpectedly", extra={"job_id": job.id, "tenant": tenant,
                                                       "error_type": type(exc).__name__})
        if job.attempts < ctx.max_attempts:
            job.status = "retrying"
            ctx.store.save_job(job)
            _count(ctx, job, lambda m: m.retried(job.type))
            raise RetryLater(backoff(job.attempts)) from None
        return _finish(ctx, job, error=JobFailed(
            "internal_error", f"The job failed unexpectedly ({type(exc).__name__}); see the worker log for job {job.id}.",
        ).as_error())
    return _finish(ctx, job, result=result)
