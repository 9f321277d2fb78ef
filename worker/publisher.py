"""The API's queue when the broker is not the store's Redis (``amqp://``, another Redis):
Celery's producer, from the asyncio API without blocking its event loop.

Celery's ``send_task`` is blocking network I/O; it runs on a small thread pool, so a slow
broker delays that request only, never the loop.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from celery import Celery

from tasks.jobs.queue_port import QUEUE_OF_TYPE, JobCopy, kwargs_repr, message_kwargs
from tasks.settings import Settings
from worker.config import celery_config
from worker.wire import RUN_JOB


def producer_app(settings: Settings) -> Celery:
    """A Celery app that only publishes: authq's configuration, no task, nothing connected to
    a worker's signals. It connects to the broker on its first message."""
    app = Celery("authq", set_as_current=False)
    app.config_from_object(celery_config(settings))
    return app


class CeleryJobQueue:
    def __init__(self, app: Celery, threads: int = 4) -> None:
        self.app = app
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="authq-publish")

    def _publish(self, tenant: str, job_id: str, job_type: str, request_id: str | None,
                 copy: JobCopy | None) -> None:
        self.app.send_task(RUN_JOB, args=(tenant, job_id), kwargs=message_kwargs(request_id, copy),
                           kwargsrepr=kwargs_repr(request_id), queue=QUEUE_OF_TYPE[job_type],
                           retry=True, retry_policy={"max_retries": 3, "interval_start": 0.2,
                                                     "interval_step": 0.5, "interval_max": 2})

    async def enqueue(self, tenant: str, job_id: str, job_type: str, request_id: str | None = None,
                      copy: JobCopy | None = None) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._publish, tenant, job_id, job_type, request_id, copy)

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.app.close()
