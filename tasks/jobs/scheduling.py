"""Refreshing tokens before they expire, without anybody asking: the refresh scan.

Every worker runs ``scan_due_refreshes`` periodically; a short Redis lock makes one scan
per period fleet-wide. A scan queues refresh jobs for connectors whose tokens expire within
the refresh window, from the tenants' schedules (``tasks/storage/refresh_schedule.py``):

- **Fair between tenants.** A scan goes round the tenants with something due, a share of
  its budget each per round, until the budget is spent or nothing is left: a tenant with
  10^5 connectors due (a provider outage, one noisy tenant) takes one share per round, and
  every other tenant with anything due is served in the same scan.
- **Bounded, and paging on.** A scan visits at most ``PAGE * PAGES`` connectors and ``PAGE``
  tenants. Every connector it visits leaves the due range (queued and pushed back to its next
  attempt, or dropped when deleted), so the next scan goes on with the ones after: every due
  connector is reached within ``due / (PAGE * PAGES)`` scans.
- **Backing off.** Queuing a refresh pushes the connector back to its next attempt:
  ``BACKOFF_BASE * 2^(n-1)`` seconds for the n-th scheduled refresh of one credential version,
  at most ``BACKOFF_CAP``, less up to 20% of jitter (connectors that failed together do not
  come back together). A refresh that stores new credentials writes the new expiry over it
  and starts a new version, whose count starts at 1 again; one that fails leaves it, so a
  connector whose refresh keeps failing is tried ever less often, at least hourly.

The refresh job itself is single-flight (``refresh.py``), so even a refresh a user asked for
at the same moment costs the provider one request.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from tasks.jobs.context import JobContext
from tasks.model.records import Connector, Job, new_id, utcnow
from tasks.storage import refresh_schedule, schema
from tasks.storage.refresh_schedule import Due

log = logging.getLogger("authq.scheduler")
Publish = Callable[[str, str, str], None]  # (tenant, job_id, job_type)

PAGE = 500  # tenants read per scan, and the most connectors of one tenant per round
PAGES = 4  # a scan visits at most PAGE * PAGES connectors
BACKOFF_BASE = 60.0  # seconds before a scheduled refresh that did not succeed is tried again ...
BACKOFF_CAP = 3600.0  # ... doubling with each one, up to an hour
JITTER = 0.2  # each delay is shortened by up to this fraction, at random


def queue_refresh(ctx: JobContext, connector: Connector, publish: Publish) -> Job:
    job = Job(id=new_id("job"), tenant=connector.tenant, type="refresh", connector_id=connector.id,
              created_at=utcnow())
    # "scheduled": nobody asked for it, so its record is kept a short while once it ends (attempts.kept_at_most).
    request = {"credential_version": connector.credential_version, "scheduled": True}
    ctx.store.create_job(job, ctx.box.seal_json(request))
    publish(connector.tenant, job.id, "refresh")
    return job


def scan_due_refreshes(ctx: JobContext, window_seconds: float, period_seconds: float, publish: Publish) -> int:
    """Queue refresh jobs for connectors whose tokens expire within ``window_seconds``; how many."""
    run = ctx.store.run
    if not ctx.store.redis.set(schema.REFRESH_SCAN_LOCK, "1", nx=True, ex=max(1, int(period_seconds * 0.9))):
        return 0  # another worker scans this period
    run(refresh_schedule.adopt_legacy(PAGE))
    now = time.time()
    horizon = now + window_seconds
    active = run(refresh_schedule.due_tenants(horizon, PAGE))
    visited, budget, queued = set(active), PAGE * PAGES, 0
    while active and budget > 0:
        share = max(1, min(PAGE, budget // len(active)))
        more = []
        for tenant in active:
            if budget <= 0:
                break
            due = run(refresh_schedule.due_connectors(tenant, horizon, min(share, budget)))
            budget -= len(due)
            for item in due:
                queued += _visit(ctx, tenant, item, horizon, window_seconds, publish)
            if len(due) == share:
                more.append(tenant)  # it may have more due: another share next round
        active = more
    for tenant in visited:
        run(refresh_schedule.settle(tenant))
    return queued


def _push_back(ctx: JobContext, tenant: str, item: Due, version: int, horizon: float, window: float) -> int:
    jitter = 1.0 - random.random() * JITTER  # noqa: S311 - spreading retries, not a secret
    # The count of attempts outlives the delay by the window, so a late scan still finds it.
    return ctx.store.run(
        refresh_schedule.push_back(tenant, item, version, horizon, BACKOFF_BASE, BACKOFF_CAP, jitter, max(60.0, window))
    )


def _visit(ctx: JobContext, tenant: str, item: Due, horizon: float, window: float, publish: Publish) -> int:
    """Queue a refresh for one due connector (1), or nothing (0); either way it leaves the due range."""
    connector_id = item[0]
    try:
        connector = ctx.store.connector(tenant, connector_id)
    except Exception:  # noqa: BLE001 - one bad record must not stop the scan
        log.exception(
            "could not read a connector due for refresh", extra={"tenant": tenant, "connector_id": connector_id}
        )
        _push_back(ctx, tenant, item, 0, horizon, window)  # tried again later, backing off
        return 0
    if connector is None:
        ctx.store.run(refresh_schedule.forget(tenant, connector_id))
        return 0
    if not _push_back(ctx, tenant, item, connector.credential_version, horizon, window):
        return 0  # rewritten since it was read (refreshed, reauthorised, deleted): nothing is due
    try:
        queue_refresh(ctx, connector, publish)
    except Exception:  # noqa: BLE001 - one bad record must not stop the scan
        log.exception("could not queue a scheduled refresh", extra={"tenant": tenant, "connector_id": connector_id})
        return 0  # pushed back: tried again after the delay
    return 1
