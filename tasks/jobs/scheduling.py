"""Refreshing tokens before they expire, without anybody asking.

Every worker runs ``scan_due_refreshes`` periodically; a short Redis lock makes one scan
per period fleet-wide, and a marker per connector *and credential version* queues one
scheduled refresh per version: once a refresh has stored new tokens, the next one can be
scheduled straight away (a token that lives less than the window is refreshed again, not
left to lapse until a per-connector marker expires), while a refresh that failed is tried
again only when its marker expires. The refresh job itself is single-flight
(``refresh.py``), so even a refresh a user asked for at the same moment costs the provider
one request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from tasks.jobs.context import JobContext
from tasks.model.records import Connector, Job, new_id, utcnow
from tasks.storage import schema

log = logging.getLogger("authq.scheduler")
Publish = Callable[[str, str, str], None]   # (tenant, job_id, job_type)


def queue_refresh(ctx: JobContext, connector: Connector, publish: Publish) -> Job:
    job = Job(id=new_id("job"), tenant=connector.tenant, type="refresh", connector_id=connector.id,
              created_at=utcnow())
    # "scheduled": nobody asked for it, so its record is kept a short while once it ends (runner.kept_at_most).
    request = {"credential_version": connector.credential_version, "scheduled": True}
    ctx.store.create_job(job, ctx.box.seal_json(request))
    publish(connector.tenant, job.id, "refresh")
    return job


def scan_due_refreshes(ctx: JobContext, window_seconds: float, period_seconds: float, publish: Publish,
                       batch: int = 500) -> int:
    """Queue refresh jobs for connectors whose tokens expire within ``window_seconds``."""
    client = ctx.store.redis
    if not client.set(schema.REFRESH_SCAN_LOCK, "1", nx=True, ex=max(1, int(period_seconds * 0.9))):
        return 0  # another worker scans this period
    due = client.zrangebyscore(schema.EXPIRING, "-inf", time.time() + window_seconds, start=0, num=batch)
    queued = 0
    for raw in due:
        tenant, connector_id = schema.member_parts(raw)
        try:
            connector = ctx.store.connector(tenant, connector_id)
        except Exception:  # noqa: BLE001 - one bad record must not stop the scan
            log.exception("could not read a connector due for refresh",
                          extra={"tenant": tenant, "connector_id": connector_id})
            continue
        if connector is None:
            client.zrem(schema.EXPIRING, raw)
            continue
        marker = schema.refresh_queued(tenant, connector_id, connector.credential_version)
        if not client.set(marker, "1", nx=True, ex=max(60, int(window_seconds))):
            continue
        try:
            queue_refresh(ctx, connector, publish)
            queued += 1
        except Exception:  # noqa: BLE001 - one bad record must not stop the scan
            client.delete(marker)
            log.exception("could not queue a scheduled refresh", extra={"tenant": tenant, "connector_id": connector_id})
    return queued
