"""How a job ends (``tasks.jobs.runner``), run in-process on the real Redis and loopback provider.

What is proven: the sealed request is deleted in the very write that ends the job (from the
store or from the message's copy); a scheduled refresh's record is kept a short while, a user's
job ``AUTHQ_JOB_TTL_SECONDS``; a retryable failure on the last attempt ends with
``retryable: false`` and a message that says the job gave up after N attempts; every progress
step carries the attempt it was made in; and deferrals are counted: a job that would be
deferred more than an hour in all fails with ``provider_rate_limited`` instead, without calling
the provider, while a shorter wait still defers it (not an attempt).
"""

from __future__ import annotations

import pytest

from tasks.errors import Deferred, RetryLater
from tasks.jobs.runner import run_job
from tasks.jobs.scheduling import queue_refresh
from tasks.model.records import Credentials, utcnow
from tasks.security.sealing import generate_key
from tasks.storage import schema
from tasks.storage.leases import RunLeases
from tests.support.helpers import save_connector
from tests.support.jobs import CHECK_PATH, make_context, queue_job
from tests.unit.jobs.test_runner import LOCAL_BODY, queue_with_copy

HOUR = 3600  # a job is deferred at most an hour in all (contract §8)
KEPT_SHORT = 3600  # a scheduled refresh is kept at most this long after its end


def checks(provider) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for s in provider.seen if s.path == CHECK_PATH)


# -- the sealed request goes with the job's end -----------------------------------------------

def test_the_sealed_request_is_deleted_by_the_write_that_ends_the_job(redis_client, tenant, fresh_provider):
    ctx = make_context(redis_client)
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)
    assert redis_client.exists(schema.submission(tenant.name, job.id)) == 1
    ended = run_job(ctx, tenant.name, job.id)
    assert ended is not None and ended.status == "succeeded"
    assert redis_client.exists(schema.submission(tenant.name, job.id)) == 0
    assert 0 < redis_client.ttl(schema.job(tenant.name, job.id)) <= 3600  # the record itself is kept


def test_a_failed_job_deletes_its_sealed_request_too(redis_client, tenant, fresh_provider):
    ctx = make_context(redis_client, max_attempts=1)
    fresh_provider.script.append(503)
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)
    ended = run_job(ctx, tenant.name, job.id)
    assert ended is not None and ended.status == "failed"
    assert redis_client.exists(schema.submission(tenant.name, job.id)) == 0


def test_a_job_ended_from_its_copy_deletes_its_sealed_request_in_the_same_round_trip(redis_client, tenant):
    ctx = make_context(redis_client)
    job, copy = queue_with_copy(ctx, tenant.name, LOCAL_BODY)
    ended = run_job(ctx, tenant.name, job.id, RunLeases(redis_client), copy)
    assert ended is not None and ended.status == "succeeded" and ended.attempts == 1
    assert redis_client.exists(schema.submission(tenant.name, job.id)) == 0


def test_a_retried_job_keeps_its_sealed_request_until_it_ends(redis_client, tenant, fresh_provider):
    ctx = make_context(redis_client)
    fresh_provider.script.append(503)
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)
    with pytest.raises(RetryLater):
        run_job(ctx, tenant.name, job.id)
    assert redis_client.exists(schema.submission(tenant.name, job.id)) == 1  # the retry needs it
    ended = run_job(ctx, tenant.name, job.id)
    assert ended is not None and ended.status == "succeeded" and ended.attempts == 2
    assert redis_client.exists(schema.submission(tenant.name, job.id)) == 0


# -- scheduled refreshes are kept a short while -------------------------------------------------

def test_a_scheduled_refresh_is_kept_a_short_while_a_users_job_for_the_job_ttl(redis_client, tenant,
                                                                                fresh_provider):
    ctx = make_context(redis_client)  # AUTHQ_JOB_TTL_SECONDS: 3600 here
    ctx.store.job_ttl = 7 * 24 * 3600
    connector = save_connector(redis_client, generate_key(), tenant, authorised_at=utcnow(),
                               credentials=Credentials(token_type="basic"))
    scheduled = queue_refresh(ctx, connector, lambda *_: None)
    ended = run_job(ctx, tenant.name, scheduled.id)
    assert ended is not None and ended.finished_at is not None  # (a basic connector: not_supported)
    kept = redis_client.ttl(schema.job(tenant.name, scheduled.id))
    assert 0 < kept <= KEPT_SHORT < 24 * 3600
    assert 0 < redis_client.ttl(schema.job_starts(tenant.name, scheduled.id)) <= KEPT_SHORT

    users = queue_job(ctx, tenant.name, fresh_provider.base_url)
    assert run_job(ctx, tenant.name, users.id) is not None
    assert redis_client.ttl(schema.job(tenant.name, users.id)) > KEPT_SHORT


# -- giving up --------------------------------------------------------------------------------

def test_a_retryable_failure_on_the_last_attempt_says_it_will_not_run_again(redis_client, tenant, fresh_provider):
    ctx = make_context(redis_client, max_attempts=2)
    fresh_provider.script.extend([503, 503])
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)
    with pytest.raises(RetryLater):
        run_job(ctx, tenant.name, job.id)
    retrying = ctx.store.job(tenant.name, job.id)
    assert retrying is not None and retrying.error is not None and retrying.error["retryable"] is True
    ended = run_job(ctx, tenant.name, job.id)
    assert ended is not None and ended.status == "failed" and ended.attempts == 2
    assert ended.error is not None and ended.error["code"] == "provider_unreachable"
    assert ended.error["retryable"] is False, "a job that will not run again must not say retryable"
    assert "gave up after 2 attempts" in ended.error["message"]
    assert ctx.store.job(tenant.name, job.id) == ended


def test_every_progress_step_carries_its_attempt(redis_client, tenant, fresh_provider):
    ctx = make_context(redis_client)
    fresh_provider.script.append(503)
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)
    with pytest.raises(RetryLater):
        run_job(ctx, tenant.name, job.id)
    ended = run_job(ctx, tenant.name, job.id)
    assert ended is not None and ended.status == "succeeded"
    steps = [(p["step"], p["attempt"]) for p in ended.view()["progress"]]
    assert ("credential_check", 1) in steps and ("credential_check", 2) in steps
    assert steps[-1] == ("store_connector", 2)
    assert [a for _, a in steps] == sorted(a for _, a in steps)


# -- deferrals count, an hour at most ---------------------------------------------------------

def _blocked(redis_client, tenant: str, connector_id: str, seconds: float) -> None:  # type: ignore[no-untyped-def]
    redis_client.set(schema.rate_blocked(tenant, connector_id), "1", px=int(seconds * 1000))


def test_a_short_wait_defers_the_job_and_counts_what_it_waits(redis_client, tenant, fresh_provider):
    ctx = make_context(redis_client, gated=True)
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)
    _blocked(redis_client, tenant.name, job.connector_id, 600)
    with pytest.raises(Deferred) as deferred:
        run_job(ctx, tenant.name, job.id)
    assert 0 < deferred.value.delay <= 60  # one step of the wait
    waiting = ctx.store.job(tenant.name, job.id)
    assert waiting is not None and waiting.status == "queued" and waiting.attempts == 0
    assert int(redis_client.get(schema.job_deferred(tenant.name, job.id)) or 0) == pytest.approx(
        deferred.value.delay * 1000, abs=1)  # milliseconds
    assert checks(fresh_provider) == 0


def test_a_job_deferred_more_than_an_hour_in_all_fails_provider_rate_limited(redis_client, tenant, fresh_provider):
    ctx = make_context(redis_client, gated=True)
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)
    # 59 minutes deferred already, and the provider's block has 10 more to run.
    redis_client.set(schema.job_deferred(tenant.name, job.id), (HOUR - 60) * 1000)  # ms
    _blocked(redis_client, tenant.name, job.connector_id, 600)
    ended = run_job(ctx, tenant.name, job.id)
    assert ended is not None and ended.status == "failed"
    assert ended.error is not None and ended.error["code"] == "provider_rate_limited"
    assert ended.error["retryable"] is False
    assert checks(fresh_provider) == 0
    assert redis_client.exists(schema.job_deferred(tenant.name, job.id)) == 0  # gone with the job's end
    connector = ctx.store.connector(tenant.name, job.connector_id)
    assert connector is not None and connector.status == "failed"


def test_deferrals_add_up_to_the_hour(redis_client, tenant, fresh_provider):
    """A job always waiting for one more permit is given up once the waits pass an hour."""
    ctx = make_context(redis_client, gated=True)
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)
    deferrals = 0
    while True:
        _blocked(redis_client, tenant.name, job.connector_id, 45)  # every run finds the provider's block again
        try:
            ended = run_job(ctx, tenant.name, job.id)
        except Deferred:
            deferrals += 1
            assert deferrals <= HOUR // 40, "deferred for ever"
            continue
        break
    assert ended is not None and ended.error is not None and ended.error["code"] == "provider_rate_limited"
    assert deferrals >= (HOUR - 60) // 45
    assert ended.attempts == 1 and checks(fresh_provider) == 0  # (the start that gave up)
