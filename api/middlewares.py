"""Cross-cutting request handling: API-key authentication (and the scope an endpoint needs) and
error rendering.

Every error leaves as JSON with a ``message`` (the contract's shapes); an unexpected
exception is logged with the request id and answered 500 without internals.
"""

from __future__ import annotations

import logging
import math

from aiohttp import web
from aiohttp.typedefs import Handler
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.auth import lacks_scope, static_caller, stored_caller
from api.operations import ENDPOINTS_BY_ROUTE
from api.responses import error, refused
from api.typedefs import API_RATE, CALLER, KEY_USAGE, REQUEST_ID, TENANT
from tasks.errors import BodyUnreadable, EventsUnavailable, NotFound, Refused, RequestInvalid
from tasks.model.api_keys import Scope
from tasks.model.ids import unique_id

log = logging.getLogger("authq.api")
API_PREFIX = "/api/v1/"


def key_and_scope(request: web.Request) -> tuple[bool, Scope | None]:
    """Whether the request needs a key and the scope it needs, as its endpoint declares
    (``Endpoint.key``, ``Endpoint.scope``). A request no endpoint serves (an unknown path, a wrong
    method) needs a key under the API prefix: without one it is answered 401, so a caller without
    a key learns nothing of which paths exist; with any key, its 404 or 405 says nothing a key of
    any scope may not know (no scope)."""
    endpoint = request.app[ENDPOINTS_BY_ROUTE].get(request.match_info.route)
    if endpoint is None:
        return request.path.startswith(API_PREFIX), None
    return endpoint.key, endpoint.scope


@web.middleware
async def request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request.headers.get("X-Request-Id") or unique_id()
    request[REQUEST_ID] = rid[:64]
    response = await handler(request)
    response.headers["X-Request-Id"] = request[REQUEST_ID]
    return response


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RequestInvalid as exc:
        return error(422, exc.message, errors=exc.errors)
    except NotFound as exc:
        return error(404, exc.message)
    except BodyUnreadable as exc:
        return error(exc.status, exc.message)
    except Refused as exc:
        return refused(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = {404: "Not found.", 405: "Method not allowed.", 413: "The request body is too large."}.get(
            exc.status, exc.reason)
        return error(exc.status, message, headers={k: v for k, v in exc.headers.items() if k in ("Allow",)})
    except ConnectionResetError:
        # The client closed the connection before its request was read (a load tester stopping,
        # a phone losing signal): nothing is wrong here and no one is left to answer. Counted as
        # nginx's 499, "client closed request".
        log.info("client closed the connection mid-request", extra={"request_id": request.get(REQUEST_ID),
                                                                     "path": request.path})
        return web.Response(status=499)
    except (RedisConnectionError, RedisTimeoutError, EventsUnavailable):
        # Redis restarting or unreachable: answer like the submission path does (503 and
        # Retry-After), not as an internal error; the client tries again.
        log.warning("Redis unavailable", extra={"request_id": request.get(REQUEST_ID), "path": request.path})
        return error(503, "The service's store is unavailable just now; retry in a few seconds.",
                     headers={"Retry-After": "5"})
    except Exception:
        log.exception("unhandled error", extra={"request_id": request.get(REQUEST_ID), "path": request.path})
        return error(500, f"Internal error; quote request id {request.get(REQUEST_ID)} when reporting it.")


@web.middleware
async def api_key(request: web.Request, handler: Handler) -> web.StreamResponse:
    needs_key, scope = key_and_scope(request)
    if needs_key:
        caller, digest = static_caller(request)  # (the awaits only when needed: this runs on every request)
        if caller is None and digest is not None:
            caller = await stored_caller(request, digest)
        if caller is None:
            return error(401, "Unauthenticated.", headers={"WWW-Authenticate": "Bearer"})
        request[TENANT] = caller.tenant
        request[CALLER] = caller
        usage = request.app[KEY_USAGE]
        if usage.due(caller.id):  # a use, whatever the answer (at most a write a minute)
            await usage.note(caller.id)
        limiter = request.app.get(API_RATE)
        if limiter is not None:
            wait = await limiter.wait_for(digest or "")
            if wait > 0:
                return error(429, "Too many requests for this API key; slow down.",
                             headers={"Retry-After": str(max(1, math.ceil(wait)))})
        refused = None if scope is None else lacks_scope(caller, scope)
        if refused is not None:
            return error(403, refused)
    return await handler(request)
