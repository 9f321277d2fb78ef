"""``GET /jobs/{id}`` (with ``Prefer: wait``) and ``GET /jobs/{id}/events`` (server-sent events)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from aiohttp import web
from redis.exceptions import RedisError

from api.auth import presented_key, tenant
from api.event_hub import Listener
from api.path_ids import path_id
from api.responses import error
from api.stream_slots import RETRY_AFTER_SECONDS, StreamSlot
from api.typedefs import EVENT_HUB, REQUEST_ID, SETTINGS, STORE, STREAM_SLOTS
from api.waiting import preferred_wait, wait_for_job
from tasks.errors import NotFound
from tasks.model.records import Job
from tasks.storage import schema
from tasks.storage.schema import hash_api_key

log = logging.getLogger("authq.api")
HEARTBEAT_SECONDS = 15.0  # a comment line when nothing changed, so proxies keep the stream open
POLL_SECONDS = 1.0        # how often a quiet stream looks whether its client left or the server stops
RECONNECT_MILLISECONDS = 1000  # the `retry:` of a stream's last event when its time is up
# Set when the server shuts down: open streams end within POLL_SECONDS instead of holding it up.
STREAMS_CLOSING = web.AppKey("streams_closing", asyncio.Event)


def setup_events(app: web.Application) -> None:
    app[STREAMS_CLOSING] = asyncio.Event()

    async def close_streams(app: web.Application) -> None:
        app[STREAMS_CLOSING].set()

    app.on_shutdown.append(close_streams)


async def show(request: web.Request) -> web.StreamResponse:
    owner = tenant(request)
    job_id = path_id(request, "job")
    # The hot path of every client: the stored bytes are the public view; no parsing.
    raw = await request.app[STORE].job_json(owner, job_id)
    if raw is None:
        raise NotFound("Job")
    wait = preferred_wait(request)
    headers = {}
    if wait is not None:
        raw = await wait_for_job(request, owner, job_id, raw, wait)
        headers["Preference-Applied"] = f"wait={wait:g}"
    if not Job.stored_finished(raw):
        headers["Retry-After"] = "1"
    return web.Response(body=b'{"data":' + raw + b"}", content_type="application/json", headers=headers)


def _first_id(request: web.Request) -> int:
    """Event ids count up per stream; a reconnecting EventSource's ``Last-Event-ID`` is continued."""
    try:
        return max(0, int(request.headers.get("Last-Event-ID", "0")))
    except ValueError:
        return 0


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _time_is_up(max_seconds: float) -> bytes:
    """The last event of a stream that stayed open its longest: no ``id`` (a reconnection goes on
    from the last job event's), and ``retry`` tells an EventSource to reconnect after a second."""
    seconds = int(max_seconds) if max_seconds == int(max_seconds) else max_seconds
    data = json.dumps({"reason": "max_duration", "seconds": seconds}, separators=(",", ":"))
    return b"event: reconnect\nretry: %d\ndata: %s\n\n" % (RECONNECT_MILLISECONDS, data.encode())


async def events(request: web.Request) -> web.StreamResponse:
    """The job's changes as server-sent events: ``event: job``, ``id`` a counter, ``data`` the job
    (as ``GET /jobs/{id}`` shows it in ``data``); the stream ends after the finished state, or
    after ``AUTHQ_STREAM_MAX_SECONDS`` with an ``event: reconnect``.

    One API key holds at most ``MAX_STREAMS_PER_KEY`` streams (a lease each, fleet-wide:
    ``api/stream_slots.py``); beyond, 429. A stream takes no Redis connection of its own: it
    listens on the process's event hub (``api/event_hub.py``), and reads through the command pool.

    Subscribed before the first read, so no change is missed; each notice is followed by a
    fresh read of the record, so every event is the job as stored then (never older than the
    one before; states saved in quick succession may reach the client as their latest one).
    When the hub's connection drops it hands every listener ``MISSED`` once it has subscribed
    again, and the stream re-reads; the record is also re-read every heartbeat, in case.
    """
    owner = tenant(request)
    job_id = path_id(request, "job")
    slots = request.app[STREAM_SLOTS]
    slot = await slots.acquire(hash_api_key(presented_key(request) or ""))
    if slot is None:
        return error(429, f"This API key has {slots.limit} event streams open already; close one first.",
                     headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    try:
        async with request.app[EVENT_HUB].listen(schema.job_events(owner, job_id)) as changes:
            raw = await request.app[STORE].job_json(owner, job_id)
            if raw is None:
                raise NotFound("Job")
            return await _stream(request, owner, job_id, raw, changes, slot)
    finally:
        slots.release(slot)


async def _stream(request: web.Request, owner: str, job_id: str, raw: bytes | None, changes: Listener,
                  slot: StreamSlot) -> web.StreamResponse:
    store = request.app[STORE]
    closing = request.app[STREAMS_CLOSING]
    max_seconds = request.app[SETTINGS].stream_max_seconds
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # nginx: pass events on at once
        "X-Request-Id": request[REQUEST_ID],
    })
    await response.prepare(request)
    ends_at = time.monotonic() + max_seconds
    counter = _first_id(request)
    sent: bytes | None = None
    last_write = time.monotonic()
    try:
        while raw is not None:  # None: the record expired or was removed; nothing more will come
            if raw != sent:
                counter += 1
                await response.write(b"id: %d\nevent: job\ndata: %s\n\n" % (counter, raw))
                sent, last_write = raw, time.monotonic()
                if Job.stored_finished(raw):
                    break
            if closing.is_set() or _gone(request):
                break
            now = time.monotonic()
            if now >= ends_at:
                await response.write(_time_is_up(max_seconds))
                break
            quiet = now - last_write >= HEARTBEAT_SECONDS
            if quiet:
                await response.write(b": keepalive\n\n")
                last_write = now
            await request.app[STREAM_SLOTS].keep(slot)
            notice = await changes.get(timeout=min(POLL_SECONDS, ends_at - now))
            if notice is not None or quiet:
                # Read, not the notice's copy: a copy published before an earlier read may
                # arrive after it, and a stream never goes back to an older state.
                changes.clear()  # the read below covers every notice that waited
                raw = await store.job_json(owner, job_id)
        await response.write_eof()
    except ConnectionResetError:  # the client left while we wrote
        pass
    except RedisError:  # the store is out: end the stream; the client reconnects (and gets 503 until it is back)
        log.warning("job event stream ended: Redis unavailable", extra={"request_id": request[REQUEST_ID]})
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
    return response
