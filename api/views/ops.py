"""Operations endpoints at the root: no API key."""

from __future__ import annotations

from aiohttp import web
from redis.exceptions import RedisError

from api import prometheus
from api.schemas import Health, NotReady, Ready
from api.typedefs import INSTANCE, STORE


async def healthz(request: web.Request) -> web.StreamResponse:
    up: Health = {"status": "ok"}
    return web.json_response(up)


async def readyz(request: web.Request) -> web.StreamResponse:
    store = request.app[STORE]
    try:
        await store.redis.ping()
        workers = await store.workers_seen()
    except (RedisError, OSError) as exc:
        return _not_ready(request, f"Redis does not answer ({type(exc).__name__}).")
    if workers == 0:
        return _not_ready(request, "No worker has been seen in the last 30 s.")
    ready: Ready = {"status": "ready", "workers": workers, "instance": request.app[INSTANCE]}
    return web.json_response(ready)


def _not_ready(request: web.Request, reason: str) -> web.Response:
    body: NotReady = {"status": "not_ready", "reason": reason, "instance": request.app[INSTANCE]}
    return web.json_response(body, status=503)


async def metrics(request: web.Request) -> web.StreamResponse:
    """Prometheus text: this API's HTTP requests and the fleet's jobs, retries, waits and queues."""
    return await prometheus.metrics(request)
