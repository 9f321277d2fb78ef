"""Keeping a live worker's messages its own, so that a dead worker's become anybody's quickly.

kombu's Redis transport emulates acknowledgements: a delivered message is written to the
``unacked`` hash, scored in the ``unacked_index`` zset with the time of delivery, and
removed when acked. Any consumer's periodic ``restore_visible`` sweep puts back on its queue
every message whose score is older than ``visibility_timeout`` — that is how the job of a
SIGKILLed worker (which never acks) runs again. Left alone, that clock starts at delivery,
so the timeout must exceed the longest job and every countdown, and a dead worker's job
waits that long (it was 1 h by default, 90 s here before).

Instead each worker, from its heartbeat thread, re-scores the messages it holds unacked
(the job it runs, and countdowns it keeps in memory) every few seconds: a live worker's
messages never look abandoned however long they take, and the timeout can be short. A
killed worker's messages stop being renewed and are back on their queue within
``VISIBILITY_TIMEOUT`` + ``RESTORE_EVERY`` seconds (``ZADD XX``: an acked message is never
brought back).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from celery import Celery

from tasks.storage.leases import RunLeases
from worker.bootstrap import context_for

_lock = threading.Lock()
_leases: dict[int, tuple[int, RunLeases]] = {}


def leases_for(app: Celery) -> RunLeases:
    """The process's job leases (renewed by its heartbeat thread)."""
    pid = os.getpid()
    with _lock:
        cached = _leases.get(id(app))
        if cached is None or cached[0] != pid:
            cached = (pid, RunLeases(context_for(app).store.redis))
            _leases[id(app)] = cached
        return cached[1]


def _unacked_tags(qos: Any) -> list[str]:
    # The consumer's thread changes these while we read them: copy, and try again if it
    # changed under us (the next beat is a few seconds away anyway).
    for _ in range(5):
        try:
            dirty = set(qos._dirty)
            return [tag for tag in list(qos._delivered) if tag not in dirty]
        except RuntimeError:
            continue
    return []


def renew_deliveries(consumer: Any) -> int:
    """Re-score this worker's unacked messages in the Redis transport's index; returns how many.

    Other transports (AMQP) redeliver when the consumer's connection closes: nothing to do.
    """
    channel = getattr(getattr(consumer, "task_consumer", None), "channel", None)
    qos = getattr(channel, "qos", None)
    index_key = getattr(qos, "unacked_index_key", None) if qos is not None else None
    if channel is None or not index_key:
        return 0
    tags = _unacked_tags(qos)
    if not tags:
        return 0
    now = time.time()
    with channel.conn_or_acquire() as client:  # a client on the channel's own (thread-safe) pool
        client.zadd(index_key, {tag: now for tag in tags}, xx=True)
    return len(tags)
