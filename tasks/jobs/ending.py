"""A job's end: its record, its connector, its counts and its lease's release, in one write.

Shared by the usual run (``runner.py``) and the run from a message's copy (``at_once.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tasks.jobs.context import JobContext
from tasks.model.records import Connector, Job
from tasks.storage.batch import Batch
from tasks.storage.job_counters import JobMetrics
from tasks.storage.leases import Lease

log = logging.getLogger("authq.jobs")


def fail_pending_connector(ctx: JobContext, job: Job) -> None:
    """A failed authorise must not leave its connector ``pending`` for ever.

    Only ``pending`` is changed: a reauthorise's connector keeps its working state.
    """
    connector = ctx.store.connector(job.tenant, job.connector_id) if job.connector_id else None
    if connector is not None and connector.status == "pending":
        ctx.store.save_connector(connector.model_copy(update={"status": "failed", "updated_at": ctx.now()}))


def count(ctx: JobContext, job: Job, record: Callable[[JobMetrics], None]) -> None:
    """Count into the fleet metrics; a metrics failure is logged and never fails the job."""
    if ctx.metrics is None:
        return
    try:
        record(ctx.metrics)
    except Exception as exc:  # Redis down, a bug: the job's outcome matters more than its count
        log.warning("job metrics not recorded", extra={"job_id": job.id, "tenant": job.tenant,
                                                       "error_type": type(exc).__name__})


def finish(ctx: JobContext, job: Job, lease: Lease | None, *, result: dict[str, Any] | None = None,
           error: dict[str, Any] | None = None, connector: Connector | None = None,
           guard: Callable[[Batch], None] | None = None) -> Job | None:
    """Store the job's end (None if ``guard``'s conditions failed: then nothing was written)."""
    if error and job.type == "authorise" and guard is None:  # (a guarded end was never started before)
        fail_pending_connector(ctx, job)  # before the job ends: a crash in between re-runs this
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
