"""``GET /connectors/{id}/credentials`` (contract §9): the connector's credentials, ready to use.

An OAuth 2 token that expires within ``min_ttl`` seconds is refreshed first: by a ``refresh``
job, the same single-flight refresh every other one goes through (tasks/flows/refresh.py), one
job per credential version however many reads ask at once (tasks/storage/refresh_for_use.py),
each read waiting on it through the event hub like a ``Prefer: wait`` poll.
"""

from __future__ import annotations

from aiohttp import web

from api.auth import tenant
from api.path_ids import path_id
from api.responses import error
from api.submit import accept
from api.typedefs import BOX, CATALOG, STORE
from api.waiting import wait_for_job
from tasks.errors import NotFound, QueueUnavailable, RequestInvalid, TenantFull
from tasks.flows.credentials_for_use import MIN_TTL_DEFAULT, MIN_TTL_MAX, credentials_for_use
from tasks.flows.oauth2 import expires_within
from tasks.model.records import Connector, new_id
from tasks.storage.refresh_for_use import claim_refresh, release_refresh

REFRESH_WAIT_SECONDS = 30.0
RETRY_AFTER = "5"


def _min_ttl(request: web.Request) -> int:
    raw = request.query.get("min_ttl")
    if raw is None:
        return MIN_TTL_DEFAULT
    if not raw.isdigit() or int(raw) > MIN_TTL_MAX:
        raise RequestInvalid({"min_ttl": [f"The min ttl field must be an integer between 0 and {MIN_TTL_MAX}."]})
    return int(raw)


def _conflict(connector: Connector, message: str) -> web.Response:
    return web.json_response({"message": message, "status": connector.status}, status=409)


def _unreachable() -> web.Response:
    return error(503, "The connector's token is about to expire and could not be refreshed just now (the provider "
                      "did not answer in time); retry shortly.", headers={"Retry-After": RETRY_AFTER})


async def _refreshed(request: web.Request, owner: str, connector: Connector) -> Connector | web.Response:
    """The connector once a refresh of its current credentials has ended, or the answer to give."""
    store = request.app[STORE]
    version = connector.credential_version
    job_id = new_id("job")
    running = await store.run(claim_refresh(owner, connector.id, version, job_id))
    if running is None:
        try:
            _, job_json = await accept(request, owner, "refresh", connector.id, {"credential_version": version},
                                       job_id)
        except (QueueUnavailable, TenantFull):
            await store.run(release_refresh(owner, connector.id, version, job_id))
            return _unreachable()
        stored: bytes | None = job_json.encode()
    else:
        job_id = running
        stored = await store.job_json(owner, job_id)
    if stored is not None:
        await wait_for_job(request, owner, job_id, stored, REFRESH_WAIT_SECONDS)
    latest = await store.connector(owner, connector.id)
    if latest is None:
        raise NotFound("Connector")
    if latest.status != "authorised" or latest.credential_version > version:
        return latest  # expired (the provider refused the refresh), or refreshed
    return _unreachable()


async def show(request: web.Request) -> web.StreamResponse:
    owner = tenant(request)
    connector_id = path_id(request, "connector")
    min_ttl = _min_ttl(request)
    connector = await request.app[STORE].connector(owner, connector_id)
    if connector is None:
        raise NotFound("Connector")
    if connector.status == "authorised" and expires_within(connector, min_ttl):
        refreshed = await _refreshed(request, owner, connector)
        if isinstance(refreshed, web.Response):
            return refreshed
        connector = refreshed
    if connector.status != "authorised":
        return _conflict(connector, f"The connector is {connector.status}, not authorised: it has no credentials "
                                    "to use; re-authorise it.")
    impl = request.app[CATALOG].implementation(connector.authentication_implementation_id)
    usable = credentials_for_use(connector, impl, request.app[BOX]) if impl is not None else None
    if usable is None:
        return _conflict(connector, "The connector's stored credentials are not of its implementation's type; "
                                    "re-authorise it.")
    return web.json_response({"data": usable}, headers={"Cache-Control": "no-store"})
