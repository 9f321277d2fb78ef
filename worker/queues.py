"""Which ``JobQueue`` the API gets: inline in the store's transaction when the broker is
the store's Redis (the default), Celery's producer on a thread pool otherwise."""

from __future__ import annotations

from tasks.jobs.queue_port import JobQueue
from tasks.settings import Settings
from worker.celery_app import make_celery
from worker.inline_queue import RedisInlineQueue
from worker.publisher import CeleryJobQueue


def make_job_queue(settings: Settings) -> JobQueue:
    app = make_celery(settings)
    if settings.broker_url in (None, settings.redis_url):
        return RedisInlineQueue(app)
    return CeleryJobQueue(app)
