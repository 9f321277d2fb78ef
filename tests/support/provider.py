"""A real HTTP server on loopback playing a provider's credential-check endpoints.

It runs on its own thread and event loop for the whole test session and records every
request it sees, so tests count calls as the provider counts them: each ``Seen`` has its
arrival and end times (``time.time()``), and ``max_in_flight`` is the most requests it
ever held at once. ``delay`` slows every answer; ``script`` queues canned answers for the
check endpoints (a status code, or ``(status, headers)`` such as
``(429, {"Retry-After": "2"})``).

Paths: ``/wp-json/wc/v3/system_status`` and ``/admin/shop.json`` (the checks), the same under
``/shops/<name>`` (so tests can tell connectors apart by their ``base_url``), and
``/redirect/<path>``, which answers ``302`` to ``/redirected/<path>`` (a 200 for any request).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.leakcheck import remember_secret

GOOD_KEY, GOOD_SECRET = "ck_good_1234", "cs_good_secret_5678"
GOOD_TOKEN = "shpat_good_token_abcdef"
for _secret in (GOOD_SECRET, GOOD_TOKEN):
    remember_secret(_secret)  # the session's leak check (tests/support/leakcheck.py) looks for them


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    at: float = 0.0             # time.time() when the request arrived
    ended: float | None = None  # time.time() when its answer was ready
    status: int | None = None


@dataclass
class Provider:
    base_url: str = ""
    seen: list[Seen] = field(default_factory=list)
    # Answers to give next on the check endpoints, before the normal answer: a status code,
    # or (status, headers).
    script: list[int | tuple[int, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0  # seconds every request is held before it is answered
    in_flight: int = 0
    max_in_flight: int = 0

    def reset(self) -> None:
        """Forget what was seen and scripted; no delay. (The event loop thread only reads these.)"""
        self.seen.clear()
        self.script.clear()
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0


def _app(provider: Provider) -> web.Application:
    @web.middleware
    async def observe(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        seen = Seen(request.method, request.path, dict(request.headers), at=time.time())
        provider.seen.append(seen)
        provider.in_flight += 1  # one event loop thread: no lock needed
        provider.max_in_flight = max(provider.max_in_flight, provider.in_flight)
        try:
            if provider.delay:
                await asyncio.sleep(provider.delay)
            response = await handler(request)
            seen.status = response.status
            return response
        finally:
            provider.in_flight -= 1
            seen.ended = time.time()

    def scripted() -> web.Response | None:
        if not provider.script:
            return None
        item = provider.script.pop(0)
        status, headers = item if isinstance(item, tuple) else (item, {})
        return web.json_response({"error": "scripted"}, status=status, headers=headers)

    async def system_status(request: web.Request) -> web.Response:
        if (answer := scripted()) is not None:
            return answer
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if (user, password) == (GOOD_KEY, GOOD_SECRET):
                return web.json_response({"environment": {"version": "9.0"}})
        return web.json_response({"code": "woocommerce_rest_cannot_view"}, status=401)

    async def shop(request: web.Request) -> web.Response:
        if (answer := scripted()) is not None:
            return answer
        if request.headers.get("X-Shop-Access-Token") == GOOD_TOKEN:
            return web.json_response({"shop": {"name": "test"}})
        return web.json_response({"errors": "Invalid API key or access token"}, status=401)

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": f"/redirected/{request.match_info['tail']}"})

    async def redirected(request: web.Request) -> web.Response:
        return web.json_response({"environment": {"version": "9.0"}})

    async def echo(request: web.Request) -> web.Response:
        """What arrived, for the proxy's tests: method, path, query, headers, and the body's size and hash."""
        body = await request.read()
        return web.json_response({"method": request.method, "path": request.raw_path.split("?")[0],
                                  "query": request.rel_url.raw_query_string, "headers": dict(request.headers),
                                  "body_bytes": len(body), "body_sha256": hashlib.sha256(body).hexdigest()},
                                 headers={"X-Provider": "echo", "Connection": "keep-alive, X-Hop",
                                          "X-Hop": "dropped", "Keep-Alive": "timeout=5"})

    async def download(request: web.Request) -> web.StreamResponse:
        """``/download/<bytes>``: that many bytes of a repeating pattern, streamed."""
        size = int(request.match_info["size"])
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream",
                                               "Content-Length": str(size)})
        await response.prepare(request)
        chunk = bytes(range(256)) * 256
        left = size
        while left > 0:
            await response.write(chunk[:left])
            left -= len(chunk)
        await response.write_eof()
        return response

    app = web.Application(middlewares=[observe], client_max_size=64 * 1024 * 1024)
    for prefix in ("", "/shops/{shop}"):
        app.router.add_route("*", f"{prefix}/echo/{{tail:.*}}", echo)
    app.router.add_get("/download/{size:\\d+}", download)
    for prefix in ("", "/shops/{shop}"):
        app.router.add_get(f"{prefix}/wp-json/wc/v3/system_status", system_status)
        app.router.add_get(f"{prefix}/admin/shop.json", shop)
    app.router.add_get("/redirect/{tail:.*}", redirect)
    app.router.add_get("/redirected/{tail:.*}", redirected)
    return app


def start_provider() -> tuple[Provider, callable]:  # type: ignore[valid-type]
    provider = Provider()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner_box: dict[str, web.AppRunner] = {}

    async def serve() -> None:
        runner = web.AppRunner(_app(provider), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        provider.base_url = f"http://127.0.0.1:{port}"
        runner_box["runner"] = runner
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()),
                              name="test-provider", daemon=True)
    thread.start()
    ready.wait(10)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(runner_box["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return provider, stop
