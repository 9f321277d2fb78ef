"""Permits (contract §9): a connector's rate-limit permit and pool slot, for the platform's own calls."""

from __future__ import annotations

from aiohttp import web

from api.auth import tenant
from api.body import json_body
from api.path_ids import path_id
from api.responses import one
from api.typedefs import GOVERNOR, STORE
from api.usage_metrics import counted_permit
from tasks.errors import NotFound
from tasks.model.bodies import PermitIn
from tasks.validation.field_errors import parse


async def create(request: web.Request) -> web.StreamResponse:
    owner = tenant(request)
    connector = await request.app[STORE].connector(owner, path_id(request, "connector"))
    if connector is None:
        raise NotFound("Connector")
    raw = await json_body(request, optional=True)
    body = parse(PermitIn, {} if raw is None else raw)
    if connector.status != "authorised":
        # Its provider would refuse the platform's call anyway: no permit is spent on it.
        return web.json_response({"message": f"The connector is {connector.status}, not authorised; authorise it "
                                             "before calling its provider.", "status": connector.status}, status=409)
    grant = await counted_permit(request, "permits", owner, connector, max_wait=body.wait_seconds)
    return one(grant.view(), status=201)  # no Location: a permit is not a record one reads back


async def delete(request: web.Request) -> web.StreamResponse:
    if not await request.app[GOVERNOR].release(tenant(request), path_id(request, "permit")):
        raise NotFound("Permit")
    return web.Response(status=204)
