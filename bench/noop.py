"""The job-throughput reference: a no-op Celery task on authq's broker and worker settings.

``celery -A bench.noop worker --pool=solo -Q authq.interactive,authq.background`` runs it
with exactly ``worker.celery_app.celery_config(Settings())`` (the AUTHQ_* environment, as
authq's workers read it: acks late, prefetch 1, ignored results, JSON, the same queues).
authq ignores task results, so the task marks its own completion: one RPUSH of
``"<index> <unix time>"`` to ``DONE_KEY`` — the one Redis write a job cannot do without.
It logs as a plain Celery worker does at ``--loglevel=INFO`` (two lines a task): authq's
logging set-up is for authq's own workers (``worker/background.py``). Until session 3
it applied here too, by import, so this worker logged through authq's JSON formatter.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from celery import Celery
from celery.signals import worker_ready

from tasks.settings import Settings
from worker.celery_app import celery_config

NOOP = "bench.noop"
DONE_KEY = "bench:noop:done"
READY_KEY = "bench:noop:ready"  # bench.procs.NOOP_READY_KEY

app = Celery("authq-bench-noop", set_as_current=False)


def _configure(sender: Celery, **_: Any) -> None:
    settings = Settings()
    sender.config_from_object(celery_config(settings))
    sender.bench_redis_url = settings.require_redis_url()  # type: ignore[attr-defined]


app.on_configure.connect(_configure, weak=False)

_lock = threading.Lock()
_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    with _lock:
        if _client is None:
            app.conf  # noqa: B018 - configure from the environment first
            _client = redis.Redis.from_url(app.bench_redis_url)  # type: ignore[attr-defined]
        return _client


@app.task(name=NOOP, acks_late=True)
def noop(index: int) -> None:
    _redis().rpush(DONE_KEY, f"{index} {time.time():.6f}")


@worker_ready.connect(weak=False)
def _ready(sender: Any = None, **_: Any) -> None:
    if getattr(sender, "app", None) is app:
        _redis().sadd(READY_KEY, getattr(sender, "hostname", "noop"))
