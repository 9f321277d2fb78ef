"""The demo provider's HTTP side: its pages, the token endpoint, the store and the API."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping

import aiohttp
from aiohttp import web

from api.demo import oauth, pages, woo
from api.demo.identity import identify
from api.demo.store import DemoStore
from api.typedefs import REDIS, SETTINGS
from tasks.demo import facts
from tasks.errors import DemoRefused

DEMO_STORE = web.AppKey("demo_store", DemoStore)
CALLBACK_SECONDS = 60  # how long WooCommerce waits for the callback's answer
ORDERS = [
    {"id": 1001, "status": "processing", "total": "42.00", "currency": "GBP"},
    {"id": 1002, "status": "completed", "total": "17.50", "currency": "GBP"},
]


async def demo_store(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: the demo's store on the API's Redis (made by an earlier context)."""
    app[DEMO_STORE] = DemoStore(app[REDIS])
    yield


def _store(request: web.Request) -> DemoStore:
    return request.app[DEMO_STORE]


def _public(request: web.Request) -> str:
    return request.app[SETTINGS].effective_public_url


def _issuer(request: web.Request) -> str:
    return _public(request) + facts.ISSUER_PATH


async def _form(request: web.Request) -> Mapping[str, str]:
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def index(request: web.Request) -> web.StreamResponse:
    return pages.index(_public(request))


# --- OAuth 2 ---------------------------------------------------------------------------------

async def authorize(request: web.Request) -> web.StreamResponse:
    """The consent page (the request held under an unguessable id the form carries back)."""
    redirect_uri = request.app[SETTINGS].effective_redirect_uri
    try:
        asked = oauth.parse_authorize(request.query, redirect_uri)
    except DemoRefused as exc:
        if not exc.redirect:
            return pages.problem("This request cannot be authorized", exc.description)
        target = oauth.redirect_with(redirect_uri, {"error": exc.error, "error_description": exc.description,
                                                    "state": request.query.get("state"), "iss": _issuer(request)})
        raise web.HTTPSeeOther(target) from None
    request_id = secrets.token_urlsafe(32)
    await _store(request).hold("consent", request_id, {
        "redirect_uri": asked.redirect_uri, "state": asked.state, "scopes": list(asked.scopes),
        "code_challenge": asked.code_challenge, "redirect_uri_given": asked.redirect_uri_given})
    return pages.consent(request_id, asked.scopes)


async def decide(request: web.Request) -> web.StreamResponse:
    """Approve or Deny: back to the client's redirect URI with a code, or ``error=access_denied``."""
    form = await _form(request)
    held = await _store(request).take_pending("consent", form.get("request", ""))
    if held is None:
        return pages.problem("This request has expired", "It was already answered or is more than ten minutes "
                             "old. Start again from the application you came from.")
    asked = oauth.AuthorizeRequest(held["redirect_uri"], held["state"], tuple(held["scopes"]),
                                   held["code_challenge"], held["redirect_uri_given"])
    if form.get("decision") == "approve":
        target = await oauth.approve(_store(request), asked, _issuer(request))
    else:
        target = oauth.deny(asked, _issuer(request))
    raise web.HTTPSeeOther(target)


async def token(request: web.Request) -> web.StreamResponse:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    try:
        if request.content_type != "application/x-www-form-urlencoded":
            raise DemoRefused("invalid_request", "The body must be application/x-www-form-urlencoded.")
        form = await _form(request)
        client_id = oauth.authenticate_client(request.headers.get("Authorization"), form)
        answer = await oauth.token(_store(request), client_id, form)
    except DemoRefused as exc:
        return web.json_response(exc.body(), status=exc.status, headers={**headers, **exc.headers})
    return web.json_response(answer, headers=headers)


# --- the store -------------------------------------------------------------------------------

async def store_authorize(request: web.Request) -> web.StreamResponse:
    try:
        asked = woo.parse_request(request.query, _public(request))
    except DemoRefused as exc:
        return pages.problem("Error", exc.description)
    request_id = secrets.token_urlsafe(32)
    await _store(request).hold("store-request", request_id, asked.record())
    return pages.store_approval(request_id, asked.app_name, woo.SCOPES[asked.scope])


async def store_decide(request: web.Request) -> web.StreamResponse:
    """Approve: new keys, posted to the callback; kept, and the browser sent on, only on a 200."""
    form = await _form(request)
    store = _store(request)
    held = await store.take_pending("store-request", form.get("request", ""))
    if held is None:
        return pages.problem("This request has expired", "It was already answered or is more than ten minutes "
                             "old. Start again from the application you came from.")
    asked = woo.AppRequest(**held)
    if form.get("decision") != "approve":
        raise web.HTTPSeeOther(woo.returned(asked, success=False))
    keys = woo.new_keys()
    await store.save_woo_key(keys.consumer_key, keys.consumer_secret, {
        "key_id": keys.key_id, "app_name": asked.app_name, "permissions": asked.scope})
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CALLBACK_SECONDS)) as session, \
                session.post(asked.callback_url, json=keys.payload(asked)) as answer:
            status = answer.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0
    if status != 200:
        await store.delete_woo_key(keys.consumer_key)
        return pages.problem("Access denied", "An error occurred in the request and at the time were unable to "
                             "send the consumer data.", 401)
    raise web.HTTPSeeOther(woo.returned(asked, success=True))


# --- the API ---------------------------------------------------------------------------------

UNAUTHORISED = {"message": "Valid demo credentials are needed (see /demo/)."}
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="authq demo", Basic realm="authq demo"'}


async def me(request: web.Request) -> web.StreamResponse:
    who = await identify(_store(request), request.headers.get("Authorization"))
    if who is None:
        return web.json_response(UNAUTHORISED, status=401, headers=CHALLENGE)
    return web.json_response(who)


async def orders(request: web.Request) -> web.StreamResponse:
    if await identify(_store(request), request.headers.get("Authorization")) is None:
        return web.json_response(UNAUTHORISED, status=401, headers=CHALLENGE)
    return web.json_response(ORDERS)
