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

from redis.client import Pipeline

from .authorise import authorise, reauthorise
from .callbacks import authenticate, woo_app_auth
from .context import JobContext
from .errors import Deferred, JobFailed, RetryLater
from .leases import Lease, RunLeases
from .metrics import JobMetrics
from .outcome import Outcome
from .records import Connector, Job, ProgressStep
from .refresh import refresh

log = logging.getLogger("authq.jobs")

Handler = Callable[[JobContext, Job, dict[str, Any], Callable[[str], None]], Outcome]
HANDLERS: dict[str, Handler] = {
    "authorise": authorise, "reauthorise": reauthorise, "authenticate": authenticate,
    "woo_app_auth": woo_app_auth, "refresh": refresh,
}
MAX_BACKOFF = 60.0
# Steps that start a call to the provider (seconds, perhaps retried) are stored the moment
# they begin, so a poller sees what the job is waiting on. Any other step is local work
# (a Redis lookup, building the connector: microseconds) and is stored with the job's next
# write: a job that never leaves the machine is written twice (running, then ended).
PROVIDER_STEPS = frozenset({"token_request", "token_exchange", "credential_check", "token_refresh"})


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


def _finish(ctx: JobContext, job: Job, lease: Lease | None, *, result: dict[str, Any] | None = None,
            error: dict[str, Any] | None = None, connector: Connector | None = None) -> Job:
    if error and job.type == "authorise":
        _fail_pending_connector(ctx, job)  # before the job ends: a crash in between re-runs this
    job.status = "failed" if error else "succeeded"
    job.result = result
    job.error = error
    job.finished_at = ctx.now()
    # Duration: from the first start (or, never started, from creation) to the end.
    seconds = max(0.0, (job.finished_at - (job.started_at or job.created_at)).total_seconds())
    metrics = ctx.metrics

    def with_the_end(pipe: Pipeline) -> None:
        # One transaction: the connector, the job's end, its counts and the lease's release.
        if connector is not None:
            ctx.store.write_connector(pipe, connector)
        if metrics is not None:
            metrics.count_finished(pipe, job.type, job.status, seconds)
        if lease is not None:
            lease.release_on(pipe)

    ctx.store.save_job(job, also=with_the_end)
    if lease is not None:
        lease.released_now()
    log.info("job finished", extra={"job_id": job.id, "connector_id": job.connector_id, "tenant": job.tenant,
                                    "status": job.status, "error_code": (error or {}).get("code")})
    return job


def run_job(ctx: JobContext, tenant: str, job_id: str, leases: RunLeases | None = None) -> Job | None:
    """Run the job once (or leave it, if it has ended). With ``leases``, under the job's run
    lease, taken in the round trip that reads the job; ``Taken`` if another run holds it."""
    if leases is None:
        job, sealed = ctx.store.job_and_submission(tenant, job_id)
        return _run(ctx, tenant, job_id, job, sealed, None)
    with leases.hold(tenant, job_id, read=ctx.store.job_keys(tenant, job_id)) as lease:
        job, sealed = ctx.store.parse_job_and_submission(tenant, *lease.read)
        return _run(ctx, tenant, job_id, job, sealed, lease)


def _run(ctx: JobContext, tenant: str, job_id: str, job: Job | None, sealed: str | None,
         lease: Lease | None) -> Job | None:
    if job is None:
        log.warning("job record missing (expired or never stored)", extra={"job_id": job_id, "tenant": tenant})
        return None
    if job.finished:
        return job
    if job.attempts >= ctx.max_attempts:
        return _finish(ctx, job, lease, error=JobFailed(
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
        if name in PROVIDER_STEPS:
            ctx.store.save_job(job)

    handler = HANDLERS.get(job.type)
    mark = len(job.progress)
    try:
        if handler is None:
            raise JobFailed("not_supported", f"{job.type} jobs are not available in this version of authq yet.")
        if sealed is None:
            raise JobFailed("internal_error", "The job's stored request is missing; submit it again.")
        body = ctx.box.open_json(sealed)
        outcome = handler(ctx, job, body, step)
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
        return _finish(ctx, job, lease, error=exc.as_error())
    except Exception as exc:  # a bug or an outage we did not foresee: retry, then fail loudly
        log.exception("job raised unexpectedly", extra={"job_id": job.id, "tenant": tenant,
                                                       "error_type": type(exc).__name__})
        if job.attempts < ctx.max_attempts:
            job.status = "retrying"
            ctx.store.save_job(job)
            _count(ctx, job, lambda m: m.retried(job.type))
            raise RetryLater(backoff(job.attempts)) from None
        return _finish(ctx, job, lease, error=JobFailed(
            "internal_error", f"The job failed unexpectedly ({type(exc).__name__}); see the worker log for job {job.id}.",
        ).as_error())
    return _finish(ctx, job, lease, result=outcome.result, connector=outcome.connector)
