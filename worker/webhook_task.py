"""The Celery task of a webhook delivery: ``authq.deliver_webhook(tenant, webhook_id, message_id)``,
a thin wrapper around ``tasks.jobs.webhook_delivery.deliver``.

Acked whatever happens: the delivery's truth is its record and its entry in the due set, not
the message. A message that meets Redis unreachable, or a worker killed mid-attempt, leaves
the delivery claimed; once the claim runs out the webhook scan hands it over again."""

from __future__ import annotations

import logging

from celery import Celery

from tasks.jobs.webhook_delivery import deliver
from worker.bootstrap import WorkerRuntime
from worker.tasks import OUTAGE
from worker.wire import DELIVER_WEBHOOK

log = logging.getLogger("authq.webhooks")


def register_deliver_webhook(app: Celery, runtime: WorkerRuntime) -> None:
    def deliver_webhook_task(tenant: str, webhook_id: str, message_id: str) -> None:
        sender = runtime.context().webhooks
        assert sender is not None
        try:
            deliver(sender, tenant, webhook_id, message_id)
        except OUTAGE:
            log.warning("Redis unreachable during a webhook attempt; the scan hands it over again",
                        extra={"tenant": tenant, "webhook_id": webhook_id, "event_id": message_id})

    app.task(name=DELIVER_WEBHOOK, acks_late=True, ignore_result=True)(deliver_webhook_task)


__all__ = ["DELIVER_WEBHOOK", "register_deliver_webhook"]
