"""A job's first delivery run from its message's copy, ended in one round trip.

The broker message carries the job as accepted and its sealed request (``jobqueue.JobCopy``).
A job that needs nobody else (no provider, no end user) is run from that copy, with no
lease taken and nothing read first, and its end is written by one guarded batch: only if
the stored job is still, byte for byte, that copy, no start was counted and no run holds
the lease. Any other case writes nothing, and the job runs the usual way (``runner.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from tasks.errors import ConfigError, JobFailed
from tasks.flows.authorise import authorise, needs_nobody_else
from tasks.flows.outcome import Outcome
from tasks.jobs.context import JobContext
from tasks.jobs.ending import finish
from tasks.jobs.queue_port import JobCopy
from tasks.model.records import PROVIDER_STEPS, Job, ProgressStep
from tasks.storage import schema
from tasks.storage.batch import Batch

Handler = Callable[[JobContext, Job, dict[str, Any], Callable[[str], None]], Outcome | None]

# Jobs that may need nobody else, with the test that tells from their request, and their
# handler in a mode that writes nothing and answers None if the job needs someone after all:
# the jobs ``run_at_once`` runs from their message's copy.
LOCAL: dict[str, tuple[Callable[[JobContext, dict[str, Any]], bool], Handler]] = {
    "authorise": (needs_nobody_else, partial(authorise, local_only=True)),
}


class _NotLocal(Exception):
    """A local handler reached a provider step (it should have answered None before)."""


@dataclass
class Opened:
    """A message's copy, read: the job as accepted, its request opened."""

    copy: JobCopy
    job: Job
    body: dict[str, Any]
    local: bool

    @property
    def request(self) -> tuple[str, dict[str, Any]]:
        return self.copy.sealed, self.body


def open_copy(ctx: JobContext, tenant: str, job_id: str, copy: JobCopy) -> Opened | None:
    try:
        accepted = json.loads(copy.job)
        if not isinstance(accepted, dict) or accepted.get("id") != job_id or accepted.get("status") != "queued":
            return None
        job = Job.model_validate({**accepted, "tenant": tenant})
        body = ctx.box.open_json(copy.sealed)  # ConfigError: sealed under a key since retired
    except (ValueError, ConfigError):
        return None
    local = LOCAL.get(job.type)
    return Opened(copy, job, body, local is not None and isinstance(body, dict) and local[0](ctx, body))


def run_at_once(ctx: JobContext, tenant: str, job_id: str, copy: JobCopy) -> Job | None:
    """A job's first delivery, when it needs nobody else: run it from its message's copy and
    store its end in one round trip, with no lease and nothing read first.

    The end is written only if, when it lands, the stored job is still that copy (byte for
    byte), no run has started it (no start count) and none holds its lease: exactly the
    case in which the usual way would have read the copy and run alone. Otherwise nothing
    is written and None is returned, and the job runs the usual way (so does a job that
    needs a provider or the end user, or fails in a way that is retried)."""
    opened = open_copy(ctx, tenant, job_id, copy)
    return end_at_once(ctx, opened) if opened is not None and opened.local else None


def end_at_once(ctx: JobContext, opened: Opened) -> Job | None:
    job, copy = opened.job, opened.copy
    handler = LOCAL[job.type][1]
    job.attempts, job.status, job.started_at = 1, "running", ctx.now()

    def step(name: str) -> None:
        if name in PROVIDER_STEPS:
            raise _NotLocal(name)
        job.progress.append(ProgressStep(step=name, at=ctx.now()))

    try:
        outcome = handler(ctx, job, opened.body, step)
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
    starts = schema.job_starts(job.tenant, job.id)

    def unchanged_and_unstarted(batch: Batch) -> None:
        batch.expect(schema.job(job.tenant, job.id), copy.job)
        batch.expect_absent(starts)
        batch.expect_absent(schema.job_lease(job.tenant, job.id))
        batch.set(starts, "1")  # this start, counted with the end it made

    return finish(ctx, job, None, result=outcome.result if outcome else None, error=error,
                   connector=outcome.connector if outcome else None, guard=unchanged_and_unstarted)
