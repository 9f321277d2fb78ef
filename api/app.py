"""The application factory: everything the API needs is built here from ``Settings``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

from tasks.catalog import load_catalog
from tasks.crypto import SecretBox
from tasks.jobqueue import JobQueue
from tasks.keys import hash_api_key
from tasks.settings import Settings

from .body import MAX_BODY
from .middlewares import api_key, errors, request_id
from .routes import setup_routes
from .store import ApiStore
from .ratelimit import ApiRateLimiter
from .typedefs import API_RATE, BOX, CATALOG, QUEUE, REDIS, SETTINGS, STATIC_KEYS, STORE


def create_app(settings: Settings, queue: JobQueue) -> web.Application:
    """Build the app. Bad settings (no secret key, a broken catalog) fail here, before listening."""
    app = web.Application(middlewares=[request_id, errors, api_key], client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[CATALOG] = load_catalog(settings.catalog)
    app[BOX] = SecretBox(settings.secret_key.get_secret_value() if settings.secret_key else None)
    app[STATIC_KEYS] = {hash_api_key(key): tenant for key, tenant in settings.static_api_keys().items()}
    app[QUEUE] = queue
    settings.require_redis_url()
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_queue)
    setup_routes(app)
    return app


async def _redis(app: web.Application) -> AsyncIterator[None]:
    client = Redis.from_url(app[SETTINGS].require_redis_url(), health_check_interval=30)
    app[REDIS] = client
    app[STORE] = ApiStore(client)
    if app[SETTINGS].api_rate_limit:
        app[API_RATE] = ApiRateLimiter(client, app[SETTINGS].api_rate_limit)
    yield
    await client.aclose()


async def _queue(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[QUEUE].close()
