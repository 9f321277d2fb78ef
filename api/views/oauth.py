"""The seed endpoints (contract §5, Authorisation)."""

from __future__ import annotations

import html

from aiohttp import web

from tasks.errors import NotFound, RequestInvalid
from tasks.records import new_id
from tasks.requests import AuthenticateIn, WooCallbackIn
from tasks.submission import validate_authorise, validate_reauthorise
from tasks.validation import parse

from ..auth import tenant
from ..body import json_body
from ..submit import submit
from ..typedefs import BOX, CATALOG, STORE


async def authorise(request: web.Request) -> web.StreamResponse:
    data = await json_body(request)
    body = validate_authorise(data, request.app[CATALOG], request.app[BOX])
    # The connector id is chosen now and travels in the job: a redelivered job reuses it.
    return await submit(request, tenant(request), "authorise", new_id("con"), body.model_dump(exclude_unset=True))


async def reauthorise(request: web.Request) -> web.StreamResponse:
    owner = tenant(request)
    connector = await request.app[STORE].connector(owner, request.match_info["connector"])
    if connector is None:
        raise NotFound("Connector")
    data = await json_body(request)
    body, _ = validate_reauthorise(data, connector, request.app[CATALOG], request.app[BOX])
    return await submit(request, owner, "reauthorise", connector.id, body.model_dump(exclude_unset=True))


async def authenticate(request: web.Request) -> web.StreamResponse:
    body = parse(AuthenticateIn, await json_body(request))
    if body.code is None and body.error is None:
        raise RequestInvalid({"code": ["The code field is required when error is not present."]})
    return await submit(request, tenant(request), "authenticate", None, body.model_dump(exclude_unset=True))


def _page(status: int, title: str, text: str) -> web.Response:
    page = (f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<body style='font-family:sans-serif;max-width:40em;margin:3em auto'>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>")
    return web.Response(status=status, text=page, content_type="text/html")


async def authenticate_redirect(request: web.Request) -> web.StreamResponse:
    # A provider's redirect. authq issues no authorization-code state yet (the OAuth flows
    # land with the flows issue), so every state here is one authq never issued.
    if not request.query.get("state"):
        return _page(400, "Missing state", "This link is incomplete: it carries no state. Start the connection again.")
    return _page(400, "Link not valid", "This authorisation link was never issued, was already used or has expired. "
                 "Start the connection again from the application you came from.")


async def woo_app_auth(request: web.Request) -> web.StreamResponse:
    body = parse(WooCallbackIn, await json_body(request))
    # WooCommerce app auth states are issued by the flows issue's authorise; none exist yet.
    _ = body
    raise NotFound("State")
