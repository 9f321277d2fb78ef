"""A real HTTP server on loopback playing a provider's credential-check endpoints.

It runs on its own thread and event loop for the whole test session and records every
request it sees, so tests count calls as the provider counts them.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from dataclasses import dataclass, field

from aiohttp import web

GOOD_KEY, GOOD_SECRET = "ck_good_1234", "cs_good_secret_5678"
GOOD_TOKEN = "shpat_good_token_abcdef"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Provider:
    base_url: str = ""
    seen: list[Seen] = field(default_factory=list)
    # Status codes to answer next on the check endpoints, before the normal answer.
    script: list[int] = field(default_factory=list)


def _app(provider: Provider) -> web.Application:
    async def record(request: web.Request) -> web.Response | None:
        provider.seen.append(Seen(request.method, request.path, dict(request.headers)))
        if provider.script:
            return web.json_response({"error": "scripted"}, status=provider.script.pop(0))
        return None

    async def system_status(request: web.Request) -> web.Response:
        if (scripted := await record(request)) is not None:
            return scripted
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if (user, password) == (GOOD_KEY, GOOD_SECRET):
                return web.json_response({"environment": {"version": "9.0"}})
        return web.json_response({"code": "woocommerce_rest_cannot_view"}, status=401)

    async def shop(request: web.Request) -> web.Response:
        if (scripted := await record(request)) is not None:
            return scripted
        if request.headers.get("X-Shop-Access-Token") == GOOD_TOKEN:
            return web.json_response({"shop": {"name": "test"}})
        return web.json_response({"errors": "Invalid API key or access token"}, status=401)

    app = web.Application()
    app.router.add_get("/wp-json/wc/v3/system_status", system_status)
    app.router.add_get("/admin/shop.json", shop)
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
