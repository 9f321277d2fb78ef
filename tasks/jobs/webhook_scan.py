"""Finding webhook deliveries that are due and handing them to workers: the webhook scan.

Every worker runs ``scan_due_deliveries`` every ``AUTHQ_WEBHOOK_SCAN_SECONDS``; a Redis lock
makes one scan per period fleet-wide. A scan claims what is due in ``WEBHOOK_DUE`` (a first
attempt nobody handed over yet: a change the API made, or a worker that died between a job's
end and handing its deliveries over; a retry whose time has come; a claim that ran out
because its message was lost) and publishes one ``authq.deliver_webhook`` message each, on
the background queue. At most ``PAGE`` a scan: a backlog is worked through a page a period,
oldest first.
"""

from __future__ import annotations

import time

from tasks.jobs.webhook_delivery import PublishDelivery, WebhookSender
from tasks.storage import schema, webhook_queue

PAGE = 1000


def scan_due_deliveries(sender: WebhookSender, period_seconds: float, publish: PublishDelivery) -> int:
    """Claim and publish the deliveries due now (unless another worker scans this period); how many."""
    client = sender.store.redis
    if not client.set(schema.WEBHOOK_SCAN_LOCK, "1", nx=True, px=max(1, int(period_seconds * 900))):
        return 0
    now = time.time()
    due = sender.store.run(webhook_queue.claim_due(now, sender.claim_until(), PAGE))
    for tenant, webhook_id, message_id in due:
        publish(tenant, webhook_id, message_id)
    return len(due)
