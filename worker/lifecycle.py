"""What a worker of authq's app does beside its jobs, from start-up to shutdown.

Installed on the app by ``worker.celery_app.make_celery``, it acts only on signals about a
worker of that app (Celery's signals are process-wide):

- before the worker sets up logging: authq's logging (JSON, scrubbed, one line a job);
- once set up, before consuming anything: the job context is built, which checks
  ``AUTHQ_SECRET_KEY`` against the stored secrets (a worker that could not open them stops
  there, exit code 2);
- once ready, four threads until shutdown: the heartbeat (``/readyz``, and renewing the
  worker's unacked messages and job leases: ``worker/liveness.py``), the periodic scan that
  queues refreshes of tokens about to expire (``tasks.jobs.scheduling``), the webhook scan that
  hands due deliveries to workers (``tasks.jobs.webhook_scan``), and, when the
  broker is the store's Redis, the sweep that queues again a job whose message the broker
  lost (``worker/sweeper.py``). Celery beat is not needed: a Redis lock makes one scan, and
  one sweep, per period across the fleet.
"""

from __future__ import annotations

import gc
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.signals import celeryd_after_setup, celeryd_init, setup_logging, worker_ready, worker_shutdown

from tasks.errors import ConfigError
from tasks.jobs.scheduling import Publish, scan_due_refreshes
from tasks.jobs.webhook_delivery import PublishDelivery
from tasks.jobs.webhook_scan import scan_due_deliveries
from worker.bootstrap import WorkerRuntime
from worker.liveness import beat
from worker.sweeper import sweep_periodically

log = logging.getLogger("authq.worker")

# Celery's own line per task received and per task ended ("Task authq.run_job[…] received",
# "… succeeded in 0.004s: None"): authq logs a job's end itself, with its ids, outcome and
# duration ("job finished"), and its retries ("job will run again"). At INFO they would be
# three lines a job for one event; they stay at DEBUG, and Celery's warnings and errors
# (a task that failed unexpectedly) are logged as ever.
CELERY_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


def quiet_celery_task_lines() -> None:
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in CELERY_TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def scan_refreshes(runtime: WorkerRuntime, publish: Publish, stop: threading.Event) -> None:
    """Until ``stop``: this worker's refresh scans (a lock makes one per period fleet-wide)."""
    settings = runtime.settings
    while not stop.wait(settings.refresh_scan_seconds):
        try:
            queued = scan_due_refreshes(runtime.context(), settings.refresh_window_seconds,
                                        settings.refresh_scan_seconds, publish)
            if queued:
                log.info("queued scheduled refreshes", extra={"count": queued})
        except Exception:  # noqa: BLE001 - try again next period
            log.warning("refresh scan failed", exc_info=True)


def scan_webhooks(runtime: WorkerRuntime, publish: PublishDelivery, stop: threading.Event) -> None:
    """Until ``stop``: this worker's webhook scans (a lock makes one per period fleet-wide)."""
    period = runtime.settings.webhook_scan_seconds
    while not stop.wait(period):
        try:
            sender = runtime.context().webhooks
            if sender is not None:
                scan_due_deliveries(sender, period, publish)
        except Exception:  # noqa: BLE001 - try again next period (Redis restarting, say)
            log.warning("webhook scan failed", exc_info=True)


def _start(name: str, target: Callable[..., None], *args: Any) -> None:
    threading.Thread(target=target, args=args, name=name, daemon=True).start()


def install_lifecycle(app: Celery, runtime: WorkerRuntime, publish: Publish,
                      publish_delivery: PublishDelivery) -> None:
    """Connect the start-up and shutdown of ``app``'s workers; starts nothing by itself."""
    stop = threading.Event()

    def on_init(sender: Any = None, instance: Any = None, **_: Any) -> None:
        # Sent before the worker sets up logging, with the worker's app: authq's logging is
        # for authq's workers only. (Connected at once, it would also take over any other
        # Celery app's worker in a process that built this app.)
        if getattr(instance, "app", None) is app:
            setup_logging.connect(on_setup_logging, weak=False)

    def on_setup_logging(loglevel: Any = None, **_: Any) -> None:
        # Connecting here tells Celery not to configure logging itself: one format everywhere.
        from tasks.telemetry.logs import configure

        configure(logging.getLevelName(loglevel) if isinstance(loglevel, int) else (loglevel or "INFO"))
        quiet_celery_task_lines()

    def on_after_setup(instance: Any = None, **_: Any) -> None:
        if getattr(instance, "app", None) is not app:
            return
        try:
            runtime.context()
        except ConfigError as exc:
            log.critical(f"worker cannot start: {exc}")
            raise SystemExit(2) from None

    def on_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return
        name = getattr(sender, "hostname", None) or f"worker@{socket.gethostname()}"
        runtime.context().store.heartbeat(name)
        _start("authq-heartbeat", beat, runtime, name, sender, stop)
        _start("authq-refresh-scan", scan_refreshes, runtime, publish, stop)
        _start("authq-webhook-scan", scan_webhooks, runtime, publish_delivery, stop)
        if runtime.settings.broker_is_store:
            _start("authq-orphan-sweep", sweep_periodically, runtime, publish, stop)
        # What start-up built lives as long as the worker: frozen, full collections skip it
        # (as the API does, authq/cli.py).
        gc.collect()
        gc.freeze()

    def on_shutdown(**_: Any) -> None:
        stop.set()

    celeryd_init.connect(on_init, weak=False)
    celeryd_after_setup.connect(on_after_setup, weak=False)
    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)
