"""The job-throughput reference: a no-op Celery task on authq's broker and worker settings.

``celery -A bench.noop worker --pool=solo -Q authq.interactive,authq.background`` runs it
with exactly ``worker.config.celery_config(Settings())`` (the AUTHQ_* environment, as
authq's workers read it: acks late, prefetch 1, ignored results, JSON, the same queues).
authq ignores task results, so the task marks its own completion: one RPUSH of
``"<index> <unix time>"`` to ``DONE_KEY`` — the one Redis write a job cannot do without — or,
given a ``reply`` key, to that key, where a client waiting for this task is blocked
(``BLPOP``: ``bench.roundtrip``'s ``.delay().get()``).
It logs as a plain Celery worker does at ``--loglevel=INFO`` (two lines a task): authq's
logging set-up belongs to authq's worker app (``worker/lifecycle.py``), which this process
never builds. It does load the code of authq's workers (``worker.celery_app``, the job
runner and the flows it imports), as it always has: the memory figure compares what an
authq worker keeps beyond the same code loaded.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from celery import Celery
from celery.signals import worker_ready

import worker.celery_app  # noqa: F401 - the same code loaded as in an authq worker (see above)
from tasks.settings import Settings
from worker.config import celery_config

NOOP = "bench.noop"
DONE_KEY = "bench:noop:done"
REPLY_PREFIX = "bench:noop:reply:"
READY_KEY = "bench:noop:ready"  # bench.procs.NOOP_READY_KEY

app = Celery("authq-bench-noop", set_as_current=False)


class _Reference:
    """The settings this worker was configured with (read once, from the environment, by
    Celery's first look at its configuration) and its Redis client."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.settings: Settings | None = None
        self.client: redis.Redis | None = None


_reference = _Reference()


def _configure(sender: Celery, **_: Any) -> None:
    settings = Settings()
    sender.config_from_object(celery_config(settings))
    _reference.settings = settings


app.on_configure.connect(_configure, weak=False)


def _redis() -> redis.Redis:
    with _reference.lock:
        if _reference.client is None:
            app.conf  # noqa: B018 - configure from the environment first
            assert _reference.settings is not None
            _reference.client = redis.Redis.from_url(_reference.settings.require_redis_url())
        return _reference.client


def reply_key(index: int) -> str:
    return f"{REPLY_PREFIX}{index}"


@app.task(name=NOOP, acks_late=True)
def noop(index: int, reply: str | None = None) -> None:
    _redis().rpush(reply or DONE_KEY, f"{index} {time.time():.6f}")


@worker_ready.connect(weak=False)
def _ready(sender: Any = None, **_: Any) -> None:
    if getattr(sender, "app", None) is app:
        _redis().sadd(READY_KEY, getattr(sender, "hostname", "noop"))
