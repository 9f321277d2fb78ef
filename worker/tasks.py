"""The Celery tasks: thin wrappers that pass ids to ``tasks.runner``."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from celery import Celery, Task
from celery.signals import worker_ready, worker_shutdown

from tasks.errors import RetryLater
from tasks.runner import run_job

from .context import context_for

log = logging.getLogger("authq.worker")
RUN_JOB = "authq.run_job"
HEARTBEAT_EVERY = 5.0


def register(app: Celery) -> None:
    @app.task(name=RUN_JOB, bind=True, max_retries=None, acks_late=True)
    def run_job_task(self: Task, tenant: str, job_id: str) -> None:
        try:
            run_job(context_for(self.app), tenant, job_id)
        except RetryLater as later:
            raise self.retry(countdown=later.delay) from None

    stop = threading.Event()

    def beat(name: str) -> None:
        while not stop.is_set():
            try:
                context_for(app).store.heartbeat(name)
            except Exception:  # noqa: BLE001 - Redis down: /readyz will say so; keep trying
                log.warning("worker heartbeat failed", exc_info=True)
            stop.wait(HEARTBEAT_EVERY)

    def on_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return
        name = getattr(sender, "hostname", None) or f"worker@{socket.gethostname()}"
        context_for(app).store.heartbeat(name)
        threading.Thread(target=beat, args=(name,), name="authq-heartbeat", daemon=True).start()

    def on_shutdown(**_: Any) -> None:
        stop.set()

    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)


__all__ = ["RUN_JOB", "register"]
