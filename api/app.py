"""The application factory: everything the API needs is built here from ``Settings``."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis

from api.body import MAX_BODY
from api.demo.routes import setup_demo
from api.event_hub import EventHub
from api.governor import Governor
from api.key_usage import KeyUsage
from api.middlewares import api_key, errors, request_id
from api.openapi import OPENAPI, OpenApiDocument
from api.prometheus import http_metrics, setup_metrics
from api.protocol_errors import server_log
from api.ratelimit import ApiRateLimiter
from api.routes import setup_routes
from api.store import ApiStore
from api.stream_slots import StreamSlots
from api.typedefs import (
    API_RATE,
    BOX,
    CATALOG,
    CATALOG_VIEWS,
    EVENT_HUB,
    GOVERNOR,
    INLINE_QUEUE,
    INSTANCE,
    KEY_USAGE,
    QUEUE,
    REDIS,
    SETTINGS,
    STATIC_KEYS,
    STORE,
    STREAM_SLOTS,
)
from api.usage_metrics import setup_usage_metrics
from api.views.certificates import setup_certificates
from api.views.jobs import setup_events
from api.views.proxy import setup_proxy
from tasks.demo.catalog import service_catalog
from tasks.jobs.queue_port import InlineJobQueue, JobQueue
from tasks.model.catalog_view import CatalogViews
from tasks.security.key_check import check_at_start_url
from tasks.security.sealing import SecretBox
from tasks.settings import Settings
from tasks.storage import schema
from tasks.storage.schema import hash_api_key


def create_app(settings: Settings, queue: JobQueue, *, key_checked: bool = False) -> web.Application:
    """Build the app. Bad settings (no secret key, a broken catalog) fail here, before listening.
    ``key_checked``: the entrypoint already made the start-up key check (else it is made at start-up)."""
    app = web.Application(middlewares=[http_metrics, request_id, errors, api_key], client_max_size=MAX_BODY,
                          handler_args={"logger": server_log()})
    app[SETTINGS] = settings
    app[INSTANCE] = settings.instance_id or secrets.token_hex(16)
    app[CATALOG] = service_catalog(settings)  # with the demo's entries under AUTHQ_DEMO
    app[CATALOG_VIEWS] = CatalogViews(app[CATALOG])
    app[BOX] = SecretBox(settings.secret_key.get_secret_value() if settings.secret_key else None,
                         keep=OPENED_SECRETS_KEPT)
    app[STATIC_KEYS] = {hash_api_key(key): record for key, record in settings.static_api_keys().items()}
    app[QUEUE] = queue
    if isinstance(queue, InlineJobQueue):
        app[INLINE_QUEUE] = queue
    setup_metrics(app)  # this app's own registry of HTTP counters (GET /metrics)
    setup_events(app)   # job event streams end when the server shuts down
    setup_certificates(app)  # uploads are parsed in child processes
    settings.require_redis_url()
    app.cleanup_ctx.append(_redis)
    setup_usage_metrics(app)  # proxied requests, permits, credential reads: counted here, flushed to Redis
    if not key_checked:
        app.cleanup_ctx.append(_key_check)
    app.cleanup_ctx.append(_queue)
    setup_proxy(app)  # one client session to the providers, per process (once the key check passed)
    setup_routes(app)
    if settings.demo:
        setup_demo(app)  # the demo provider under /demo/ (contract §13)
    app[OPENAPI] = OpenApiDocument()  # GET /api/openapi.json: built from the router on first use, then kept
    return app


# How long a command waits for a free connection of the pool before the request answers 503.
POOL_WAIT_SECONDS = 5.0
# Opened secrets the API keeps, by sealed text (``SecretBox``): a connector's credentials are
# opened for every proxied request and credentials read. At most a few MB.
OPENED_SECRETS_KEPT = 4096


async def _redis(app: web.Application) -> AsyncIterator[None]:
    """The command pool (its size explicit: ``AUTHQ_API_REDIS_CONNECTIONS``; a command waits for a
    free connection rather than failing at once) and, apart from it, the event hub's one
    pub/sub connection: no number of event streams or waiters takes a connection from the pool
    (the governor's waiters for pool slots listen there too)."""
    url = app[SETTINGS].require_redis_url()
    pool = BlockingConnectionPool.from_url(url, max_connections=app[SETTINGS].api_redis_connections,
                                           timeout=POOL_WAIT_SECONDS, health_check_interval=30,
                                           client_name="authq-api")
    client = Redis.from_pool(pool)
    app[REDIS] = client
    app[STORE] = ApiStore(client)
    app[STREAM_SLOTS] = StreamSlots(app[STORE].pipelined)
    app[KEY_USAGE] = KeyUsage(app[STORE])
    # (its inbox: the channel this process's Prefer: wait submissions are told on; tasks/jobs/waiter.py)
    app[EVENT_HUB] = EventHub(url, inbox=schema.api_inbox(secrets.token_hex(12)))
    app[EVENT_HUB].start()
    app[GOVERNOR] = Governor(app[STORE], app[EVENT_HUB])
    if per_second := app[SETTINGS].api_rate_limit:
        app[API_RATE] = ApiRateLimiter(app[STORE].pipelined, per_second)
    yield
    await app[GOVERNOR].close()
    await app[EVENT_HUB].close()
    await app[STREAM_SLOTS].close()
    await app[STORE].pipelined.close()
    await client.aclose()


async def _key_check(app: web.Application) -> AsyncIterator[None]:
    """Refuse to start with an AUTHQ_SECRET_KEY that does not open the stored secrets."""
    await asyncio.to_thread(check_at_start_url, app[SETTINGS].require_redis_url(), app[BOX])
    yield


async def _queue(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[QUEUE].close()
