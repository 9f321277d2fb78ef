"""What a worker process builds from its ``Settings``: the job context and the run leases.

``WorkerRuntime`` is handed to what needs them (the task, the heartbeat, the scans) by
``worker.celery_app.make_celery``; nothing is kept on the Celery app."""

from __future__ import annotations

import os
import threading

import redis

from tasks.demo.catalog import service_catalog
from tasks.demo.origin import demo_destination
from tasks.jobs.context import JobContext
from tasks.jobs.webhook_delivery import PublishDelivery, WebhookSender
from tasks.provider.gate import Gate
from tasks.provider.transport import Outbound
from tasks.security.key_check import check_at_start
from tasks.security.sealing import SecretBox
from tasks.settings import Settings
from tasks.storage.job_counters import JobMetrics
from tasks.storage.leases import RunLeases
from tasks.storage.store import Store


def build_webhook_sender(settings: Settings, store: Store, box: SecretBox) -> WebhookSender:
    """Webhook attempts: the guarded transport with the webhook deadline, and no connector's gate."""
    return WebhookSender(store=store, box=box,
                         outbound=Outbound(settings.webhook_timeout_seconds, settings.allow_private_networks,
                                           settings.ca_bundle),
                         schedule=settings.webhook_retry_intervals, slots=settings.webhook_endpoint_concurrency)


def build_context(settings: Settings, publish_delivery: PublishDelivery | None = None) -> JobContext:
    catalog = service_catalog(settings)
    # Platform apps' secrets come from the environment, read here at the entrypoint only.
    secrets = {app.client_secret_env: os.environ[app.client_secret_env]
               for app in catalog.platform_apps
               if app.client_secret_env and app.client_secret_env in os.environ}
    box = SecretBox(settings.secret_key.get_secret_value() if settings.secret_key else None)
    client = redis.Redis.from_url(settings.require_redis_url(), health_check_interval=30)
    try:
        check_at_start(client, box)  # ConfigError when AUTHQ_SECRET_KEY does not open the stored secrets
    except BaseException:
        client.close()
        raise
    store = Store(client, settings.job_ttl_seconds)
    return JobContext(
        store=store,
        box=box,
        catalog=catalog,
        outbound=Outbound(settings.outbound_timeout_seconds, settings.allow_private_networks,
                          settings.ca_bundle, Gate(client), allow=demo_destination(settings)),
        max_attempts=settings.max_attempts,
        platform_secrets=secrets,
        public_url=settings.effective_public_url,
        redirect_uri=settings.effective_redirect_uri,
        metrics=JobMetrics(client),
        webhooks=build_webhook_sender(settings, store, box),
        publish_delivery=publish_delivery,
    )


class WorkerRuntime:
    """One worker app's settings, and what each process of it builds from them, once.

    Without ``settings``, they are ``Settings()``, read from the environment the first time
    they are needed: at the worker's entrypoint. A forked pool child builds its own context
    (its own Redis connections) and leases.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self._lock = threading.RLock()
        # How a job's end hands its webhook deliveries to workers (the app's producer), set by
        # ``worker.celery_app.make_celery`` before any context is built.
        self.publish_delivery: PublishDelivery | None = None
        self._settings = settings
        self._pid = 0
        self._context: JobContext | None = None
        self._leases: RunLeases | None = None

    @property
    def settings(self) -> Settings:
        with self._lock:
            if self._settings is None:
                self._settings = Settings()
            return self._settings

    def context(self) -> JobContext:
        """The process's context; raises ``ConfigError`` if the secret key does not open the stored secrets."""
        with self._lock:
            self._forget_parents()
            if self._context is None:
                self._context = build_context(self.settings, self.publish_delivery)
            return self._context

    def leases(self) -> RunLeases:
        """The process's job leases (renewed by its heartbeat thread)."""
        with self._lock:
            self._forget_parents()
            if self._leases is None:
                self._leases = RunLeases(self.context().store.redis)
            return self._leases

    def _forget_parents(self) -> None:
        if self._pid != os.getpid():
            self._pid, self._context, self._leases = os.getpid(), None, None
