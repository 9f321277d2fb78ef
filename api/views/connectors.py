"""Connectors: list, show, delete, refresh."""

from __future__ import annotations

from aiohttp import web

from api.auth import actor, tenant
from api.body import json_body
from api.path_ids import path_id
from api.responses import one, page_params, paged
from api.submit import submit
from api.typedefs import STORE
from tasks.errors import NotFound
from tasks.model.audit import AuditEvent
from tasks.model.connector_filter import parse_filter


async def index(request: web.Request) -> web.StreamResponse:
    page, per_page = page_params(request)
    wanted = parse_filter(request.query.items())
    items, total = await request.app[STORE].connectors(tenant(request), page, per_page, wanted)
    return paged(request, [c.view() for c in items], total, page, per_page, filters=wanted.query())


async def show(request: web.Request) -> web.StreamResponse:
    connector = await request.app[STORE].connector(tenant(request), path_id(request, "connector"))
    if connector is None:
        raise NotFound("Connector")
    return one(connector.view())


async def delete(request: web.Request) -> web.StreamResponse:
    connector_id = path_id(request, "connector")
    event = AuditEvent.new("connector.deleted", actor(request), connector_id)
    if not await request.app[STORE].delete_connector(tenant(request), connector_id, event):
        raise NotFound("Connector")
    return web.Response(status=204)


async def refresh(request: web.Request) -> web.StreamResponse:
    owner = tenant(request)
    connector = await request.app[STORE].connector(owner, path_id(request, "connector"))
    if connector is None:
        raise NotFound("Connector")
    await json_body(request, optional=True)  # no fields; a body, if sent, must still be JSON
    if connector.never_authorised:
        # Nothing was ever issued to refresh: say so now, rather than queue a job bound to fail.
        return web.json_response({"message": "The connector has never been authorised, so it has no credentials to "
                                             "refresh; authorise it first.", "status": connector.status}, status=409)
    # The version to replace: concurrent refreshes of one version make one provider call.
    return await submit(request, owner, "refresh", connector.id, {"credential_version": connector.credential_version})
