"""authq's Celery workers: ``celery -A worker worker -Q authq.interactive,authq.background``."""

from worker.celery_app import make_celery

app = make_celery()

__all__ = ["app", "make_celery"]
