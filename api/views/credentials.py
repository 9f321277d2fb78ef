"""``GET /connectors/{id}/credentials`` (contract §9): the connector's credentials, ready to use.

An OAuth 2 token that expires within ``min_ttl`` seconds is refreshed first
(``api/refresh_on_demand.py``).
"""

from __future__ import annotations

from aiohttp import web

from api.auth import actor, tenant
from api.path_ids import path_id
from api.refresh_on_demand import refreshed
from api.responses import error
from api.typedefs import BOX, CATALOG, STORE
from api.usage_metrics import UNKNOWN_SYSTEM, USAGE
from tasks.errors import NotFound, RequestInvalid
from tasks.flows.credentials_for_use import MIN_TTL_DEFAULT, MIN_TTL_MAX, credentials_for_use
from tasks.flows.oauth2 import expires_within
from tasks.model.audit import AuditEvent
from tasks.model.records import Connector

RETRY_AFTER = "5"


def _min_ttl(request: web.Request) -> int:
    raw = request.query.get("min_ttl")
    if raw is None:
        return MIN_TTL_DEFAULT
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MIN_TTL_MAX:
        raise RequestInvalid({"min_ttl": [f"The min ttl field must be an integer between 0 and {MIN_TTL_MAX}."]})
    return int(raw)


def _conflict(connector: Connector, message: str) -> web.Response:
    return web.json_response({"message": message, "status": connector.status}, status=409)


def _unreachable() -> web.Response:
    return error(503, "The connector's token is about to expire and could not be refreshed just now (the provider "
                      "did not answer in time); retry shortly.", headers={"Retry-After": RETRY_AFTER})


async def show(request: web.Request) -> web.StreamResponse:
    owner = tenant(request)
    connector_id = path_id(request, "connector")
    min_ttl = _min_ttl(request)
    connector = await request.app[STORE].connector(owner, connector_id)
    if connector is None:
        raise NotFound("Connector")
    impl = request.app[CATALOG].implementation(connector.authentication_implementation_id)
    count = request.app[USAGE].credential_read
    system = impl.system if impl is not None else UNKNOWN_SYSTEM
    if connector.status == "authorised" and expires_within(connector, min_ttl):
        latest = await refreshed(request, owner, connector)
        if latest is None:
            count(system, "unreachable")
            return _unreachable()
        connector = latest
    if connector.status != "authorised":
        count(system, "not_authorised")
        return _conflict(connector, f"The connector is {connector.status}, not authorised: it has no credentials "
                                    "to use; re-authorise it.")
    usable = credentials_for_use(connector, impl, request.app[BOX]) if impl is not None else None
    if usable is None:
        count(system, "not_authorised")
        return _conflict(connector, "The connector's stored credentials are not of its implementation's type; "
                                    "re-authorise it.")
    # Written before the answer leaves: a read the log does not show never happened.
    await request.app[STORE].audit(owner, AuditEvent.new("credentials.read", actor(request), connector.id,
                                                         type=usable["type"], min_ttl=min_ttl))
    count(system, "served")
    return web.json_response({"data": usable}, headers={"Cache-Control": "no-store"})
