"""What a job needs from the outside world, built once per process and passed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from tasks.model.catalog import Catalog
from tasks.model.records import utcnow
from tasks.provider.transport import Outbound
from tasks.security.sealing import SecretBox
from tasks.storage.job_counters import JobMetrics
from tasks.storage.store import Store
from tasks.storage.webhook_subscriptions import SubscriptionCache

if TYPE_CHECKING:
    from tasks.jobs.webhook_delivery import PublishDelivery, WebhookSender


@dataclass
class JobContext:
    store: Store
    box: SecretBox
    catalog: Catalog
    outbound: Outbound
    max_attempts: int = 5
    # Platform apps' client secrets, read from the environment at the entrypoint.
    platform_secrets: dict[str, str] = field(default_factory=dict)
    public_url: str = "http://127.0.0.1:8080"
    redirect_uri: str = "http://127.0.0.1:8080/api/v1/oauth/authenticate"
    # Fleet-wide job counters in Redis, served by the API's /metrics; None counts nothing.
    metrics: JobMetrics | None = None
    # Webhook deliveries: how attempts are made, and how a job's end hands its deliveries to
    # workers at once (None: the webhook scan hands them over).
    webhooks: WebhookSender | None = None
    publish_delivery: PublishDelivery | None = None
    # Each tenant's webhook subscriptions as last read; a job's end is guarded on their version.
    subscriptions: SubscriptionCache = field(default_factory=SubscriptionCache)

    def now(self) -> datetime:
        return utcnow()
