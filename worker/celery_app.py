"""authq's worker app, assembled in one place: its configuration, its task and its lifecycle.

``celery -A worker worker`` takes ``worker.app`` (``worker/__init__.py``), which is
``make_celery()``. Building the app starts nothing and reads nothing: the settings are read
from the environment when first needed (Celery's configuration, or the job context), which
for a worker process is its entrypoint; the heartbeat, the refresh scan and the orphan sweep
start when a worker of this app is ready (``worker/lifecycle.py``).

The API never builds this app: its queue is ``worker.queues.make_job_queue``.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from tasks.jobs.queue_port import QUEUE_OF_TYPE
from tasks.jobs.scheduling import Publish
from tasks.settings import Settings
from worker.bootstrap import WorkerRuntime
from worker.config import celery_config
from worker.lifecycle import install_lifecycle
from worker.tasks import register_run_job
from worker.wire import RUN_JOB


def blocking_publisher(app: Celery) -> Publish:
    """``publish(tenant, job_id, job_type)`` for the jobs a worker queues itself (refreshes
    due, jobs the orphan sweep queues again): Celery's producer, from a worker's thread."""
    def publish(tenant: str, job_id: str, job_type: str) -> None:
        app.send_task(RUN_JOB, args=(tenant, job_id), queue=QUEUE_OF_TYPE[job_type])

    return publish


def make_celery(settings: Settings | None = None) -> Celery:
    """The worker app. With ``settings``, those; without, ``Settings()`` from the environment on first use."""
    runtime = WorkerRuntime(settings)
    app = Celery("authq", set_as_current=False)

    def configure(sender: Celery, **_: Any) -> None:
        sender.config_from_object(celery_config(runtime.settings))

    app.on_configure.connect(configure, weak=False)
    register_run_job(app, runtime)
    install_lifecycle(app, runtime, blocking_publisher(app))
    return app
