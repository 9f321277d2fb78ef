"""What every worker does beside its jobs: a heartbeat (for ``/readyz``, and renewing the
worker's unacked messages and job leases: ``worker/liveness.py``), the periodic scan that
queues refreshes of tokens about to expire, and the sweep that queues again a job whose
message the broker lost (``worker/sweeper.py``). Celery beat is not needed: a Redis lock
makes one scan, and one sweep, per period across the fleet."""

from __future__ import annotations

import gc
import logging
import socket
import threading
from typing import Any

from celery import Celery
from celery.signals import celeryd_after_setup, celeryd_init, setup_logging, worker_ready, worker_shutdown

from tasks.errors import ConfigError
from tasks.jobs.scheduling import scan_due_refreshes
from worker.bootstrap import context_for
from worker.liveness import leases_for, renew_deliveries
from worker.sweeper import start_sweeper
from worker.timings import RENEW_EVERY

log = logging.getLogger("authq.worker")
HEARTBEAT_EVERY = RENEW_EVERY


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


def start_background(app: Celery) -> None:
    stop = threading.Event()

    def heartbeat(name: str, consumer: Any) -> None:
        while not stop.is_set():
            try:
                context_for(app).store.heartbeat(name)
            except Exception:  # noqa: BLE001 - Redis down: /readyz says so; keep trying
                log.warning("worker heartbeat failed", exc_info=True)
            try:  # this worker is alive: what it holds is still its own
                renew_deliveries(consumer)
                leases_for(app).renew()
            except Exception:  # noqa: BLE001 - six beats may fail before anything is restored
                log.warning("renewing unacked messages and job leases failed", exc_info=True)
            stop.wait(HEARTBEAT_EVERY)

    def refresh_scan() -> None:
        from worker.tasks import publisher

        settings = app.authq_settings  # type: ignore[attr-defined]
        publish = publisher(app)
        while not stop.wait(settings.refresh_scan_seconds):
            try:
                queued = scan_due_refreshes(context_for(app), settings.refresh_window_seconds,
                                            settings.refresh_scan_seconds, publish)
                if queued:
                    log.info("queued scheduled refreshes", extra={"count": queued})
            except Exception:  # noqa: BLE001 - try again next period
                log.warning("refresh scan failed", exc_info=True)

    def on_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return
        name = getattr(sender, "hostname", None) or f"worker@{socket.gethostname()}"
        context_for(app).store.heartbeat(name)
        threading.Thread(target=heartbeat, args=(name, sender), name="authq-heartbeat", daemon=True).start()
        threading.Thread(target=refresh_scan, name="authq-refresh-scan", daemon=True).start()
        start_sweeper(app, stop)  # jobs whose message the broker lost are queued again
        # What start-up built lives as long as the worker: frozen, full collections skip it
        # (as the API does, authq/cli.py).
        gc.collect()
        gc.freeze()

    def on_shutdown(**_: Any) -> None:
        stop.set()

    def on_after_setup(instance: Any = None, **_: Any) -> None:
        # Before consuming anything, build the context, which checks AUTHQ_SECRET_KEY against
        # the stored secrets: a worker that could not open them stops here, exit code 2.
        if getattr(instance, "app", None) is not app:
            return
        try:
            context_for(app)
        except ConfigError as exc:
            log.critical(f"worker cannot start: {exc}")
            raise SystemExit(2) from None

    def on_setup_logging(loglevel: Any = None, **_: Any) -> None:
        # Connecting here tells Celery not to configure logging itself: one format everywhere.
        from tasks.telemetry.logs import configure

        configure(logging.getLevelName(loglevel) if isinstance(loglevel, int) else (loglevel or "INFO"))
        quiet_celery_task_lines()

    def on_init(sender: Any = None, instance: Any = None, **_: Any) -> None:
        # Sent before the worker sets up logging, with the worker's app: authq's logging is
        # for authq's workers only. (Connected at import, it would also take over any other
        # Celery app's worker in a process that imported this package, e.g. bench/noop.py.)
        if getattr(instance, "app", None) is app:
            setup_logging.connect(on_setup_logging, weak=False)

    celeryd_init.connect(on_init, weak=False)
    celeryd_after_setup.connect(on_after_setup, weak=False)
    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)
