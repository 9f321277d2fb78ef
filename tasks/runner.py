"""One job's life: queued -> running -> succeeded | failed (retrying between attempts).

``run_job`` is everything a Celery task does; it knows nothing of Celery. It is safe to
call twice for the same job (at-least-once delivery): a finished job is left as it is,
and ``attempts`` counts every start, so a job that keeps killing its worker ends
``failed`` after ``max_attempts`` instead of looping.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from . import keys
from .authorise import authorise, reauthorise
from .batch import Batch
from .callbacks import authenticate, woo_app_auth
from .context import JobContext
from .errors import ConfigError, Deferred, JobFailed, RetryLater
from .jobqueue import JobCopy
from .leases import Lease, RunLeases, Taken, lease_key
from .metrics import JobMetrics
from .outcome import Outcome
from .records import Connector, Job, ProgressStep
from .refresh import refresh
from .store import Start

log = logging.getLogger("authq.jobs")

Handler = Callable[[JobContext, Job, dict[str, Any], Callable[[str], None]], Outcome | None]
HANDLERS: dict[str, Handler] = {
    "authorise": authorise, "reauthorise": reauthorise, "authenticate": authenticate,
    "woo_app_auth": woo_app_auth, "refresh": refresh,
}
# Handlers that can tell, before writing anything, that a job needs nobody else (None if
# it does): the jobs ``run_at_once`` may run from their message's copy.
LOCAL_HANDLERS: dict[str, Handler] = {"authorise": partial(authorise, local_only=True)}
MAX_BACKOFF = 60.0
# Steps that start a call to the provider (seconds, perhaps retried) are stored the moment
# they begin, so a poller sees what the job is waiting on. Any other step is local work
# (a Redis lookup, building the connector: microseconds) and is stored with the job's next
# write: a job that never leaves the machine is written once, when it ends.
PROVIDER_STEPS = frozenset({"token_request", "token_exchange", "credential_check", "token_refresh"})


def backoff(attempt: int, hint: float | None = None) -> float:
    """Exponential backoff (1, 2, 4 … s, capped), or the provider's Retry-After when larger."""
    delay = min(MAX_BACKOFF, 2.0 ** max(0, attempt - 1))
    return min(MAX_BACKOFF, max(delay, hint or 0.0))


def _retry_later(job: Job, delay: float, error_code: str) -> RetryLater:
    log.info("job will run again", extra={"job_id": job.id, "connector_id": job.connector_id, "tenant": job.tenant,
                                          "attempts": job.attempts, "error_code": error_code,
                                          "delay": round(delay, 3)})
    return RetryLater(delay)


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
            error: dict[str, Any] | None = None, connector: Connector | None = None,
            guard: Callable[[Batch], None] | None = None) -> Job | None:
    """Store the job's end (None if ``guard``'s conditions failed: then nothing was written)."""
    if error and job.type == "authorise" and guard is None:  # (a guarded end was never started before)
        _fail_pending_connector(ctx, job)  # before the job ends: a crash in between re-runs this
    job.status = "failed" if error else "succeeded"
    job.result = result
    job.error = error
    job.finished_at = ctx.now()
    # Duration: from the first start (or, never started, from creation) to the end.
    seconds = max(0.0, (job.finished_at - (job.started_at or job.created_at)).total_seconds())
    metrics = ctx.metrics

    def with_the_end(batch: Batch) -> None:
        # One atomic batch: the connector, the job's end, its counts and the lease's release.
        if guard is not None:
            guard(batch)
        if connector is not None:
            ctx.store.write_connector(batch, connector)
        if metrics is not None:
            metrics.count_finished(batch, job.type, job.status, seconds)
        if lease is not None:
            lease.release_on(batch)

    if not ctx.store.save_job(job, also=with_the_end):
        return None
    if lease is not None:
        lease.released_now()
    log.info("job finished", extra={"job_id": job.id, "connector_id": job.connector_id, "tenant": job.tenant,
                                    "status": job.status, "error_code": (error or {}).get("code"),
                                    "attempts": job.attempts, "seconds": round(seconds, 4)})
    return job


def run_job(ctx: JobContext, tenant: str, job_id: str, leases: RunLeases | None = None,
            copy: JobCopy | None = None) -> Job | None:
    """Run the job once (or leave it, if it has ended). With ``leases``, under the job's run
    lease, taken in the round trip that reads the job; ``Taken`` if another run holds it.
    With ``copy`` (its message's), first try to run it at once (``run_at_once``)."""
    if copy is not None:
        ended = run_at_once(ctx, tenant, job_id, copy)
        if ended is not None:
            return ended
    if leases is None:
        return _run(ctx, tenant, job_id, ctx.store.start_job(tenant, job_id), None)
    lease = leases.new(tenant, job_id)
    start = ctx.store.start_job(tenant, job_id, lease.key, lease.token, leases.ttl_ms)
    if start.taken_ms is not None:
        raise Taken.after(start.taken_ms)
    with leases.holding(lease):
        return _run(ctx, tenant, job_id, start, lease)


class _NotLocal(Exception):
    """A local handler reached a provider step (it should have answered None before)."""


def run_at_once(ctx: JobContext, tenant: str, job_id: str, copy: JobCopy) -> Job | None:
    """A job's first delivery, when it needs nobody else: run it from its message's copy and
    store its end in one round trip, with no lease and nothing read first.

    The end is written only if, when it lands, the stored job is still that copy (byte for
    byte), no run has started it (no start count) and none holds its lease: exactly the
    case in which the usual way would have read the copy and run alone. Otherwise nothing
    is written and None is returned, and the job runs the usual way (so does a job that
    needs a provider or the end user, or fails in a way that is retried)."""
    try:
        accepted = json.loads(copy.job)
        handler = LOCAL_HANDLERS.get(accepted.get("type")) if isinstance(accepted, dict) else None
        if handler is None or accepted.get("id") != job_id or accepted.get("status") != "queued":
            return None
        job = Job.model_validate({**accepted, "tenant": tenant})
        body = ctx.box.open_json(copy.sealed)  # ConfigError: sealed under a key since retired
    except (ValueError, ConfigError):
        return None
    job.attempts, job.status, job.started_at = 1, "running", ctx.now()

    def step(name: str) -> None:
        if name in PROVIDER_STEPS:
            raise _NotLocal(name)
        job.progress.append(ProgressStep(step=name, at=ctx.now()))

    try:
        outcome = handler(ctx, job, body, step)
    except JobFailed as exc:
        if exc.retryable:
            return None
        outcome, error = None, exc.as_error()
    except Exception:  # noqa: BLE001 - nothing was written: the usual way runs it again, and logs it
        return None
    else:
        if outcome is None:
            return None
        error = None
    starts = keys.job_starts(tenant, job_id)

    def unchanged_and_unstarted(batch: Batch) -> None:
        batch.expect(keys.job(tenant, job_id), copy.job)
        batch.expect_absent(starts)
        batch.expect_absent(lease_key(tenant, job_id))
        batch.set(starts, "1")  # this start, counted with the end it made

    return _finish(ctx, job, None, result=outcome.result if outcome else None, error=error,
                   connector=outcome.connector if outcome else None, guard=unchanged_and_unstarted)


def _run(ctx: JobContext, tenant: str, job_id: str, start: Start, lease: Lease | None) -> Job | None:
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
        return _finish(ctx, job, lease, error=JobFailed(
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
        body = ctx.box.open_json(sealed)
        outcome = handler(ctx, job, body, step)
        assert outcome is not None  # (only a local_only handler answers None)
    except Deferred as deferred:
        # Waiting for a permit is not an attempt: give the start back and queue again.
        job.attempts -= 1
        job.status = "queued"
        del job.progress[mark:]  # the steps re-run when it does
        ctx.store.save_job(job, also=lambda batch: batch.incrby(keys.job_starts(job.tenant, job.id), -1))
        reason = deferred.reason
        _count(ctx, job, lambda m: m.waited(reason))
        log.info("job deferred", extra={"job_id": job.id, "tenant": tenant, "reason": deferred.reason,
                                        "delay": round(deferred.delay, 3)})
        raise
    except JobFailed as exc:
        if exc.retryable and job.attempts < ctx.max_attempts:
            job.status = "retrying"
            job.error = exc.as_error()
            ctx.store.save_job(job)
            _count(ctx, job, lambda m: m.retried(job.type))
            raise _retry_later(job, backoff(job.attempts, getattr(exc, "retry_after", None)), exc.code) from None
        return _finish(ctx, job, lease, error=exc.as_error())
    except Exception as exc:  # a bug or an outage we did not foresee: retry, then fail loudly
        log.exception("job raised unexpectedly", extra={"job_id": job.id, "tenant": tenant,
                                                       "error_type": type(exc).__name__})
        if job.attempts < ctx.max_attempts:
            job.status = "retrying"
            ctx.store.save_job(job)
            _count(ctx, job, lambda m: m.retried(job.type))
            raise _retry_later(job, backoff(job.attempts), "internal_error") from None
        return _finish(ctx, job, lease, error=JobFailed(
            "internal_error", f"The job failed unexpectedly ({type(exc).__name__}); see the worker log for job {job.id}.",
        ).as_error())
    return _finish(ctx, job, lease, result=outcome.result, connector=outcome.connector)
