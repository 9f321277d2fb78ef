"""bench.use's other processes: the upstream the proxy and the forwarder call, and the reference
handlers, bare aiohttp on the same Redis as authq (``python -m bench.use_reference ...``).

- ``--upstream``: ``/x`` answers a small JSON; ``/download/<bytes>`` streams that many bytes.
- the reference: ``/forward/{path}`` sends the request on to the upstream through one shared
  client session (no limiter, no credentials, no header rules) and streams the answer back;
  ``/get`` does one Redis GET; ``/evalsha`` runs one EVALSHA.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

CHUNK = 64 * 1024
SCRIPT = "return redis.call('INCR', KEYS[1])"


def upstream_app() -> web.Application:
    async def small(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "path": request.path})

    async def download(request: web.Request) -> web.StreamResponse:
        size = int(request.match_info["size"])
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
        await response.prepare(request)
        chunk = b"x" * CHUNK
        left = size
        while left > 0:
            await response.write(chunk[:left])
            left -= CHUNK
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/healthz", small)
    app.router.add_get("/download/{size:\\d+}", download)
    app.router.add_route("*", "/{tail:.*}", small)
    return app


def reference_app(redis_url: str, upstream: str) -> web.Application:
    redis_key = web.AppKey("redis", Redis)
    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def forward(request: web.Request) -> web.StreamResponse:
        async with request.app[session_key].request(request.method, f"{upstream}/{request.match_info['path']}",
                                                    data=await request.read() or None) as answer:
            response = web.StreamResponse(status=answer.status)
            response.content_type = answer.content_type
            await response.prepare(request)
            async for chunk in answer.content.iter_chunked(CHUNK):
                await response.write(chunk)
            await response.write_eof()
            return response

    async def get(request: web.Request) -> web.Response:
        raw = await request.app[redis_key].get("bench:use:ref")
        return web.Response(body=b'{"data":' + (raw or b"null") + b"}", content_type="application/json")

    async def evalsha(request: web.Request) -> web.Response:
        await request.read()
        value = await request.app[redis_key].eval(SCRIPT, 1, "bench:use:count")
        return web.json_response({"data": {"n": value}}, status=201)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def clients(app: web.Application) -> AsyncIterator[None]:
        app[redis_key] = Redis.from_url(redis_url)
        await app[redis_key].set("bench:use:ref", b'{"id":"con_x","status":"authorised"}')
        app[session_key] = aiohttp.ClientSession()
        yield
        await app[session_key].close()
        await app[redis_key].aclose()

    app = web.Application()
    app.cleanup_ctx.append(clients)
    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/forward/{path:.*}", forward)
    app.router.add_get("/get", get)
    app.router.add_post("/evalsha", evalsha)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", action="store_true", help="serve as the upstream")
    parser.add_argument("--upstream-url", default="")
    args = parser.parse_args()
    app = upstream_app() if args.upstream else reference_app(os.environ["AUTHQ_REDIS_URL"], args.upstream_url)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
