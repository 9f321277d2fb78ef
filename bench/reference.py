"""The reference server: bare aiohttp handlers, each doing the least Redis work its authq
counterpart must do, on the same event loop, Redis client and Redis server as authq's API.

* ``POST /ref/accept``: reads the body, then ONE transactional pipeline (MULTI: SET job,
  SET submission, LPUSH message; EXEC) with payloads the size authq writes (measured from a
  real authq request by the bench before it starts this), and answers 202 with a small JSON.
  No parsing, validation, authentication or encryption: that is the point.
* ``GET /ref/jobs/{id}``: ONE Redis GET of the very key authq's poll reads (the same job
  records), answered as ``{"data": <stored bytes>}``; 404 when missing.

Run as ``python -m bench.reference --port P ...`` with AUTHQ_REDIS_URL set.
"""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

from tasks.storage import schema

REDIS = web.AppKey("redis", Redis)


def make_app(redis_url: str, tenant: str, job_bytes: int, submission_bytes: int, message_bytes: int) -> web.Application:
    job_payload = b"j" * job_bytes
    submission_payload = b"s" * submission_bytes
    message_payload = b"m" * message_bytes
    job_prefix = schema.job(tenant, "")  # the records authq's poll reads: schema.job(tenant, id) is prefix + id

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        job_id = "job_" + secrets.token_hex(16)
        async with request.app[REDIS].pipeline(transaction=True) as pipe:
            pipe.set(f"ref:job:{job_id}", job_payload)
            pipe.set(f"ref:job:{job_id}:submission", submission_payload)
            pipe.lpush("ref:queue", message_payload)
            await pipe.execute()
        return web.json_response({"data": {"id": job_id, "status": "queued"}}, status=202)

    async def show(request: web.Request) -> web.Response:
        raw = await request.app[REDIS].get(job_prefix + request.match_info["job"])
        if raw is None:
            return web.json_response({"message": "Job not found."}, status=404)
        return web.Response(body=b'{"data":' + raw + b"}", content_type="application/json")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def client(app: web.Application) -> AsyncIterator[None]:
        app[REDIS] = Redis.from_url(redis_url, health_check_interval=30)  # as api/app.py builds it
        yield
        await app[REDIS].aclose()

    app = web.Application()
    app.cleanup_ctx.append(client)
    app.router.add_post("/ref/accept", accept)
    app.router.add_get("/ref/jobs/{job}", show)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--job-bytes", type=int, default=550)
    parser.add_argument("--submission-bytes", type=int, default=500)
    parser.add_argument("--message-bytes", type=int, default=1300)
    args = parser.parse_args()
    app = make_app(os.environ["AUTHQ_REDIS_URL"], args.tenant, args.job_bytes, args.submission_bytes,
                   args.message_bytes)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
