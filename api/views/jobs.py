"""``GET /jobs/{id}`` (with ``Prefer: wait``) and ``GET /jobs/{id}/events`` (server-sent events)."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from api.auth import tenant
from api.path_ids import path_id
from api.responses import one
from api.typedefs import REQUEST_ID, STORE
from api.waiting import preferred_wait, wait_for_job
from tasks.errors import NotFound
from tasks.model.records import FINISHED

HEARTBEAT_SECONDS = 15.0  # a comment line when nothing changed, so proxies keep the stream open
POLL_SECONDS = 1.0        # how often a quiet stream looks whether its client left or the server stops
# Set when the server shuts down: open streams end within POLL_SECONDS instead of holding it up.
STREAMS_CLOSING = web.AppKey("streams_closing", asyncio.Event)


def setup_events(app: web.Application) -> None:
    app[STREAMS_CLOSING] = asyncio.Event()

    async def close_streams(app: web.Application) -> None:
        app[STREAMS_CLOSING].set()

    app.on_shutdown.append(close_streams)


async def show(request: web.Request) -> web.StreamResponse:
    owner = tenant(request)
    wait = preferred_wait(request)
    if wait is None:
        # The hot path of every client: the stored bytes are the public view; no parsing.
        raw = await request.app[STORE].job_json(owner, path_id(request, "job"))
        if raw is None:
            raise NotFound("Job")
        headers = {} if b'"finished_at":null' not in raw else {"Retry-After": "1"}
        return web.Response(body=b'{"data":' + raw + b"}", content_type="application/json", headers=headers)
    job = await request.app[STORE].job(owner, path_id(request, "job"))
    if job is None:
        raise NotFound("Job")
    job = await wait_for_job(request, job, wait)
    headers = {"Preference-Applied": f"wait={wait:g}"}
    if not job.finished:
        headers["Retry-After"] = "1"
    return one(job.view(), headers=headers)


def _first_id(request: web.Request) -> int:
    """Event ids count up per stream; a reconnecting EventSource's ``Last-Event-ID`` is continued."""
    try:
        return max(0, int(request.headers.get("Last-Event-ID", "0")))
    except ValueError:
        return 0


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def events(request: web.Request) -> web.StreamResponse:
    """The job's changes as server-sent events: ``event: job``, ``id`` a counter, ``data`` the job
    (as ``GET /jobs/{id}`` shows it in ``data``); the stream ends after the finished state.

    Subscribed before the first read, so no change is missed; each notice is followed by a
    fresh read of the record, so every event is the job as stored then (never older than the
    one before; states saved in quick succession may reach the client as their latest one).
    The record is also re-read every heartbeat, in case a notice was lost (pub/sub is
    at-most-once, e.g. across a reconnection to Redis).
    """
    owner = tenant(request)
    job_id = path_id(request, "job")
    store = request.app[STORE]
    closing = request.app[STREAMS_CLOSING]
    async with store.job_changes(owner, job_id) as changes:
        raw = await store.job_json(owner, job_id)
        if raw is None:
            raise NotFound("Job")
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: pass events on at once
            "X-Request-Id": request[REQUEST_ID],
        })
        await response.prepare(request)
        counter = _first_id(request)
        sent: bytes | None = None
        last_write = time.monotonic()
        try:
            while raw is not None:  # None: the record expired or was removed; nothing more will come
                if raw != sent:
                    counter += 1
                    await response.write(b"id: %d\nevent: job\ndata: %s\n\n" % (counter, raw))
                    sent, last_write = raw, time.monotonic()
                    if json.loads(raw)["status"] in FINISHED:
                        break
                if closing.is_set() or _gone(request):
                    break
                quiet = time.monotonic() - last_write >= HEARTBEAT_SECONDS
                if quiet:
                    await response.write(b": keepalive\n\n")
                    last_write = time.monotonic()
                notice = await changes.get_message(ignore_subscribe_messages=True, timeout=POLL_SECONDS)
                if notice is not None or quiet:
                    raw = await store.job_json(owner, job_id)
            await response.write_eof()
        except ConnectionResetError:  # the client left while we wrote
            pass
        return response
