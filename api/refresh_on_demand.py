"""A connector's OAuth 2 token refreshed before the platform uses it (the credentials endpoint
and the proxy, contract §9): by a ``refresh`` job, the same single-flight refresh every other
one goes through (tasks/flows/refresh.py), one job per credential version however many
requests ask at once (tasks/storage/refresh_for_use.py), each waiting on it through the event
hub like a ``Prefer: wait`` poll."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from api.submit import accept
from api.typedefs import STORE
from api.waiting import wait_for_job
from tasks.errors import NotFound, QueueUnavailable, TenantFull
from tasks.model.records import Connector, new_id
from tasks.storage.refresh_for_use import claim_refresh, release_refresh

REFRESH_WAIT_SECONDS = 30.0


async def refreshed(request: web.Request, owner: str, connector: Connector) -> Connector | None:
    """The connector once a refresh of its current credentials has ended: refreshed, or (the
    provider refused) no longer ``authorised``; None when no refresh succeeded in time."""
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
            return None
        stored: bytes | None = job_json.encode()
    else:
        job_id = running
        stored = await store.job_json(owner, job_id)
        # The claim is taken before its job is stored: a read in between finds no record yet.
        deadline, delay = time.monotonic() + REFRESH_WAIT_SECONDS, 0.005
        while stored is None and time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)
            stored = await store.job_json(owner, job_id)
    if stored is not None:
        await wait_for_job(request, owner, job_id, stored, REFRESH_WAIT_SECONDS)
    latest = await store.connector(owner, connector.id)
    if latest is None:
        raise NotFound("Connector")
    if latest.status != "authorised" or latest.credential_version > version:
        return latest
    return None
