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

from tasks.jobs.queue_port import BACKGROUND, QUEUE_OF_TYPE
from tasks.jobs.scheduling import Publish
from tasks.jobs.webhook_delivery import PublishDelivery
from tasks.settings import Settings
from worker.bootstrap import WorkerRuntime
from worker.config import celery_config
from worker.lifecycle import install_lifecycle
from worker.tasks import register_run_job
from worker.webhook_task import register_deliver_webhook
from worker.wire import DELIVER_WEBHOOK, RUN_JOB


def blocking_publisher(app: Celery) -> Publish:
    """``publish(tenant, job_id, job_type)`` for the jobs a worker queues itself (refreshes
    due, jobs the orphan sweep queues again): Celery's producer, from a worker's thread."""
    def publish(tenant: str, job_id: str, job_type: str) -> None:
        app.send_task(RUN_JOB, args=(tenant, job_id), queue=QUEUE_OF_TYPE[job_type])

    return publish


def delivery_publisher(app: Celery) -> PublishDelivery:
    """``publish(tenant, webhook_id, message_id)``: a webhook delivery handed to a worker, on
    the background queue (nobody waits on it; it must never hold up an end user's authorise)."""
    def publish(tenant: str, webhook_id: str, message_id: str) -> None:
        app.send_task(DELIVER_WEBHOOK, args=(tenant, webhook_id, message_id), queue=BACKGROUND)

    return publish


def make_celery(settings: Settings | None = None) -> Celery:
    """The worker app. With ``settings``, those; without, ``Settings()`` from the environment on first use."""
    runtime = WorkerRuntime(settings)
    app = Celery("authq", set_as_current=False)

    def configure(sender: Celery, **_: Any) -> None:
        sender.config_from_object(celery_config(runtime.settings))

    app.on_configure.connect(configure, weak=False)
    runtime.publish_delivery = delivery_publisher(app)
    register_run_job(app, runtime)
    register_deliver_webhook(app, runtime)
    install_lifecycle(app, runtime, blocking_publisher(app), runtime.publish_delivery)
    return app
