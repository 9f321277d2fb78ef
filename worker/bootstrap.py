"""Build a worker process's ``JobContext`` once, from the app's settings."""

from __future__ import annotations

import os
import threading

import redis
from celery import Celery

from tasks.jobs.context import JobContext
from tasks.model.catalog import load_catalog
from tasks.provider.gate import Gate
from tasks.provider.transport import Outbound
from tasks.security.key_check import check_at_start
from tasks.security.sealing import SecretBox
from tasks.settings import Settings
from tasks.storage.job_counters import JobMetrics
from tasks.storage.store import Store

_lock = threading.Lock()
_contexts: dict[int, tuple[int, JobContext]] = {}


def build_context(settings: Settings) -> JobContext:
    catalog = load_catalog(settings.catalog)
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
    return JobContext(
        store=Store(client, settings.job_ttl_seconds),
        box=box,
        catalog=catalog,
        outbound=Outbound(settings.outbound_timeout_seconds, settings.allow_private_networks,
                          settings.ca_bundle, Gate(client)),
        max_attempts=settings.max_attempts,
        platform_secrets=secrets,
        public_url=settings.effective_public_url,
        redirect_uri=settings.effective_redirect_uri,
        metrics=JobMetrics(client),
    )


def context_for(app: Celery) -> JobContext:
    """One context per process (a forked pool child builds its own Redis connections)."""
    pid = os.getpid()
    with _lock:
        cached = _contexts.get(id(app))
        if cached is None or cached[0] != pid:
            app.conf  # noqa: B018 - make sure the app is configured (reads the env for `celery -A worker`)
            cached = (pid, build_context(app.authq_settings))  # type: ignore[attr-defined]
            _contexts[id(app)] = cached
        return cached[1]
