"""The Celery task: a thin wrapper that passes ids to ``tasks.jobs.runner``.

Registering it starts nothing; what it needs (the process's job context and leases) it
takes from the ``WorkerRuntime`` it was registered with."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import NoReturn

import redis
from celery import Celery, Task
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from tasks.errors import RetryLater, Taken
from tasks.jobs.queue_port import JobCopy
from tasks.jobs.runner import run_job
from tasks.telemetry.log_fields import log_context
from worker.bootstrap import WorkerRuntime
from worker.timings import MAX_COUNTDOWN
from worker.wire import RUN_JOB

log = logging.getLogger("authq.worker")
# Redis (store or broker) unreachable or restarting: not the job's fault, and no attempt of it.
OUTAGE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OperationalError)
# Publishing a retry rides out a Redis restart instead of failing at the first refusal.
PUBLISH_RETRY = {"max_retries": 30, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2.0}
OUTAGE_WAIT_SECONDS = 15.0


def _wait_for_redis(client: redis.Redis, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.ping():
                return
        except redis.RedisError:
            pass
        time.sleep(0.5)


def _again(task: Task, delay: float) -> NoReturn:
    """Run the job again in ``delay`` s; raises Celery's ``Retry`` (or ``Reject``, requeueing).

    The countdown is capped at ``MAX_COUNTDOWN``: a longer wait is taken in steps.
    """
    try:
        raise task.retry(countdown=min(delay, MAX_COUNTDOWN), retry=True, retry_policy=PUBLISH_RETRY)
    except Reject:
        # Celery could not publish the retry and would drop the message (Reject without
        # requeue), leaving the job ``retrying`` for ever: keep the message instead.
        raise Reject("retry not published", requeue=True) from None


def register_run_job(app: Celery, runtime: WorkerRuntime) -> None:
    """Add ``authq.run_job`` to ``app``, running jobs with ``runtime``'s context and leases."""

    def run_job_task(self: Task, tenant: str, job_id: str, request_id: str | None = None,
                     job: str | None = None, sealed: str | None = None) -> None:
        ctx = runtime.context()
        try:
            # Under the job's lease: never two runs at once, whatever the broker delivers twice.
            # Every line of the run carries the id of the request that submitted the job.
            with log_context(request_id=request_id):
                run_job(ctx, tenant, job_id, runtime.leases(),
                        JobCopy(job, sealed) if job is not None and sealed is not None else None)
        except Taken as taken:
            log.info("job already running elsewhere; trying again later",
                     extra={"job_id": job_id, "tenant": tenant, "delay": round(taken.delay, 3)})
            _again(self, taken.delay)
        except RetryLater as later:
            _again(self, later.delay)
        except OUTAGE:
            # Requeue rather than fail: an acked message here would leave the job unfinished
            # for ever. If Redis is still away, the reject fails too and the message stays
            # unacked, to be restored by the broker's sweep once Redis is back.
            log.warning("Redis unreachable during a job; requeueing it", exc_info=True,
                        extra={"job_id": job_id, "tenant": tenant})
            _wait_for_redis(ctx.store.redis, OUTAGE_WAIT_SECONDS)
            with contextlib.suppress(redis.RedisError):
                runtime.leases().settle()  # or the requeued job would wait for its lease to expire
            raise Reject("Redis unreachable", requeue=True) from None

    # Called rather than used as a decorator: Celery is untyped, and its decorator would leave
    # the function untyped for mypy too. (The app keeps the task; the returned proxy is not needed.)
    app.task(name=RUN_JOB, bind=True, max_retries=None, acks_late=True)(run_job_task)


__all__ = ["RUN_JOB", "register_run_job"]
