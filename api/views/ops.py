"""Operations endpoints at the root: no API key."""

from __future__ import annotations

from aiohttp import web
from redis.exceptions import RedisError

from api import prometheus
from api.typedefs import STORE


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    store = request.app[STORE]
    try:
        await store.redis.ping()
        workers = await store.workers_seen()
    except (RedisError, OSError) as exc:
        return web.json_response({"status": "not_ready", "reason": f"Redis does not answer ({type(exc).__name__})."},
                                 status=503)
    if workers == 0:
        return web.json_response({"status": "not_ready", "reason": "No worker has been seen in the last 30 s."},
                                 status=503)
    return web.json_response({"status": "ready", "workers": workers})


async def metrics(request: web.Request) -> web.StreamResponse:
    """Prometheus text: this API's HTTP requests and the fleet's jobs, retries, waits and queues."""
    return await prometheus.metrics(request)
