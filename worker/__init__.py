"""authq's Celery workers: ``celery -A worker worker -Q authq.interactive,authq.background``.

Importing this package builds nothing. ``worker.app``, which ``celery -A worker`` looks
up, is authq's worker app (``worker.celery_app.make_celery``), built on first access.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celery import Celery

_lock = threading.Lock()
_app: Celery | None = None


def __getattr__(name: str) -> Celery:
    global _app
    if name != "app":
        raise AttributeError(f"module 'worker' has no attribute {name!r}")
    with _lock:
        if _app is None:
            from worker.celery_app import make_celery

            _app = make_celery()
        return _app


__all__ = ["app"]
