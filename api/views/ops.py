"""Operations endpoints at the root: no API key."""

from __future__ import annotations

from aiohttp import web
from redis.exceptions import RedisError

from api import prometheus
from api.schemas import Health, Index, NotReady, Ready
from api.typedefs import INSTANCE, SETTINGS, STORE

INDEX_STYLE = "font-family:system-ui,sans-serif;max-width:40em;margin:3em auto;line-height:1.5"


async def index(request: web.Request) -> web.StreamResponse:
    """Where to go from here: JSON, or a page of links for a browser."""
    links: Index = {"name": "authq", "api": "/api/v1", "docs": "/api/docs", "openapi": "/api/openapi.json",
                    "metrics": "/metrics"}
    if request.app[SETTINGS].demo:
        links["demo"] = "/demo/"
    if "text/html" not in request.headers.get("Accept", ""):  # (a browser names it; curl and clients do not)
        return web.json_response(links)
    items = [("The API's documentation", links["docs"]), ("Its OpenAPI description", links["openapi"]),
             ("Metrics", links["metrics"])]
    if "demo" in links:
        items.append(("The demo provider: try every flow with no internet", links["demo"]))
    lis = "".join(f'<li><a href="{href}">{text}</a> (<code>{href}</code>)</li>' for text, href in items)
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>authq</title></head>"
            f"<body style='{INDEX_STYLE}'><main><h1>authq</h1><p>Queued connector authorisation. "
            f"The API is under <code>/api/v1</code>.</p><ul>{lis}</ul></main></body></html>")
    return web.Response(text=page, content_type="text/html", headers={"Referrer-Policy": "no-referrer"})


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
