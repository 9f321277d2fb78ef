"""Which ``JobQueue`` the API gets: inline in the store's transaction when the broker is
the store's Redis (the default), Celery's producer on a thread pool otherwise.

Neither is worker machinery: no worker app, no task, nothing connected to Celery's worker
signals, no thread. The inline queue needs only ``worker.wire``; Celery itself is imported
only for another broker.
"""

from __future__ import annotations

from tasks.jobs.queue_port import JobQueue
from tasks.settings import Settings
from worker.inline_queue import RedisInlineQueue


def make_job_queue(settings: Settings) -> JobQueue:
    if settings.broker_is_store:
        return RedisInlineQueue()
    # Imported here: an API whose broker is the store never loads Celery.
    from worker.publisher import CeleryJobQueue, producer_app

    return CeleryJobQueue(producer_app(settings))
