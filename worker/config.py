"""Celery's configuration for authq, from ``Settings``: the same for the workers
(``worker.celery_app``), the API's producer on another broker (``worker.publisher``) and
the reference worker of bench/ (``bench/noop.py``)."""

from __future__ import annotations

from typing import Any

from kombu import Queue

from tasks.jobs.queue_port import BACKGROUND, INTERACTIVE
from tasks.settings import Settings
from worker.timings import RESTORE_EVERY, RESTORE_MUTEX_EXPIRE, VISIBILITY_TIMEOUT

POOL = "threads"
# Connections a worker process may open beyond one per job thread: the consumer's own, the
# heartbeat's, the broker's restore sweep, the refresh scan and the orphan sweep.
SPARE_CONNECTIONS = 8


def celery_config(settings: Settings) -> dict[str, Any]:
    concurrency = settings.worker_concurrency
    return {
        "broker_url": settings.effective_broker_url,
        "broker_connection_retry_on_startup": True,
        # Redis transport: a dead worker's unacked job is queued again within ~35 s (see
        # worker/liveness.py; live workers renew theirs, so long jobs are never run twice).
        # The heartbeat renews every message the process holds, however many threads run
        # them, so the timeout does not grow with the concurrency.
        # Each job thread acks, rejects or publishes its retry on a connection of its own from
        # the channel's pool (kombu's default cap of 10 would refuse the 11th: "Too many
        # connections"), and Celery's producer pool hands one producer to each thread at once.
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT,
                                     "unacked_restore_interval": RESTORE_EVERY,
                                     "unacked_restore_throttle": 1,
                                     "unacked_mutex_expire": RESTORE_MUTEX_EXPIRE,
                                     "max_connections": 2 * concurrency + SPARE_CONNECTIONS},
        "broker_pool_limit": concurrency + SPARE_CONNECTIONS,
        "broker_connection_retry": True,     # a restarted Redis: reconnect and go on consuming
        # ... and let a job that was running through the blip finish (Celery 6's default would
        # cancel it); if its ack is lost with the old connection, the message is restored and
        # the redelivery finds the job finished.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_ignore_result": True,          # authq keeps its own job records in Redis
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,              # at-least-once: jobs are idempotent
        "task_reject_on_worker_lost": True,  # a killed worker's task is redelivered; runner counts attempts
        # N jobs at once per process: Celery's threads pool (the jobs are synchronous code that
        # waits on providers and Redis; docs/decisions.md). What `celery -A worker worker` runs
        # without --pool/--concurrency, and what `authq up` and compose pass explicitly.
        "worker_pool": POOL,
        "worker_concurrency": concurrency,
        # Prefetch = concurrency x 1: a process takes only as many messages as it has idle
        # threads, so no message waits behind a busy thread while another worker is idle.
        # (Messages held for a countdown are not counted: Celery raises the prefetch for them.)
        "worker_prefetch_multiplier": 1,
        "task_default_queue": INTERACTIVE,
        "task_queues": [Queue(INTERACTIVE), Queue(BACKGROUND)],
        "task_create_missing_queues": False,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
    }
