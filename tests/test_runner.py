"""``tasks.runner.run_job`` called directly, as a redelivering broker would call it.

No Celery here: a real Redis, the real store, cipher, catalog and outbound client, and the
loopback provider. What is proven: a job delivered twice ends exactly once with exactly
one connector and one credential check; a job already started ``max_attempts`` times ends
``failed`` with ``attempts_exhausted`` without touching the provider; a retryable provider
failure raises ``RetryLater`` with the backoff and leaves the job ``retrying``, and the
next delivery finishes the same connector; an authorise that ends failed on any path
(rejection, last retry, exhausted attempts) leaves its connector ``failed``, never ``pending``; a loopback destination is refused with
``url_not_allowed`` unless private networks are allowed; a job whose record is gone is
skipped; and no secret reaches Redis in the clear.
"""

from __future__ import annotations

import pytest

from tasks import keys
from tasks.catalog import load_catalog
from tasks.context import JobContext
from tasks.crypto import SecretBox, generate_key
from tasks.errors import RetryLater
from tasks.outbound import Outbound
from tasks.records import Job, new_id, utcnow
from tasks.runner import run_job
from tasks.store import Store
from tasks.submission import validate_authorise

from .conftest import TEST_CATALOG, authorise_body
from .provider import GOOD_SECRET

CHECK_PATH = "/wp-json/wc/v3/system_status"


def make_context(redis_client, *, allow_private: bool = True, max_attempts: int = 5) -> JobContext:  # type: ignore[no-untyped-def]
    return JobContext(store=Store(redis_client, job_ttl_seconds=3600), box=SecretBox(generate_key()),
                      catalog=load_catalog(TEST_CATALOG), outbound=Outbound(5, allow_private=allow_private),
                      max_attempts=max_attempts)


@pytest.fixture
def ctx(redis_client) -> JobContext:  # type: ignore[no-untyped-def]
    return make_context(redis_client)


def queue_job(ctx: JobContext, tenant: str, base_url: str, **job_fields: object) -> Job:
    """Store a job and its sealed submission exactly as the API does before publishing it."""
    body = authorise_body()
    body["variables"][0]["value"] = base_url  # type: ignore[index]
    validated = validate_authorise(body, ctx.catalog, ctx.box).model_dump(exclude_unset=True)
    job = Job(id=new_id("job"), tenant=tenant, type="authorise", connector_id=new_id("con"), created_at=utcnow(),
              **job_fields)  # type: ignore[arg-type]
    ctx.store.redis.set(keys.job(tenant, job.id), job.model_dump_json())
    ctx.store.redis.set(keys.submission(tenant, job.id), ctx.box.seal_json(validated))
    return job


def checks(provider) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for s in provider.seen if s.path == CHECK_PATH)


def connector_ids(ctx: JobContext, tenant: str) -> list[str]:
    return [i.decode() for i in ctx.store.redis.zrange(keys.connectors(tenant), 0, -1)]


def test_redelivered_job_ends_once_with_one_connector(ctx, tenant, fresh_provider):
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)
    first = run_job(ctx, tenant.name, job.id)
    assert first is not None and first.status == "succeeded", first and first.error
    assert first.attempts == 1 and checks(fresh_provider) == 1

    again = run_job(ctx, tenant.name, job.id)  # the broker delivers the same message again
    assert again is not None
    assert again.status == "succeeded" and again.attempts == 1
    assert again.finished_at == first.finished_at and again.result == first.result
    assert checks(fresh_provider) == 1, "a finished job must not call the provider again"
    assert connector_ids(ctx, tenant.name) == [job.connector_id]
    stored = ctx.store.connector(tenant.name, job.connector_id)
    assert stored is not None and stored.status == "authorised"


def test_job_started_max_attempts_times_is_given_up(redis_client, tenant, fresh_provider):
    ctx = make_context(redis_client, max_attempts=3)
    job = queue_job(ctx, tenant.name, fresh_provider.base_url, status="running", attempts=3,
                    started_at=utcnow())
    ended = run_job(ctx, tenant.name, job.id)
    assert ended is not None and ended.status == "failed"
    assert ended.error is not None and ended.error["code"] == "attempts_exhausted"
    assert ended.error["retryable"] is False and ended.finished_at is not None
    assert checks(fresh_provider) == 0
    assert ctx.store.job(tenant.name, job.id) == ended
    assert connector_ids(ctx, tenant.name) == []


def test_retryable_failure_asks_for_a_retry_then_finishes_the_same_connector(ctx, tenant, fresh_provider):
    fresh_provider.script.append(503)
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)
    with pytest.raises(RetryLater) as raised:
        run_job(ctx, tenant.name, job.id)
    assert raised.value.delay == 1.0  # backoff after the first attempt
    waiting = ctx.store.job(tenant.name, job.id)
    assert waiting is not None and waiting.status == "retrying" and waiting.attempts == 1
    assert waiting.error is not None and waiting.error["code"] == "provider_unreachable"
    assert waiting.error["retryable"] is True and waiting.finished_at is None
    pending = ctx.store.connector(tenant.name, job.connector_id)
    assert pending is not None and pending.status == "pending"

    ended = run_job(ctx, tenant.name, job.id)  # the retry
    assert ended is not None and ended.status == "succeeded" and ended.attempts == 2 and ended.error is None
    assert checks(fresh_provider) == 2
    assert connector_ids(ctx, tenant.name) == [job.connector_id]
    done = ctx.store.connector(tenant.name, job.connector_id)
    assert done is not None and done.status == "authorised" and done.created_at == pending.created_at


def test_retryable_failure_on_the_last_attempt_fails_the_connector(redis_client, tenant, fresh_provider):
    ctx = make_context(redis_client, max_attempts=2)
    fresh_provider.script.extend([503, 503])
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)
    with pytest.raises(RetryLater):
        run_job(ctx, tenant.name, job.id)
    ended = run_job(ctx, tenant.name, job.id)
    assert ended is not None and ended.status == "failed" and ended.attempts == 2
    assert ended.error is not None and ended.error["code"] == "provider_unreachable"
    connector = ctx.store.connector(tenant.name, job.connector_id)
    assert connector is not None and connector.status == "failed", "a failed authorise must not stay pending"


def test_exhausted_attempts_fail_the_pending_connector(redis_client, tenant, fresh_provider):
    ctx = make_context(redis_client, max_attempts=2)
    fresh_provider.script.append(503)
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)
    with pytest.raises(RetryLater):
        run_job(ctx, tenant.name, job.id)  # attempt 1 stored the connector, pending
    crashed = ctx.store.job(tenant.name, job.id)
    assert crashed is not None
    crashed.status, crashed.attempts = "running", 2  # attempt 2's worker died mid-job
    ctx.store.save_job(crashed)
    ended = run_job(ctx, tenant.name, job.id)
    assert ended is not None and ended.error is not None and ended.error["code"] == "attempts_exhausted"
    connector = ctx.store.connector(tenant.name, job.connector_id)
    assert connector is not None and connector.status == "failed"


def test_loopback_destination_is_refused_unless_allowed(redis_client, tenant, fresh_provider):
    ctx = make_context(redis_client, allow_private=False)
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)  # http://127.0.0.1:<port>
    ended = run_job(ctx, tenant.name, job.id)
    assert ended is not None and ended.status == "failed"
    assert ended.error is not None and ended.error["code"] == "url_not_allowed"
    assert ended.error["retryable"] is False
    assert checks(fresh_provider) == 0, "a refused destination must not be contacted"


def test_missing_job_record_is_skipped(ctx, tenant):
    assert run_job(ctx, tenant.name, "job_does_not_exist") is None


def test_no_secret_is_stored_in_the_clear(ctx, tenant, fresh_provider):
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)
    assert run_job(ctx, tenant.name, job.id).status == "succeeded"  # type: ignore[union-attr]
    for key in ctx.store.redis.scan_iter(match=f"{keys.tenant(tenant.name)}:*"):
        raw = ctx.store.redis.get(key) if ctx.store.redis.type(key) == b"string" else b""
        assert GOOD_SECRET.encode() not in raw, key
