"""Refreshing tokens before they expire, without anybody asking.

Every worker runs ``scan_due_refreshes`` periodically; a short Redis lock makes one scan
per period fleet-wide, and a per-connector marker keeps one scheduled refresh queued per
connector at a time. The refresh job itself is single-flight (``refresh.py``), so even a
refresh a user asked for at the same moment costs the provider one request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from . import keys
from .context import JobContext
from .records import Job, new_id, utcnow

log = logging.getLogger("authq.scheduler")
Publish = Callable[[str, str, str], None]   # (tenant, job_id, job_type)


def queue_refresh(ctx: JobContext, tenant: str, connector_id: str, publish: Publish) -> Job | None:
    connector = ctx.store.connector(tenant, connector_id)
    if connector is None:
        ctx.store.redis.zrem(keys.EXPIRING, keys.expiring_member(tenant, connector_id))
        return None
    job = Job(id=new_id("job"), tenant=tenant, type="refresh", connector_id=connector_id, created_at=utcnow())
    ctx.store.create_job(job, ctx.box.seal_json({"credential_version": connector.credential_version}))
    publish(tenant, job.id, "refresh")
    return job


def scan_due_refreshes(ctx: JobContext, window_seconds: float, period_seconds: float, publish: Publish,
                       batch: int = 500) -> int:
    """Queue refresh jobs for connectors whose tokens expire within ``window_seconds``."""
    client = ctx.store.redis
    if not client.set(keys.REFRESH_SCAN_LOCK, "1", nx=True, ex=max(1, int(period_seconds * 0.9))):
        return 0  # another worker scans this period
    due = client.zrangebyscore(keys.EXPIRING, "-inf", time.time() + window_seconds, start=0, num=batch)
    queued = 0
    for raw in due:
        tenant, _, connector_id = (raw.decode() if isinstance(raw, bytes) else raw).partition("/")
        marker = f"{keys.connector(tenant, connector_id)}:refresh-queued"
        if not client.set(marker, "1", nx=True, ex=max(60, int(window_seconds))):
            continue
        try:
            if queue_refresh(ctx, tenant, connector_id, publish):
                queued += 1
        except Exception:  # noqa: BLE001 - one bad record must not stop the scan
            client.delete(marker)
            log.exception("could not queue a scheduled refresh", extra={"tenant": tenant, "connector_id": connector_id})
    return queued
