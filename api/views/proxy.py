"""The proxy (contract §9): any method on ``/connectors/{id}/proxy/{path}`` sent to the
implementation's ``base_url`` + ``/{path}``, with the connector's credentials added, governed
by its rate limit and pool, streamed both ways.

- Before sending, a permit of the governor (``api/governor.py``): a pool slot and a rate-limit
  permit, waiting in line up to ``X-Authq-Max-Wait`` seconds; the slot is held until the answer
  has been passed on. A provider's ``429`` blocks the connector's limiter for everyone.
- For OAuth 2, a token expiring within 30 s is refreshed first; a ``401`` triggers one refresh
  (``api/refresh_on_demand.py``) and one resend, when the body was buffered (at most 1 MiB).
- One client session per process (connections to providers reused), built on the guarded
  resolver (``api/outbound_resolver.py``): a name is resolved once per connection and the
  connection goes to the checked address. Bodies are never decompressed or buffered beyond the
  1 MiB kept for a resend: a 200 MB download passes through in 64 KiB chunks.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from yarl import URL

from api.auth import tenant
from api.outbound_resolver import guarded_session
from api.path_ids import path_id
from api.proxy_plans import ProxyPlans
from api.refresh_on_demand import refreshed
from api.typedefs import BOX, CATALOG, GOVERNOR, REQUEST_ID, SETTINGS, STORE
from api.usage_metrics import UNKNOWN_SYSTEM, USAGE, counted_permit
from tasks.demo.origin import demo_destination
from tasks.errors import BodyUnreadable, NotAsKept, NotFound, PathRefused, Refused, RequestInvalid
from tasks.flows.credentials_for_use import OAUTH2, CredentialsForUseView
from tasks.flows.oauth2 import expires_within
from tasks.flows.proxy_request import headers_to_return, headers_to_send, provider_url
from tasks.flows.request_signing import request_headers
from tasks.model.records import Connector
from tasks.provider.addresses import AddressPolicy
from tasks.provider.failures import DestinationRefused
from tasks.provider.tls import CONTEXTS, ssl_context

PROXY_CLIENT = web.AppKey("proxy_client", aiohttp.ClientSession)
PROXY_PLANS = web.AppKey("proxy_plans", ProxyPlans)
MAX_WAIT_HEADER = "X-Authq-Max-Wait"
MAX_WAIT_DEFAULT, MAX_WAIT_MAX = 30.0, 300.0
RESEND_MAX = 1024 * 1024        # a body up to this is kept, so a 401 can be answered by a resend
REFRESH_AHEAD_SECONDS = 30      # an OAuth 2 token expiring sooner is refreshed before sending
CHUNK = 64 * 1024


def setup_proxy(app: web.Application) -> None:
    app[PROXY_PLANS] = ProxyPlans(app[CATALOG], app[BOX])
    app.cleanup_ctx.append(_client)


async def _client(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # No overall deadline (a download may take minutes): connecting and every read have one.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=settings.outbound_timeout_seconds,
                                    sock_read=settings.outbound_timeout_seconds)
    app[PROXY_CLIENT] = guarded_session(AddressPolicy(settings.allow_private_networks, demo_destination(settings)),
                                        timeout=timeout, auto_decompress=False)
    yield
    await app[PROXY_CLIENT].close()


# What the metrics count a proxied request by (``api/usage_metrics.py``): the implementation's system,
# set once the connector is known, and on authq's own failures their code.
SYSTEM = web.RequestKey("proxied_system", str)
FAILURE_CODE = web.ResponseKey("proxy_failure_code", str)


def failure(http_status: int, code: str, message: str, **extra: object) -> web.Response:
    """authq's own failure, as ``{"message", "code"}`` (plus ``extra``: a connector's ``status``)."""
    response = web.json_response({"message": message, "code": code, **extra}, status=http_status)
    response[FAILURE_CODE] = code
    return response


def _max_wait(request: web.Request) -> float:
    raw = request.headers.get(MAX_WAIT_HEADER)
    if raw is None:
        return MAX_WAIT_DEFAULT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_WAIT_MAX or math.isnan(value):
        raise RequestInvalid({MAX_WAIT_HEADER: [f"The {MAX_WAIT_HEADER} header must be a number of seconds "
                                                f"from 0 to {MAX_WAIT_MAX:g}."]})
    return value


def _tail(request: web.Request, connector_id: str) -> str:
    """The path after ``/proxy/``, still percent-encoded as the client sent it."""
    prefix = f"/api/v1/connectors/{connector_id}/proxy/"
    raw = request.rel_url.raw_path
    return raw[len(prefix):] if raw.startswith(prefix) else ""


async def _limited(content: aiohttp.StreamReader, limit: int) -> AsyncIterator[bytes]:
    sent = 0
    async for chunk in content.iter_chunked(CHUNK):
        sent += len(chunk)
        if sent > limit:
            raise BodyUnreadable(413, f"The proxy forwards bodies of at most {limit} bytes.")
        yield chunk


def _retry_after(answer: aiohttp.ClientResponse) -> float:
    try:
        return max(0.0, float(answer.headers.get("Retry-After", "")))
    except ValueError:
        return 1.0  # a 429 without seconds (or with a date): a second's pause, not none


async def _tls(request: web.Request, connector: Connector) -> ssl.SSLContext:
    """The system's CAs (and ``AUTHQ_CA_BUNDLE``'s), and the connector's client certificate, as the
    workers present it (``tasks/provider/tls.py``: one context per certificate, kept)."""
    certificate = None
    if connector.certificate_id:
        certificate = await request.app[STORE].certificate(connector.tenant, connector.certificate_id)
    ca_bundle = request.app[SETTINGS].ca_bundle
    # A kept context is taken on the loop; building one reads files and may open a key: off it.
    kept = CONTEXTS.kept(ca_bundle, certificate)
    return kept if kept is not None else await asyncio.to_thread(ssl_context, ca_bundle, certificate, request.app[BOX])


async def _send(request: web.Request, connector: Connector, usable: CredentialsForUseView, url: URL,
                body: bytes | AsyncIterator[bytes] | None) -> aiohttp.ClientResponse:
    signed = request_headers(usable, request.method, url, request.headers.get("Content-Type"), body)
    headers = headers_to_send(request.headers.items()) + list(signed.items())
    tls = await _tls(request, connector) if url.scheme == "https" else None
    return await request.app[PROXY_CLIENT].request(request.method, url, headers=headers, params=usable["query"] or None,
                                                   data=body, allow_redirects=False, ssl=tls or True)


async def _pass_on(request: web.Request, answer: aiohttp.ClientResponse) -> web.StreamResponse:
    response = web.StreamResponse(status=answer.status, reason=answer.reason)
    for name, value in headers_to_return(answer.headers.items()):
        response.headers.add(name, value)
    response.headers["X-Authq-Request-Id"] = request[REQUEST_ID]
    await response.prepare(request)
    try:
        async for chunk in answer.content.iter_chunked(CHUNK):
            await response.write(chunk)
    except (TimeoutError, aiohttp.ClientError):
        # The provider failed mid-answer: the status is sent, so the client's connection is
        # closed instead, and it cannot take a cut body for a whole one.
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


async def proxy(request: web.Request) -> web.StreamResponse:
    """The proxied request, counted by system and by the status class the client got (authq's own
    failures and refusals by their code too) once its connector is known."""
    try:
        response = await _proxy(request)
    except Refused as exc:  # answered 429 by the middleware
        if SYSTEM in request:
            request.app[USAGE].proxied(request[SYSTEM], 429, exc.code)
        raise
    if SYSTEM in request:
        request.app[USAGE].proxied(request[SYSTEM], response.status, response.get(FAILURE_CODE, ""))
    return response


async def _proxy(request: web.Request) -> web.StreamResponse:
    """The request on the connector as this process last read it, when that one would pass (its
    permit is taken only if it is still the one stored: ``Governor.acquire(kept=…)``), else, or
    when it changed, on the connector as stored now: a refusal is only ever of the current one."""
    owner, connector_id = tenant(request), path_id(request, "connector")
    store = request.app[STORE]
    latest = store.parsed_connectors.latest(owner, connector_id)
    if latest is not None and _would_pass(request, latest[0]):
        try:
            return await _proxy_on(request, owner, latest[0], kept=latest[1])
        except NotAsKept as changed:
            connector = store.parsed_connectors(changed.stored) if changed.stored is not None else None
    else:
        connector = await store.connector(owner, connector_id)
    if connector is None:
        raise NotFound("Connector")
    return await _proxy_on(request, owner, connector)


def _would_pass(request: web.Request, connector: Connector) -> bool:
    plan = request.app[PROXY_PLANS].of(connector)
    return connector.status == "authorised" and plan.base is not None and plan.usable is not None


async def _proxy_on(request: web.Request, owner: str, connector: Connector, kept: str | None = None
                    ) -> web.StreamResponse:
    """``kept``: the SHA-1 of the stored JSON ``connector`` came from, when it is a kept record
    not checked yet (``NotAsKept`` when it is no longer the one stored)."""
    plans = request.app[PROXY_PLANS]
    plan = plans.of(connector)
    impl = plan.impl
    request[SYSTEM] = impl.system if impl is not None else UNKNOWN_SYSTEM
    max_wait = _max_wait(request)
    settings = request.app[SETTINGS]
    length = request.content_length  # (read from the headers at each use: once)
    if length is not None and length > settings.proxy_max_body:
        return failure(413, "body_too_large", f"The proxy forwards bodies of at most {settings.proxy_max_body} bytes.")
    if connector.status != "authorised":
        return failure(409, "connector_not_authorised", f"The connector is {connector.status}, not authorised; "
                       "authorise it before calling its provider.", status=connector.status)
    if impl is None or impl.base_url is None:
        return failure(409, "no_base_url", "The connector's implementation has no base_url to proxy to.")
    if plan.base is None:
        return failure(403, "url_not_allowed", plan.base_refused or "The base URL cannot be rendered.")
    try:
        url = provider_url(plan.base, _tail(request, connector.id), request.rel_url.raw_query_string)
    except PathRefused as exc:
        return failure(400, "path_not_allowed", str(exc))
    if impl.type in OAUTH2 and expires_within(connector, REFRESH_AHEAD_SECONDS):
        latest = await refreshed(request, owner, connector)
        if latest is None:
            return failure(502, "provider_unreachable", "The connector's token is expiring and could not be refreshed.")
        if latest.status != "authorised":
            return failure(409, "connector_not_authorised", f"The connector is {latest.status}: the provider refused "
                           "to refresh its token; re-authorise it.", status=latest.status)
        connector, kept = latest, None
        plan = plans.of(connector)
    usable = plan.usable
    if usable is None:
        return failure(409, "connector_not_authorised", "The connector's stored credentials are not of its "
                       "implementation's type; re-authorise it.", status=connector.status)
    body: bytes | AsyncIterator[bytes] | None = None
    if request.body_exists:
        if length is not None and length <= RESEND_MAX:
            body = await request.read()
        else:
            body = _limited(request.content, settings.proxy_max_body)
    governor = request.app[GOVERNOR]
    # Refused: 429 (api/middlewares.py). Not recorded: this view gives it back, below.
    grant = await counted_permit(request, "proxy", owner, connector, max_wait=max_wait, record=False, kept=kept)
    try:
        answer = await _send(request, connector, usable, url, body)
        if answer.status == 401 and impl.type in OAUTH2 and not isinstance(body, AsyncIterator):
            answer.release()
            latest = await refreshed(request, owner, connector)
            renewed = plans.of(latest).usable if latest is not None else None
            if latest is not None and latest.status == "authorised" and renewed is not None:
                connector = latest
                # The resend reaches the provider too: it takes a permit of its own.
                await governor.give_back(grant)
                grant = await counted_permit(request, "proxy", owner, connector, max_wait=max_wait, record=False)
                answer = await _send(request, connector, renewed, url, body)
            elif latest is not None:
                return failure(409, "connector_not_authorised", f"The connector is {latest.status}: the provider "
                               "refused to refresh its token; re-authorise it.", status=latest.status)
            else:
                return failure(502, "provider_unreachable", "The provider answered 401 and the token could not be "
                               "refreshed.")
        try:
            if answer.status == 429:
                await governor.block(owner, connector, _retry_after(answer))
            return await _pass_on(request, answer)
        finally:
            answer.release()
    except DestinationRefused as exc:
        return failure(403, "url_not_allowed", exc.message)
    except BodyUnreadable as exc:  # a streamed body grew past AUTHQ_PROXY_MAX_BODY
        return failure(413, "body_too_large", exc.message)
    except (TimeoutError, aiohttp.ServerTimeoutError):
        return failure(504, "provider_timeout", "The provider did not answer in time.")
    except aiohttp.ClientError:
        return failure(502, "provider_unreachable", "The provider could not be reached.")
    finally:
        await governor.give_back(grant)
