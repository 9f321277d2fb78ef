"""Webhook endpoints (contract §10): register, list, show, delete, ping, and the deliveries log."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from api.auth import actor, tenant
from api.body import json_body
from api.path_ids import path_id
from api.responses import one, page_params, paged
from api.typedefs import BOX, SETTINGS, STORE
from tasks.errors import NotFound, RequestInvalid
from tasks.model.audit import AuditEvent
from tasks.model.records import new_id, utcnow
from tasks.model.webhooks import EVENT_TYPES, Delivery, Webhook, WebhookIn
from tasks.security.webhook_signing import new_secret
from tasks.storage import webhooks
from tasks.validation.field_errors import parse


async def create(request: web.Request) -> web.StreamResponse:
    body = parse(WebhookIn, await json_body(request))
    if urlsplit(body.url).scheme != "https" and not request.app[SETTINGS].allow_private_networks:
        # (Where the name leads is checked at every delivery, on the address connected to.)
        raise RequestInvalid.one("url", "The url must be https://.")
    owner = tenant(request)
    secret = new_secret()
    webhook = Webhook(id=new_id("whk"), tenant=owner, url=body.url,
                      events=list(body.events) if body.events is not None else [t for t in EVENT_TYPES if t != "ping"],
                      description=body.description, secret_sealed=request.app[BOX].seal(secret), created_at=utcnow())
    event = AuditEvent.new("webhook.created", actor(request), None, webhook_id=webhook.id)
    await request.app[STORE].run(webhooks.create_webhook(webhook, event))
    return one(webhook.created_view(secret), status=201, headers={"Location": f"/api/v1/webhooks/{webhook.id}"})


async def index(request: web.Request) -> web.StreamResponse:
    page, per_page = page_params(request)
    items, total = await request.app[STORE].run(webhooks.webhooks(tenant(request), page, per_page))
    return paged(request, [w.view() for w in items], total, page, per_page)


async def _webhook(request: web.Request) -> Webhook:
    found = await request.app[STORE].run(webhooks.webhook(tenant(request), path_id(request, "webhook")))
    if found is None:
        raise NotFound("Webhook")
    return found


async def show(request: web.Request) -> web.StreamResponse:
    return one((await _webhook(request)).view())


async def delete(request: web.Request) -> web.StreamResponse:
    webhook_id = path_id(request, "webhook")
    event = AuditEvent.new("webhook.deleted", actor(request), None, webhook_id=webhook_id)
    if not await request.app[STORE].run(webhooks.delete_webhook(tenant(request), webhook_id, event)):
        raise NotFound("Webhook")
    return web.Response(status=204)


async def test(request: web.Request) -> web.StreamResponse:
    webhook = await _webhook(request)
    await json_body(request, optional=True)  # no fields; a body, if sent, must still be JSON
    if webhook.disabled:
        return web.json_response({"message": "The webhook is disabled (its endpoint answered 410 Gone); register "
                                             "the endpoint again to send to it."}, status=409)
    event = await request.app[STORE].run(webhooks.send_ping(webhook))
    sent = Delivery(event_id=event.id, webhook_id=webhook.id, type=event.type, body=event.body, created_at=event.at)
    return one(sent.view(), status=202, headers={"Location": f"/api/v1/webhooks/{webhook.id}/deliveries"})


async def deliveries(request: web.Request) -> web.StreamResponse:
    page, per_page = page_params(request)
    webhook = await _webhook(request)
    items, total = await request.app[STORE].run(webhooks.deliveries(webhook.tenant, webhook.id, page, per_page))
    return paged(request, [d.view() for d in items], total, page, per_page)
