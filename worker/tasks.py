"""The Celery task: a thin wrapper that passes ids to ``tasks.runner``."""

from __future__ import annotations

from celery import Celery, Task

from tasks.errors import RetryLater
from tasks.jobqueue import QUEUE_OF_TYPE
from tasks.runner import run_job

from .limits import MAX_COUNTDOWN
from .context import context_for

RUN_JOB = "authq.run_job"


def register(app: Celery) -> None:
    @app.task(name=RUN_JOB, bind=True, max_retries=None, acks_late=True)
    def run_job_task(self: Task, tenant: str, job_id: str) -> None:
        try:
            run_job(context_for(self.app), tenant, job_id)
        except RetryLater as later:
            # Never count down past the broker's visibility timeout, or the task would be
            # redelivered while it waits and run twice; a longer wait is taken in steps.
            raise self.retry(countdown=min(later.delay, MAX_COUNTDOWN)) from None

    from .background import start_background  # heartbeat and the refresh scan

    start_background(app)


def publisher(app: Celery):  # type: ignore[no-untyped-def]
    """A blocking ``publish(tenant, job_id, job_type)`` for jobs a worker creates itself."""
    def publish(tenant: str, job_id: str, job_type: str) -> None:
        app.send_task(RUN_JOB, args=(tenant, job_id), queue=QUEUE_OF_TYPE[job_type])

    return publish


__all__ = ["RUN_JOB", "publisher", "register"]
