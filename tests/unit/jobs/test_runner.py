"""``tasks.jobs.runner.run_job`` called directly, as a redelivering broker would call it.

No Celery here: a real Redis, the real store, cipher, catalog and outbound client, and the
loopback provider. What is proven: a job delivered twice ends exactly once with exactly
one connector and one credential check; a job already started ``max_attempts`` times ends
``failed`` with ``attempts_exhausted`` without touching the provider; a retryable provider
failure raises ``RetryLater`` with the backoff and leaves the job ``retrying``, and the
next delivery finishes the same connector; an authorise that ends failed on any path
(rejection, last retry, exhausted attempts) leaves its connector ``failed``, never
``pending``; a loopback destination is refused with ``url_not_allowed`` unless private
networks are allowed; a job whose record is gone is skipped; and no secret reaches Redis
in the clear. A start is counted in Redis before
the job runs (a run that dies first still used an attempt), a job is stored ``running``
only once it waits on a provider, and a held lease turns a second run away uncounted.

With its message's copy: a first delivery of a job whose handler declares it needs no
provider ends in one round trip (success or failure); a stale copy, one sealed under a
retired key, one whose job another run holds the lease of, or one whose job needs a
provider writes nothing from the copy and runs from the store, the copy's request opened
once.
"""

from __future__ import annotations

import json
import secrets
import time

import pytest
import redis
from pydantic import ValidationError

from tasks.errors import RetryLater, Taken
from tasks.jobs.context import JobContext
from tasks.jobs.handlers import HANDLERS
from tasks.jobs.queue_port import QUEUE_OF_TYPE, JobCopy
from tasks.jobs.runner import run_job
from tasks.jobs.waiter import INBOX_FIELD
from tasks.model.audit import ACTOR_FIELD
from tasks.model.catalog import load_catalog
from tasks.model.records import Job, new_id, utcnow
from tasks.security.sealing import SecretBox, generate_key
from tasks.settings import Settings
from tasks.storage import audit, schema
from tasks.storage.leases import RunLeases
from tasks.validation.submission import validate_authorise
from tests.support.helpers import TEST_CATALOG, authorise_body
from tests.support.jobs import CHECK_PATH, make_context, queue_job
from tests.support.provider import GOOD_SECRET


class ScriptCounting(redis.Connection):
    """A connection that counts the EVALSHA commands its client sends, in pipelines too. (The
    server's ``INFO commandstats`` counts every client's: the session's Celery workers and the
    previous tests' background threads share that Redis.)"""

    sent = 0  # a subclass per client keeps its own count

    def send_command(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._count([args])
        return super().send_command(*args, **kwargs)

    def pack_commands(self, commands):  # type: ignore[no-untyped-def]
        commands = list(commands)
        self._count(commands)
        return super().pack_commands(commands)

    def _count(self, commands) -> None:  # type: ignore[no-untyped-def]
        type(self).sent += sum(1 for command in commands if command and str(command[0]).upper() == "EVALSHA")


@pytest.fixture
def counted_redis(redis_client):  # type: ignore[no-untyped-def]
    """A client of the session Redis whose script round trips ``scripts_run`` counts."""
    counting = type("ScriptCountingClient", (ScriptCounting,), {"sent": 0})
    kwargs = {k: v for k, v in redis_client.connection_pool.connection_kwargs.items()}
    client = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=counting, **kwargs))
    yield client
    client.close()


@pytest.fixture
def ctx(counted_redis) -> JobContext:  # type: ignore[no-untyped-def]
    return make_context(counted_redis)


def checks(provider) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for s in provider.seen if s.path == CHECK_PATH)


def connector_ids(ctx: JobContext, tenant: str) -> list[str]:
    return [i.decode() for i in ctx.store.redis.zrange(schema.connectors(tenant), 0, -1)]


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


def test_retryable_failure_asks_for_a_retry_then_finishes_the_same_connector(ctx, tenant, fresh_provider, caplog):
    fresh_provider.script.append(503)
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)
    with pytest.raises(RetryLater) as raised, caplog.at_level("INFO", logger="authq.jobs"):
        run_job(ctx, tenant.name, job.id)
    assert raised.value.delay == 1.0  # backoff after the first attempt
    [again] = [r for r in caplog.records if r.getMessage() == "job will run again"]  # (Celery's own line is DEBUG)
    assert (again.job_id, again.attempts, again.error_code, again.delay) == (  # type: ignore[attr-defined]
        job.id, 1, "provider_unreachable", 1.0)
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
    for key in ctx.store.redis.scan_iter(match=schema.tenant_keys(tenant.name)):
        raw = ctx.store.redis.get(key) if ctx.store.redis.type(key) == b"string" else b""
        assert GOOD_SECRET.encode() not in raw, key


LOCAL_BODY = {"name": "local", "authentication_implementation_id": "test-bearer-nocheck", "timezone": "UTC",
              "date_format": "Y-m-d", "rate_limit_unit": "second", "rate_limit_duration": 1,
              "variables": [{"key": "token", "value": "tok_local_0123456789"}]}


def queue_local_job(ctx: JobContext, tenant: str) -> Job:
    """A token job that needs nobody else (no check request): it never leaves the machine."""
    return queue_with_copy(ctx, tenant, LOCAL_BODY)[0]


def queue_with_copy(ctx: JobContext, tenant: str, body: dict[str, object],
                    actor: dict[str, str | None] | None = None, inbox: str | None = None) -> tuple[Job, JobCopy]:
    """Store a job as the API does (with the request's actor and its waiter's inbox, when given),
    and the copy its message carries."""
    validated = validate_authorise(body, ctx.catalog, ctx.box).model_dump(exclude_unset=True)
    if actor is not None:
        validated[ACTOR_FIELD] = actor
    if inbox is not None:
        validated[INBOX_FIELD] = inbox
    job = Job(id=new_id("job"), tenant=tenant, type="authorise", connector_id=new_id("con"), created_at=utcnow())
    copy = JobCopy(job.stored_json(), ctx.box.seal_json(validated))
    ctx.store.redis.set(schema.job(tenant, job.id), copy.job)
    ctx.store.redis.set(schema.submission(tenant, job.id), copy.sealed)
    return job, copy


def published(ctx: JobContext, tenant: str, job: Job, run) -> list[str]:  # type: ignore[no-untyped-def]
    """The statuses of the jobs published on the job's event channel while ``run()`` runs (each
    message is the job as stored, the bytes a poll serves)."""
    pubsub = ctx.store.redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(schema.job_events(tenant, job.id))
    try:
        run()
        seen = []
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:  # (None for the subscription's own confirmation, too)
            message = pubsub.get_message(timeout=0.1)
            if message is not None:
                stored = json.loads(message["data"])
                assert stored == json.loads(ctx.store.redis.get(schema.job(tenant, job.id)) or "null") or \
                    stored["status"] != "succeeded"  # the last one is the record as it stays
                seen.append(stored["status"])
        return seen
    finally:
        pubsub.close()


def test_a_job_is_stored_running_only_once_it_waits_on_a_provider(ctx, tenant, fresh_provider):
    local = queue_local_job(ctx, tenant.name)
    assert published(ctx, tenant.name, local, lambda: run_job(ctx, tenant.name, local.id)) == ["succeeded"]
    ended = ctx.store.job(tenant.name, local.id)
    assert ended is not None and ended.attempts == 1 and ended.started_at is not None
    assert [p.step for p in ended.progress] == ["apply_settings", "store_connector"]  # local steps kept

    checked = queue_job(ctx, tenant.name, fresh_provider.base_url)  # its credentials are checked by the provider
    seen = published(ctx, tenant.name, checked, lambda: run_job(ctx, tenant.name, checked.id))
    assert seen == ["running", "succeeded"]


def test_a_start_counts_before_anything_is_written(redis_client, tenant, fresh_provider):
    """A run that kills its worker before its first write still used an attempt."""
    ctx = make_context(redis_client, max_attempts=2)
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)
    for died in (1, 2):
        start = ctx.store.start_job(tenant.name, job.id)  # what a run does first; then its worker dies
        assert start.starts == died and start.job is not None and start.job.attempts == 0
    ended = run_job(ctx, tenant.name, job.id)
    assert ended is not None and ended.status == "failed" and ended.error is not None
    assert ended.error["code"] == "attempts_exhausted" and ended.attempts == 2
    assert checks(fresh_provider) == 0
    # The count expires with the job it counts.
    assert 0 < redis_client.ttl(schema.job_starts(tenant.name, job.id)) <= 3600


def test_a_held_lease_turns_a_second_run_away_without_counting_it(redis_client, tenant, fresh_provider):
    ctx = make_context(redis_client)
    leases = RunLeases(redis_client, ttl=20)
    job = queue_local_job(ctx, tenant.name)
    redis_client.set(schema.job_lease(tenant.name, job.id), "another run", px=12_000)
    with pytest.raises(Taken) as taken:
        run_job(ctx, tenant.name, job.id, leases)
    assert 11 < taken.value.delay <= 12
    assert redis_client.get(schema.job_starts(tenant.name, job.id)) is None  # not a start

    redis_client.delete(schema.job_lease(tenant.name, job.id))
    ended = run_job(ctx, tenant.name, job.id, leases)
    assert ended is not None and ended.status == "succeeded" and ended.attempts == 1
    assert redis_client.exists(schema.job_lease(tenant.name, job.id)) == 0  # given back with the job's end
    assert leases.held() == 0


def scripts_run(client: redis.Redis) -> int:
    """Script round trips this client made: each starts with one EVALSHA. (The EVAL that reloads
    a script after a NOSCRIPT, in a Redis restarted or flushed since it was loaded, is the same
    round trip's.)"""
    counting = client.connection_pool.connection_class
    assert issubclass(counting, ScriptCounting), "count on the counted_redis client"
    return counting.sent


def test_a_first_delivery_that_needs_nobody_else_ends_in_one_round_trip(ctx, tenant):
    redis = ctx.store.redis
    # The process's first end for the tenant also reads its webhook subscriptions (kept after).
    first, first_copy = queue_with_copy(ctx, tenant.name, LOCAL_BODY)
    before = scripts_run(redis)
    run_job(ctx, tenant.name, first.id, RunLeases(redis), first_copy)
    assert scripts_run(redis) - before == 2
    job, copy = queue_with_copy(ctx, tenant.name, LOCAL_BODY)
    before = scripts_run(redis)
    ended = run_job(ctx, tenant.name, job.id, RunLeases(redis), copy)
    assert scripts_run(redis) - before == 1
    assert ended is not None and ended.status == "succeeded" and ended.attempts == 1
    stored = ctx.store.job(tenant.name, job.id)
    assert stored is not None and stored.model_dump() == ended.model_dump()
    assert stored.started_at is not None and [p.step for p in stored.progress] == ["apply_settings", "store_connector"]
    connector = ctx.store.connector(tenant.name, job.connector_id)
    assert connector is not None and connector.status == "authorised"
    assert redis.get(schema.job_starts(tenant.name, job.id)) == b"1"  # the start is counted
    assert 0 < redis.ttl(schema.job_starts(tenant.name, job.id)) <= 3600
    assert not redis.sismember(schema.active_jobs(tenant.name), job.id)
    # A redelivery (same message) finds the stored job changed: nothing is written from the
    # copy, and the run from the store finds the job finished and leaves it as it is.
    again: list[Job | None] = []
    seen = published(ctx, tenant.name, job, lambda: again.append(run_job(ctx, tenant.name, job.id, RunLeases(redis),
                                                                         copy)))
    assert again == [ended] and seen == [] and ctx.store.job(tenant.name, job.id) == ended
    assert ctx.store.connector(tenant.name, job.connector_id) == connector


def test_a_stale_copy_runs_the_usual_way(ctx, tenant, fresh_provider):
    job, copy = queue_with_copy(ctx, tenant.name, LOCAL_BODY)
    retried = job.model_copy(update={"status": "retrying", "attempts": 1, "started_at": utcnow()})
    ctx.store.save_job(retried)  # the first attempt was retried: the message's copy is stale
    ctx.store.redis.set(schema.job_starts(tenant.name, job.id), 1)
    ended = run_job(ctx, tenant.name, job.id, RunLeases(ctx.store.redis), copy)
    # Run from the store: the copy's end (attempt 1, a new started_at) was not written.
    assert ended is not None and ended.status == "succeeded" and ended.attempts == 2
    assert ended.started_at == retried.started_at  # the first start's, kept
    assert ctx.store.job(tenant.name, job.id) == ended



def test_a_job_that_needs_a_provider_is_not_run_from_its_copy(ctx, tenant, fresh_provider):
    body = authorise_body()
    body["variables"][0]["value"] = fresh_provider.base_url  # type: ignore[index]
    checked, checked_copy = queue_with_copy(ctx, tenant.name, body)
    ctx.subscriptions.heard(ctx.store.run, tenant.name)  # as after the process's first end for the tenant
    before = scripts_run(ctx.store.redis)
    seen = published(ctx, tenant.name, checked, lambda: run_job(ctx, tenant.name, checked.id, None, checked_copy))
    assert seen == ["running", "succeeded"] and checks(fresh_provider) == 1
    # Nothing was tried from the copy: exactly the run from the store's round trips (the start,
    # the pending connector, ``running`` at the credential check, the end).
    assert scripts_run(ctx.store.redis) - before == 4
    ended = ctx.store.job(tenant.name, checked.id)
    assert ended is not None and ended.attempts == 1
    assert ctx.store.redis.get(schema.job_starts(tenant.name, checked.id)) == b"1"


def test_a_copy_is_not_used_once_a_run_has_started_the_job(ctx, tenant):
    """A run counted its start, then its worker died before writing anything: the stored job is
    still the copy, byte for byte, but this delivery is its second start, not its first."""
    job, copy = queue_with_copy(ctx, tenant.name, LOCAL_BODY)
    assert ctx.store.start_job(tenant.name, job.id).starts == 1  # the run that died
    ctx.subscriptions.heard(ctx.store.run, tenant.name)  # as after the process's first end for the tenant
    before = scripts_run(ctx.store.redis)
    ended = run_job(ctx, tenant.name, job.id, RunLeases(ctx.store.redis), copy)
    assert ended is not None and ended.status == "succeeded" and ended.attempts == 2
    # The refused end from the copy, the subscriptions read again (were they why?), the start, the end.
    assert scripts_run(ctx.store.redis) - before == 4
    assert ctx.store.job(tenant.name, job.id) == ended


def test_a_copy_sealed_under_a_retired_key_runs_from_the_stored_request(counted_redis, tenant):
    redis_client = counted_redis
    old = make_context(redis_client)
    job, copy = queue_with_copy(old, tenant.name, LOCAL_BODY)  # sealed under the old key, message and store
    new_key = generate_key()
    ctx = make_context(redis_client)
    ctx.box = SecretBox(new_key)  # `authq secrets rotate` re-sealed the store; the message kept the old text
    validated = validate_authorise(LOCAL_BODY, ctx.catalog, ctx.box).model_dump(exclude_unset=True)
    redis_client.set(schema.submission(tenant.name, job.id), ctx.box.seal_json(validated))
    ctx.subscriptions.heard(ctx.store.run, tenant.name)  # as after the process's first end for the tenant
    before = scripts_run(redis_client)
    ended = run_job(ctx, tenant.name, job.id, None, copy)
    assert ended is not None and ended.status == "succeeded" and ended.attempts == 1
    assert scripts_run(redis_client) - before == 2  # from the store: its start, then its end


def test_a_copy_is_not_run_beside_a_run_that_holds_the_lease(ctx, tenant):
    job, copy = queue_with_copy(ctx, tenant.name, LOCAL_BODY)
    ctx.store.redis.set(schema.job_lease(tenant.name, job.id), "another run", px=5_000)
    with pytest.raises(Taken):
        run_job(ctx, tenant.name, job.id, RunLeases(ctx.store.redis), copy)
    stored = ctx.store.job(tenant.name, job.id)
    assert stored is not None and stored.model_dump() == job.model_dump()  # as accepted: nothing was written
    assert ctx.store.connector(tenant.name, job.connector_id) is None
    assert ctx.store.redis.get(schema.job_starts(tenant.name, job.id)) is None
    assert ctx.store.redis.get(schema.job_lease(tenant.name, job.id)) == b"another run"


def test_a_local_failure_ends_in_one_round_trip_too(ctx, tenant):
    job, copy = queue_with_copy(ctx, tenant.name, LOCAL_BODY)
    catalog = load_catalog(TEST_CATALOG)  # the implementation left the catalog after the job was accepted
    ctx.catalog = catalog.model_copy(update={"implementations": [
        i for i in catalog.implementations if i.id != "test-bearer-nocheck"]})
    ctx.subscriptions.heard(ctx.store.run, tenant.name)  # as after the process's first end for the tenant
    before = scripts_run(ctx.store.redis)
    ended = run_job(ctx, tenant.name, job.id, RunLeases(ctx.store.redis), copy)
    assert scripts_run(ctx.store.redis) - before == 1
    assert ended is not None and ended.status == "failed" and ended.error is not None
    assert ended.error["code"] == "implementation_not_found" and ended.attempts == 1
    assert ctx.store.job(tenant.name, job.id) == ended
    assert ctx.store.redis.get(schema.job_starts(tenant.name, job.id)) == b"1"
    assert ctx.store.connector(tenant.name, job.connector_id) is None


def test_max_attempts_counts_the_first_run_so_it_is_at_least_one():
    with pytest.raises(ValidationError, match="max_attempts"):
        Settings(max_attempts=0, _env_file=None)  # type: ignore[call-arg]
    assert Settings(max_attempts=1, _env_file=None).max_attempts == 1  # type: ignore[call-arg]


def test_a_job_that_needs_a_provider_opens_its_copy_once_and_runs_once(ctx, tenant, fresh_provider):
    opened: list[str] = []
    real_open = ctx.box.open

    def counting_open(sealed: str) -> str:
        opened.append(sealed)
        return real_open(sealed)

    ctx.box.open = counting_open  # type: ignore[method-assign]
    body = authorise_body()
    body["variables"][0]["value"] = fresh_provider.base_url  # type: ignore[index]
    job, copy = queue_with_copy(ctx, tenant.name, body)
    ended = run_job(ctx, tenant.name, job.id, RunLeases(ctx.store.redis), copy)
    assert ended is not None and ended.status == "succeeded" and checks(fresh_provider) == 1
    assert opened.count(copy.sealed) == 1  # the copy's request, opened once, is the stored one: not opened again


def test_every_job_type_has_a_handler_that_declares_whether_it_needs_a_provider(ctx, fresh_provider):
    assert set(HANDLERS) == set(QUEUE_OF_TYPE)
    local = LOCAL_BODY
    checked = authorise_body()
    checked["variables"][0]["value"] = fresh_provider.base_url  # type: ignore[index]
    body = {"authentication_implementation_id": "test-oauth"}  # the end user is sent to the provider
    assert not HANDLERS["authorise"].needs_provider(ctx, local)
    assert HANDLERS["authorise"].needs_provider(ctx, checked)
    assert HANDLERS["authorise"].needs_provider(ctx, body)
    for job_type in ("reauthorise", "authenticate", "woo_app_auth", "refresh"):
        assert HANDLERS[job_type].needs_provider(ctx, local), job_type


def test_the_end_audits_the_change_once_with_the_actor_the_request_carried(ctx, tenant):
    """From the copy and from the store alike: the event lands with the job's end, once, however
    often the job is delivered, naming whom the request came from."""
    actor = {"api_key_id": "key_" + "b" * 32, "ip": "198.51.100.4"}
    for from_copy in (True, False):
        job, copy = queue_with_copy(ctx, tenant.name, LOCAL_BODY, actor)
        for _ in range(2):  # a redelivery writes nothing more
            ended = run_job(ctx, tenant.name, job.id, RunLeases(ctx.store.redis), copy if from_copy else None)
            assert ended is not None and ended.status == "succeeded"
        found, _ = ctx.store.run(audit.events(tenant.name, 1, 15, connector_id=job.connector_id))
        assert [(e.type, e.actor.model_dump(), e.details) for e in found] == [
            ("connector.created", actor, {"job_id": job.id, "job_type": "authorise", "status": "authorised"})]
        assert "tok_local_0123456789" not in found[0].stored()


def heard_on(ctx: JobContext, channel: str, run) -> list[bytes]:  # type: ignore[no-untyped-def]
    pubsub = ctx.store.redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel)
    try:
        run()
        heard, deadline = [], time.monotonic() + 0.5
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message is not None:
                heard.append(message["data"])
        return heard
    finally:
        pubsub.close()


@pytest.mark.parametrize("from_copy", [True, False])
def test_a_waiting_api_process_is_told_on_its_inbox_of_each_save(ctx, tenant, fresh_provider, from_copy):
    """The request names the waiting process's inbox: each save goes there too, as
    ``{job channel}\\n{job as stored}`` (run from its copy, or from the store with a check)."""
    inbox = schema.api_inbox(secrets.token_hex(6))
    body = LOCAL_BODY
    if not from_copy:
        body = authorise_body()
        body["variables"][0]["value"] = fresh_provider.base_url  # type: ignore[index]
    job, copy = queue_with_copy(ctx, tenant.name, body, inbox=inbox)
    heard = heard_on(ctx, inbox, lambda: run_job(ctx, tenant.name, job.id, RunLeases(ctx.store.redis), copy))
    channel = schema.job_events(tenant.name, job.id).encode()
    assert heard and all(m.startswith(channel + b"\n") for m in heard)
    assert heard[-1].removeprefix(channel + b"\n") == ctx.store.redis.get(schema.job(tenant.name, job.id))
    assert json.loads(heard[-1].split(b"\n", 1)[1])["status"] == "succeeded"
    assert len(heard) == (1 if from_copy else 2)  # (running at the credential check, then the end)


def test_a_request_naming_a_channel_that_is_no_inbox_makes_no_worker_publish_there(ctx, tenant):
    elsewhere = f"authq:t:{tenant.name}:job:{new_id('job')}:events"  # another job's channel, say
    job, copy = queue_with_copy(ctx, tenant.name, LOCAL_BODY, inbox=elsewhere)
    heard = heard_on(ctx, elsewhere, lambda: run_job(ctx, tenant.name, job.id, RunLeases(ctx.store.redis), copy))
    assert heard == [] and ctx.store.job(tenant.name, job.id).status == "succeeded"  # type: ignore[union-attr]
