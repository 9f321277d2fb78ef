"""The heartbeat: keeping a live worker's messages and leases its own, so that a dead
worker's become anybody's quickly.

kombu's Redis transport emulates acknowledgements: a delivered message is written to the
``unacked`` hash, scored in the ``unacked_index`` zset with the time of delivery, and
removed when acked. Any consumer's periodic ``restore_visible`` sweep puts back on its queue
every message whose score is older than ``visibility_timeout`` — that is how the job of a
SIGKILLed worker (which never acks) runs again. Left alone, that clock starts at delivery,
so the timeout must exceed the longest job and every countdown, and a dead worker's job
waits that long (it was 1 h by default, 90 s here before).

Instead each worker, from its heartbeat thread, re-scores the messages it holds unacked
(the job it runs, and countdowns it keeps in memory; ``worker.wire.renew_deliveries``)
every ``HEARTBEAT_EVERY`` seconds: a live worker's messages never look abandoned however
long they take, and the timeout can be short. A killed worker's messages stop being renewed
and are back on their queue within ``VISIBILITY_TIMEOUT`` + ``RESTORE_EVERY`` seconds
(``worker/timings.py``). The same beat renews the run leases of the jobs it runs
(``tasks.storage.leases``) and records the worker as alive, for ``/readyz``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from worker.bootstrap import WorkerRuntime
from worker.timings import RENEW_EVERY
from worker.wire import renew_deliveries

log = logging.getLogger("authq.worker")
HEARTBEAT_EVERY = RENEW_EVERY


def beat(runtime: WorkerRuntime, name: str, consumer: Any, stop: threading.Event) -> None:
    """Until ``stop``: the heartbeat of the worker ``name`` whose Celery consumer is ``consumer``."""
    while not stop.is_set():
        try:
            runtime.context().store.heartbeat(name)
        except Exception:  # noqa: BLE001 - Redis down: /readyz says so; keep trying
            log.warning("worker heartbeat failed", exc_info=True)
        try:  # this worker is alive: what it holds is still its own
            renew_deliveries(consumer)
            runtime.leases().renew()
        except Exception:  # noqa: BLE001 - six beats may fail before anything is restored
            log.warning("renewing unacked messages and job leases failed", exc_info=True)
        stop.wait(HEARTBEAT_EVERY)
