"""The refresh scan (``tasks.jobs.scheduling.scan_due_refreshes``) called directly, tick by tick,
against a Redis of its own (no worker's scan competes with it) and the real store.

What is proven: one tenant's connectors whose refreshes keep failing, however many and
however much earlier due, do not keep another tenant's connector from being queued in the
first scan; a scan pages on through every due connector, more than one page of them, within
a bounded number of ticks, each tick queuing a bounded number; a connector queued for refresh
is not queued again until its backoff has passed, a backoff that doubles with every refresh
that did not succeed, is capped and jittered, and starts again from the base once a refresh
has stored new credentials; a connector that was deleted, or whose record cannot be read,
leaves the due range; connectors scheduled by an earlier version (``authq:expiring``) are
adopted, none lost.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import redis

from tasks.jobs.context import JobContext
from tasks.jobs.scheduling import scan_due_refreshes
from tasks.model.records import Connector, new_id, utcnow
from tasks.storage import commands, schema
from tests.support.jobs import make_context

WINDOW = 300.0
PERIOD = 30.0


@pytest.fixture
def ctx(db: redis.Redis) -> JobContext:
    return make_context(db)


class Published:
    """The refresh jobs a scan queued: (tenant, connector id), in order."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.jobs: list[tuple[str, str]] = []

    def __call__(self, tenant: str, job_id: str, job_type: str) -> None:
        assert job_type == "refresh"
        job = self.ctx.store.job(tenant, job_id)
        assert job is not None and job.connector_id is not None
        self.jobs.append((tenant, job.connector_id))


def connector(tenant: str, expires: datetime, version: int = 1) -> Connector:
    now = utcnow()
    return Connector.model_validate(
        {
            "id": new_id("con"),
            "tenant": tenant,
            "name": "n",
            "authentication_implementation_id": "test-oauth",
            "type": "oauth2",
            "system": "s",
            "timezone": "UTC",
            "date_format": "Y-m-d",
            "rate_limit": {"unit": "second", "duration": 1},
            "status": "authorised",
            "created_at": now,
            "updated_at": now,
            "credential_version": version,
            "credentials": {"expires_at": expires},
        }
    )


def saved(ctx: JobContext, tenant: str, count: int, expires_in: float) -> list[Connector]:
    made = [connector(tenant, utcnow() + timedelta(seconds=expires_in)) for _ in range(count)]
    for c in made:
        ctx.store.save_connector(c)
    return made


def tick(ctx: JobContext, publish: Published) -> int:
    """One scan, as the first worker to take a new period's lock runs it."""
    ctx.store.redis.delete(schema.REFRESH_SCAN_LOCK)  # the last period's lock has lapsed
    return scan_due_refreshes(ctx, WINDOW, PERIOD, publish)


def score(db: redis.Redis, c: Connector) -> float:
    found = db.zscore(schema.refresh_schedule(c.tenant), c.id)
    assert found is not None, c.id
    return float(found)


def make_due(db: redis.Redis, c: Connector) -> None:
    """As if the connector's backoff had passed: its next attempt is now (the index follows, as on a write)."""
    now = time.time()
    db.zadd(schema.refresh_schedule(c.tenant), {c.id: now}, xx=True)
    db.zadd(schema.REFRESH_TENANTS, {c.tenant: now}, lt=True)


def test_a_tenant_whose_refreshes_keep_failing_does_not_starve_another(ctx: JobContext, db: redis.Redis) -> None:
    publish = Published(ctx)
    noisy = saved(ctx, "noisy", 600, expires_in=-600)  # expired long ago: the earliest due there are
    tick(ctx, publish)  # their refreshes are queued ... and never succeed
    quiet = saved(ctx, "quiet", 1, expires_in=120)[0]  # due later than every one of them
    for _ in range(2):
        tick(ctx, publish)
        if ("quiet", quiet.id) in publish.jobs:
            break
    assert ("quiet", quiet.id) in publish.jobs, "the quiet tenant's connector was not queued in two scans"
    assert {cid for t, cid in publish.jobs if t == "noisy"} <= {c.id for c in noisy}


def test_one_scan_serves_every_tenant_with_something_due(ctx: JobContext, db: redis.Redis) -> None:
    publish = Published(ctx)
    saved(ctx, "big", 3_000, expires_in=-60)  # more due than one scan queues
    small = [saved(ctx, f"small{i}", 2, expires_in=60) for i in range(5)]
    tick(ctx, publish)
    per_tenant = Counter(t for t, _ in publish.jobs)
    for i, made in enumerate(small):
        assert per_tenant[f"small{i}"] == len(made), per_tenant
    assert per_tenant["big"] > 0


def test_a_scan_pages_through_every_due_connector_in_bounded_ticks(ctx: JobContext, db: redis.Redis) -> None:
    publish = Published(ctx)
    made = saved(ctx, "many", 2_300, expires_in=-30) + saved(ctx, "many", 10, expires_in=WINDOW + 600)  # 10 not due
    per_tick = []
    for _ in range(6):
        per_tick.append(tick(ctx, publish))
    due = {c.id for c in made[:2_300]}
    queued = [c for _, c in publish.jobs]
    assert set(queued) == due  # every due connector, and only those ...
    assert len(queued) == len(due)  # ... each once (its backoff has not passed)
    assert max(per_tick) < len(due)  # no tick did it all: one tick's work is bounded
    assert sum(1 for n in per_tick if n) <= math.ceil(len(due) / max(per_tick))


def test_backoff_doubles_is_capped_and_starts_again_after_a_success(ctx: JobContext, db: redis.Redis) -> None:
    publish = Published(ctx)
    c = saved(ctx, "backoff", 1, expires_in=60)[0]
    delays = []
    for _ in range(9):
        before = time.time()
        assert tick(ctx, publish) == 1
        after = time.time()
        pushed = score(db, c) - WINDOW  # the next attempt: due again once now + window reaches the score
        delays.append((pushed - after, pushed - before))
        assert tick(ctx, publish) == 0  # not before its backoff has passed
        make_due(db, c)  # ... which it now has; the refresh did not succeed
    base = 60.0
    for n, (low, high) in enumerate(delays[:6]):
        full = base * 2**n
        assert low >= 0.8 * full - 1 and high <= full + 1, (n, delays)  # doubling, jittered within 20%
    for low, high in delays[6:]:
        assert low >= 0.8 * 3600 - 1 and high <= 3600 + 1, delays  # capped at an hour

    # A refresh stores new credentials (a new version, a new expiry): the schedule is the new expiry ...
    refreshed = c.model_copy(
        update={
            "credential_version": 2,
            "credentials": c.credentials.model_copy(update={"expires_at": datetime.now(UTC) + timedelta(seconds=120)}),
        }
    )
    ctx.store.save_connector(refreshed)
    assert abs(score(db, c) - (time.time() + 120)) < 2
    # ... and the next refresh that fails backs off from the base again.
    before = time.time()
    assert tick(ctx, publish) == 1
    pushed = score(db, c) - WINDOW
    assert 0.8 * base - 1 <= pushed - time.time() and pushed - before <= base + 1


def test_jitter_spreads_connectors_that_failed_together(ctx: JobContext, db: redis.Redis) -> None:
    publish = Published(ctx)
    made = saved(ctx, "herd", 50, expires_in=60)
    tick(ctx, publish)
    assert len({round(score(db, c), 1) for c in made}) > 25  # not one thundering herd a minute later


def test_deleted_and_unreadable_connectors_leave_the_due_range(ctx: JobContext, db: redis.Redis) -> None:
    publish = Published(ctx)
    gone, broken, fine = saved(ctx, "odd", 3, expires_in=-10)
    db.delete(schema.connector("odd", gone.id))  # deleted under the schedule's feet
    db.set(schema.connector("odd", broken.id), b"{not json")
    assert tick(ctx, publish) == 1
    assert publish.jobs == [("odd", fine.id)]
    assert db.zscore(schema.refresh_schedule("odd"), gone.id) is None
    assert score(db, broken) > time.time() + WINDOW  # tried again later, not at the head of every scan
    assert tick(ctx, publish) == 0


def test_connectors_scheduled_by_an_earlier_version_are_adopted(ctx: JobContext, db: redis.Redis) -> None:
    publish = Published(ctx)
    made = saved(ctx, "old", 3, expires_in=60)
    db.delete(schema.refresh_schedule("old"), schema.REFRESH_TENANTS)
    db.zadd(schema.EXPIRING, {schema.expiring_member("old", c.id): time.time() + 60 for c in made})
    tick(ctx, publish)
    assert sorted(c for _, c in publish.jobs) == sorted(c.id for c in made)
    assert db.exists(schema.EXPIRING) == 0


def test_the_tenant_index_follows_the_schedule(ctx: JobContext, db: redis.Redis) -> None:
    publish = Published(ctx)
    c = saved(ctx, "idx", 1, expires_in=WINDOW + 3600)[0]
    assert float(db.zscore(schema.REFRESH_TENANTS, "idx") or 0) == pytest.approx(score(db, c))
    assert tick(ctx, publish) == 0
    assert ctx.store.run(commands.delete_connector("idx", c.id))
    db.zadd(schema.REFRESH_TENANTS, {"idx": time.time() - 1})  # stale: earlier than anything it holds
    assert tick(ctx, publish) == 0
    assert db.zscore(schema.REFRESH_TENANTS, "idx") is None  # nothing scheduled: the tenant leaves the index


def test_a_connector_leaving_authorised_or_deleted_is_not_adopted_from_the_earlier_schedule(
        ctx: JobContext, db: redis.Redis) -> None:
    """An earlier version's entry not yet adopted must not bring back a refresh for a connector
    that has since expired, failed or been deleted."""
    publish = Published(ctx)
    failed, deleted = saved(ctx, "stale", 2, expires_in=60)
    db.delete(schema.refresh_schedule("stale"), schema.REFRESH_TENANTS)
    db.zadd(schema.EXPIRING, {schema.expiring_member("stale", c.id): time.time() + 60 for c in (failed, deleted)})
    ctx.store.save_connector(failed.model_copy(update={"status": "failed"}))
    assert ctx.store.run(commands.delete_connector("stale", deleted.id))
    tick(ctx, publish)
    assert publish.jobs == []
    assert db.zscore(schema.refresh_schedule("stale"), failed.id) is None
