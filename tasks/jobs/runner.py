"""One delivery of a job, from its start to its end: queued -> running -> succeeded | failed
(``retrying`` between attempts).

``run_job`` is everything a Celery task does; it knows nothing of Celery. A ``JobRun`` starts
one of two ways:

- ``from_copy``: the message carries the job as accepted and its sealed request
  (``JobCopy``). A job whose handler needs no provider (``handlers.HANDLERS``) is run from
  that copy, with no lease taken and nothing read first, and its end is written by one
  guarded batch: only if the stored job is still, byte for byte, that copy, no start was
  counted and no run holds the lease, the very case in which a run from the store would
  have run alone. Otherwise nothing is written and the run goes on from the store.
- ``from_store``: take the job's run lease, read the job and its sealed request and count
  the start, in one round trip (``Store.start_job``); run the handler; store its end, a retry
  or a deferral.

Either way the end (the job, its connector, its audit event, its counts, its webhook deliveries, the
lease's release, the deletion of its sealed request) is one atomic write: a job's change is
audited exactly once, by the one write that ends the job, with the actor its request carried. A job is safe to run twice
(at-least-once delivery): a finished job is left as it is, and ``attempts`` counts every start, so a
job that keeps killing its worker ends ``failed`` after ``max_attempts`` instead of looping; a
retryable failure on the last attempt ends it with ``retryable: false``, saying it gave up. Waiting
for a permit is not an attempt, but it is bounded: the seconds a job was deferred are counted, and a
job that would be deferred more than ``DEFERRED_AT_MOST`` in all fails with
``provider_rate_limited`` (contract §8).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from tasks.errors import Deferred, ErrorCode, JobFailed, RetryLater, SecretUnreadable, Taken
from tasks.flows.outcome import Outcome
from tasks.jobs.attempts import (
    DEFER_STEP_AT_MOST,
    DEFERRED_AT_MOST,
    attempts,
    backoff,
    gave_up,
    gave_up_waiting,
    kept_at_most,
)
from tasks.jobs.changes import change_event
from tasks.jobs.context import JobContext
from tasks.jobs.handlers import HANDLERS
from tasks.jobs.queue_port import JobCopy
from tasks.jobs.waiter import inbox_of_request
from tasks.jobs.webhook_delivery import hand_over
from tasks.jobs.webhook_events import job_end_events
from tasks.model.audit import NOBODY, Actor, AuditEvent, actor_of_request
from tasks.model.records import PROVIDER_STEPS, Connector, Job, ProgressStep
from tasks.storage import audit, schema, webhooks
from tasks.storage.batch import Batch
from tasks.storage.job_counters import JobMetrics
from tasks.storage.leases import Lease, RunLeases
from tasks.storage.store import Start
from tasks.storage.webhook_subscriptions import Heard

log = logging.getLogger("authq.jobs")

def run_job(ctx: JobContext, tenant: str, job_id: str, leases: RunLeases | None = None,
            copy: JobCopy | None = None) -> Job | None:
    """Run one delivery of the job: from ``copy`` (its message's) when that ends it, else from
    the store, under the job's run lease when ``leases`` is given (``Taken`` if another run
    holds it). None if the job's record is gone."""
    run = JobRun(ctx, tenant, job_id)
    ended = run.from_copy(copy) if copy is not None else None
    return ended if ended is not None else run.from_store(leases)


class JobRun:
    """One delivery of one job."""

    def __init__(self, ctx: JobContext, tenant: str, job_id: str) -> None:
        self.ctx = ctx
        self.tenant = tenant
        self.job_id = job_id
        # A sealed request already opened (the copy's): reused if the stored one is the same text.
        self._opened: tuple[str, dict[str, Any]] | None = None
        # How long the job is kept once it ends, at most (None: AUTHQ_JOB_TTL_SECONDS).
        self._kept_at_most: int | None = None
        # Who queued the job (its request carries them): the actor of the change its end audits.
        self._actor: Actor = NOBODY
        # The API process waiting for the job's end, if one is (its request names its inbox).
        self._inbox: str | None = None

    # -- the two ways to start ------------------------------------------------------------------

    def from_copy(self, copy: JobCopy) -> Job | None:
        """The job, ended from its message's copy in one round trip; None if nothing was written
        (the job needs a provider, the copy is stale or unreadable, or a retry is due)."""
        accepted = self._accepted(copy)
        if accepted is None:
            return None
        job, body = accepted
        handler = HANDLERS.get(job.type)
        if handler is None or handler.needs_provider(self.ctx, body):
            self._opened = (copy.sealed, body)
            return None
        job.attempts, job.status, job.started_at = 1, "running", self.ctx.now()
        self._actor, self._inbox = actor_of_request(body), inbox_of_request(body)

        def step(name: str) -> None:
            job.progress.append(ProgressStep(step=name, at=self.ctx.now(), attempt=1))

        try:
            end: Outcome | JobFailed = handler.run(self.ctx, job, body, step)
        except JobFailed as exc:
            if exc.retryable:
                return None  # the run from the store stores the retry
            end = exc
        except Exception:  # noqa: BLE001 - nothing was written: the run from the store runs it again, and logs it
            return None
        starts = schema.job_starts(job.tenant, job.id)

        def unchanged_and_unstarted(batch: Batch) -> None:
            batch.expect(schema.job(job.tenant, job.id), copy.job)
            batch.expect_absent(starts)
            batch.expect_absent(schema.job_lease(job.tenant, job.id))
            batch.set(starts, "1")  # this start, counted with the end it made

        return job if self._store_end(job, end, unchanged_and_unstarted) else None

    def from_store(self, leases: RunLeases | None) -> Job | None:
        """The job run from its stored record; ``Taken`` if another run holds its lease."""
        store = self.ctx.store
        if leases is None:
            return self._run(store.start_job(self.tenant, self.job_id), None)
        lease = leases.new(self.tenant, self.job_id)
        start = store.start_job(self.tenant, self.job_id, lease.key, lease.token, leases.ttl_ms)
        if start.taken_ms is not None:
            raise Taken.after(start.taken_ms)
        with leases.holding(lease):
            return self._run(start, lease)

    # -- from the copy ---------------------------------------------------------------------------

    def _accepted(self, copy: JobCopy) -> tuple[Job, dict[str, Any]] | None:
        """The copy's job as accepted and its request, opened; None if it cannot be this job's first run."""
        try:
            accepted = json.loads(copy.job)
            if (not isinstance(accepted, dict) or accepted.get("id") != self.job_id
                    or accepted.get("status") != "queued"):
                return None
            job = Job.model_validate({**accepted, "tenant": self.tenant})
            body = self.ctx.box.open_json(copy.sealed)  # sealed under a key since retired: SecretUnreadable
        except (ValueError, SecretUnreadable):
            return None
        return (job, body) if isinstance(body, dict) else None

    # -- from the store --------------------------------------------------------------------------

    def _run(self, start: Start, lease: Lease | None) -> Job | None:
        job, sealed = start.job, start.sealed
        if job is None:
            log.warning("job record missing (expired or never stored)",
                        extra={"job_id": self.job_id, "tenant": self.tenant})
            return None
        if job.finished:
            return job
        # Starts are counted in Redis as they begin, a run that killed its worker included (the
        # record's own count covers records written before the counter existed).
        job.attempts = max(start.starts, job.attempts + 1)
        if job.attempts > self.ctx.max_attempts:
            job.attempts -= 1  # the starts that ran
            return self._end_started(job, lease, JobFailed(
                ErrorCode.ATTEMPTS_EXHAUSTED,
                f"The job was started {job.attempts} times without finishing (its worker kept dying); giving up."))
        # Running, but not stored as such yet: it is stored ``running`` when it first waits on a
        # provider (PROVIDER_STEPS). A job that never leaves the machine goes from queued (or
        # retrying) to its end in one write; a poller could not have seen it running anyway.
        job.status = "running"
        job.started_at = job.started_at or self.ctx.now()
        job.error = None

        def step(name: str) -> None:
            job.progress.append(ProgressStep(step=name, at=self.ctx.now(), attempt=job.attempts))
            if name in PROVIDER_STEPS:
                self.ctx.store.save_job(job, inbox=self._inbox)

        handler = HANDLERS.get(job.type)
        mark = len(job.progress)
        try:
            if handler is None:
                raise JobFailed(ErrorCode.NOT_SUPPORTED,
                                f"{job.type} jobs are not available in this version of authq yet.")
            if sealed is None:
                raise JobFailed(ErrorCode.INTERNAL_ERROR, "The job's stored request is missing; submit it again.")
            opened = self._opened
            body = opened[1] if opened is not None and opened[0] == sealed else self.ctx.box.open_json(sealed)
            self._kept_at_most = kept_at_most(job, body)
            self._actor, self._inbox = actor_of_request(body), inbox_of_request(body)
            outcome = handler.run(self.ctx, job, body, step)
        except Deferred as deferred:
            if start.deferred + deferred.delay > DEFERRED_AT_MOST:
                return self._end_started(job, lease, gave_up_waiting(start.deferred, deferred))
            raise self._defer(job, mark, deferred) from None
        except JobFailed as exc:
            if exc.retryable and job.attempts < self.ctx.max_attempts:
                job.error = exc.as_error()
                raise self._retry(job, backoff(job.attempts, getattr(exc, "retry_after", None)), exc.code) from None
            return self._end_started(job, lease, gave_up(exc, job.attempts) if exc.retryable else exc)
        except Exception as exc:  # a bug or an outage we did not foresee: retry, then fail loudly
            log.exception("job raised unexpectedly", extra={"job_id": job.id, "tenant": job.tenant,
                                                           "error_type": type(exc).__name__})
            if job.attempts < self.ctx.max_attempts:
                raise self._retry(job, backoff(job.attempts), ErrorCode.INTERNAL_ERROR) from None
            return self._end_started(job, lease, JobFailed(
                ErrorCode.INTERNAL_ERROR,
                f"The job failed unexpectedly ({type(exc).__name__}); see the worker log for job {job.id}; "
                f"gave up after {attempts(job.attempts)}."))
        return self._end_started(job, lease, outcome)

    def _defer(self, job: Job, mark: int, deferred: Deferred) -> Deferred:
        """Waiting for a permit is not an attempt: give the start back; the job is queued again,
        at most ``DEFER_STEP_AT_MOST`` from now, and that wait is added to its deferred seconds."""
        delay = min(deferred.delay, DEFER_STEP_AT_MOST)
        job.attempts -= 1
        job.status = "queued"
        del job.progress[mark:]  # the steps re-run when it does

        def given_back(batch: Batch) -> None:
            batch.incrby(schema.job_starts(job.tenant, job.id), -1)
            # Milliseconds, an integer: Redis 6.2 crashes on INCRBYFLOAT inside a script.
            batch.incrby(schema.job_deferred(job.tenant, job.id), max(1, round(delay * 1000)))

        self.ctx.store.save_job(job, also=given_back, inbox=self._inbox)
        reason = deferred.reason
        self._count(job, lambda m: m.waited(reason))
        log.info("job deferred", extra={"job_id": job.id, "tenant": job.tenant, "reason": reason,
                                        "delay": round(delay, 3)})
        return Deferred(delay, reason)

    def _retry(self, job: Job, delay: float, code: ErrorCode) -> RetryLater:
        """Store the job ``retrying`` (its ``error`` set by the caller, if known) and ask for another run."""
        job.status = "retrying"
        self.ctx.store.save_job(job, inbox=self._inbox)
        self._count(job, lambda m: m.retried(job.type))
        log.info("job will run again", extra={"job_id": job.id, "connector_id": job.connector_id, "tenant": job.tenant,
                                              "attempts": job.attempts, "error_code": code, "delay": round(delay, 3)})
        return RetryLater(delay)

    # -- the end --------------------------------------------------------------------------------

    def _end_started(self, job: Job, lease: Lease | None, end: Outcome | JobFailed) -> Job:
        """Store the end of a run that counted its start (and perhaps holds the lease)."""
        if isinstance(end, JobFailed) and job.type == "authorise" and self._fail_pending_connector(job):
            # (before the job ends: a crash in between re-runs this) The connector exists, failed:
            # its creation is audited as a successful authorise's is.
            end.change = "connector.created"
        if self._store_end(job, end, lease.release_on if lease is not None else None) and lease is not None:
            lease.released_now()  # (unguarded, the end is always written)
        return job

    def _fail_pending_connector(self, job: Job) -> bool:
        """A failed authorise must not leave its connector ``pending`` for ever.

        Only ``pending`` is changed: a reauthorise's connector keeps its working state.
        """
        store = self.ctx.store
        connector = store.connector(job.tenant, job.connector_id) if job.connector_id else None
        if connector is None or connector.status not in ("pending", "failed"):
            return False
        if connector.status == "pending":
            store.save_connector(connector.model_copy(update={"status": "failed", "updated_at": self.ctx.now()}))
        return True

    def _store_end(self, job: Job, end: Outcome | JobFailed, also: Callable[[Batch], None] | None) -> bool:
        """The job's end, its connector and its counts in one atomic batch, with ``also``'s
        writes and guards; False if a guard failed (then nothing was written)."""
        if isinstance(end, JobFailed):
            job.status, job.result, job.error, connector = "failed", None, end.as_error(), None
        else:
            job.status, job.result, job.error, connector = "succeeded", end.result, None, end.connector
        event = change_event(job, end, self._actor)
        job.finished_at = self.ctx.now()
        # Duration: from the first start (or, never started, from creation) to the end.
        seconds = max(0.0, (job.finished_at - (job.started_at or job.created_at)).total_seconds())
        store, subscriptions = self.ctx.store, self.ctx.subscriptions
        # Who hears what, as this process last read it: the batch is guarded on that version, and
        # written again with what is read afresh when it moved (webhook_subscriptions.py).
        heard = subscriptions.heard(store.run, job.tenant)
        while (due := self._write_end(job, end, heard, connector, event, seconds, also)) is None:
            fresh = subscriptions.refresh(store.run, job.tenant)
            if fresh.version == heard.version:
                return False  # another guard failed
            heard = fresh
        if due and self.ctx.webhooks is not None:
            hand_over(self.ctx.webhooks, due, self.ctx.publish_delivery)
        log.info("job finished", extra={"job_id": job.id, "connector_id": job.connector_id, "tenant": job.tenant,
                                        "status": job.status, "error_code": (job.error or {}).get("code"),
                                        "attempts": job.attempts, "seconds": round(seconds, 4)})
        return True

    def _write_end(self, job: Job, end: Outcome | JobFailed, heard: Heard, connector: Connector | None,
                   event: AuditEvent | None, seconds: float, also: Callable[[Batch], None] | None) -> list[str] | None:
        """One try at the end's batch; the webhook deliveries it recorded (members of the due set),
        or None if a guard failed (nothing written)."""
        store, metrics = self.ctx.store, self.ctx.metrics
        events = job_end_events(job, end, lambda: store.connector(job.tenant, job.connector_id or "")) \
            if heard.subscribers else []
        due: list[str] = []

        def with_the_end(batch: Batch) -> None:
            heard.guard(batch)
            if also is not None:
                also(batch)
            if connector is not None:
                store.write_connector(batch, connector)
            if event is not None:
                audit.record(batch, job.tenant, event)
            if metrics is not None:
                metrics.count_finished(batch, job.type, job.status, seconds)
            due[:] = webhooks.record_events(batch, job.tenant, heard.subscribers, events)

        written = store.save_job(job, also=with_the_end, kept_at_most=self._kept_at_most, inbox=self._inbox)
        return due if written else None

    def _count(self, job: Job, record: Callable[[JobMetrics], None]) -> None:
        """Count into the fleet metrics; a metrics failure is logged and never fails the job."""
        if self.ctx.metrics is None:
            return
        try:
            record(self.ctx.metrics)
        except Exception as exc:  # Redis down, a bug: the job's outcome matters more than its count
            log.warning("job metrics not recorded", extra={"job_id": job.id, "tenant": job.tenant,
                                                           "error_type": type(exc).__name__})
