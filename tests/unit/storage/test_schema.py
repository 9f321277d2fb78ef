"""The key schema (``tasks/storage/schema.py``): every key keeps the name data already stored
under it has, reads back into its parts, and is found by its kind's pattern, by real SCANs,
without its neighbours."""

from __future__ import annotations

import pytest
import redis

from tasks.model.records import new_id
from tasks.storage import schema

STATE = "raw-state-value"
STATE_HASH = schema.sha256(STATE)
KEY_HASH = schema.hash_api_key("aq_the-key")

# Every key as earlier versions wrote it: a renamed key would orphan what a running system holds.
STORED_NAMES = {
    schema.job("acme", "job_1"): "authq:t:acme:job:job_1",
    schema.submission("acme", "job_1"): "authq:t:acme:job:job_1:submission",
    schema.job_starts("acme", "job_1"): "authq:t:acme:job:job_1:starts",
    schema.job_lease("acme", "job_1"): "authq:t:acme:job:job_1:lease",
    schema.job_deferred("acme", "job_1"): "authq:t:acme:job:job_1:deferred",
    schema.job_events("acme", "job_1"): "authq:t:acme:job:job_1:events",
    schema.active_jobs("acme"): "authq:t:acme:active-jobs",
    schema.connector("acme", "con_1"): "authq:t:acme:connector:con_1",
    schema.connectors("acme"): "authq:t:acme:connectors",
    schema.refresh_lock("acme", "con_1"): "authq:t:acme:connector:con_1:refresh-lock",
    schema.refresh_for_use("acme", "con_1", 3): "authq:t:acme:connector:con_1:refresh-for-use:3",
    schema.refresh_queued("acme", "con_1", 7): "authq:t:acme:connector:con_1:refresh-queued:7",
    schema.refresh_schedule("acme"): "authq:t:acme:refresh-schedule",
    schema.rate_log("acme", "con_1"): "authq:t:acme:rate:con_1",
    schema.rate_blocked("acme", "con_1"): "authq:t:acme:rate:con_1:blocked",
    schema.pool("acme", 3): "authq:t:acme:pool:3",
    schema.pools("acme"): "authq:t:acme:pools",
    schema.pool_seq("acme"): "authq:t:acme:pool-seq",
    schema.pool_slots("acme", 3): "authq:t:acme:pool-slots:3",
    schema.pool_freed("acme", 3): "authq:t:acme:pool-slots:3:freed",
    schema.permit("acme", "pmt_1"): "authq:t:acme:permit:pmt_1",
    schema.certificate("acme", "crt_1"): "authq:t:acme:certificate:crt_1",
    schema.certificates("acme"): "authq:t:acme:certificates",
    schema.session("acme", "ses_1"): "authq:t:acme:session:ses_1",
    schema.idempotency("acme", "key-1"): f"authq:t:acme:idempotency:{schema.sha256('key-1')}",
    schema.audit_events("acme"): "authq:t:acme:audit-events",
    schema.audit_by_connector("acme", "con_1"): "authq:t:acme:audit-connector:con_1",
    schema.audit_by_type("acme", "connector.deleted"): "authq:t:acme:audit-type:connector.deleted",
    schema.webhook("acme", "whk_1"): "authq:t:acme:webhook:whk_1",
    schema.webhooks("acme"): "authq:t:acme:webhooks",
    schema.webhook_subscriptions("acme"): "authq:t:acme:webhook-subscriptions",
    schema.webhook_subscriptions_version("acme"): "authq:t:acme:webhook-subscriptions-version",
    schema.webhook_deliveries("acme", "whk_1"): "authq:t:acme:webhook:whk_1:deliveries",
    schema.webhook_slots("acme", "whk_1"): "authq:t:acme:webhook:whk_1:slots",
    schema.delivery("acme", "whk_1.msg_1"): "authq:t:acme:delivery:whk_1.msg_1",
    schema.delivery_lease("acme", "whk_1.msg_1"): "authq:t:acme:delivery:whk_1.msg_1:lease",
    schema.connectors_by_status("expired"): "authq:connectors-by-status:expired",
    schema.api_key(KEY_HASH): f"authq:apikey:{KEY_HASH}",
    schema.api_rate(KEY_HASH): f"authq:api-arrival:{KEY_HASH}",
    schema.api_streams(KEY_HASH): f"authq:api-streams:{KEY_HASH}",
    schema.api_inbox("0f1e2d3c"): "authq:api-inbox:0f1e2d3c",
    schema.auth_state(STATE): f"authq:state:{STATE_HASH}",
    schema.connect_token(STATE): f"authq:connect:{STATE_HASH}",
    schema.connect_rate(KEY_HASH): f"authq:connect-arrival:{KEY_HASH}",
    schema.auth_state_claim(STATE): f"authq:state:{STATE_HASH}:claim",
    schema.auth_state_exchange(STATE): f"authq:state:{STATE_HASH}:exchange",
    schema.demo_consent("req1"): "authq:demo-consent:req1",
    schema.demo_store_request("req1"): "authq:demo-store-request:req1",
    schema.demo_code(STATE): f"authq:demo-code:{STATE_HASH}",
    schema.demo_access(STATE): f"authq:demo-access:{STATE_HASH}",
    schema.demo_refresh(STATE): f"authq:demo-refresh:{STATE_HASH}",
    schema.demo_woo_key(STATE): f"authq:demo-woo-key:{STATE_HASH}",
    schema.WORKERS: "authq:workers",
    schema.API_KEYS: "authq:apikeys",
    schema.API_KEYS_USED: "authq:apikeys-used",
    schema.EXPIRING: "authq:expiring",
    schema.REFRESH_TENANTS: "authq:refresh-tenants",
    schema.REFRESH_SCAN_LOCK: "authq:refresh-scan",
    schema.ORPHAN_SWEEP_LOCK: "authq:orphan-sweep",
    schema.ORPHAN_SUSPECTS: "authq:orphan-suspects",
    schema.KEY_CHECK: "authq:key-check",
    schema.JOB_OUTCOMES: "authq:metrics:jobs",
    schema.JOB_DURATIONS: "authq:metrics:job-duration-v2",
    schema.JOB_RETRIES: "authq:metrics:retries",
    schema.RATE_LIMIT_WAITS: "authq:metrics:rate-limit-waits",
    schema.WEBHOOK_DUE: "authq:webhook-due",
    schema.WEBHOOK_SCAN_LOCK: "authq:webhook-scan",
    schema.WEBHOOK_OUTCOMES: "authq:metrics:webhook-deliveries",
    schema.WEBHOOK_DURATIONS: "authq:metrics:webhook-delivery-seconds",
}


def test_every_key_keeps_its_stored_name() -> None:
    assert {built: built for built in STORED_NAMES} == STORED_NAMES


def test_every_shape_is_covered_and_every_key_reads_back_as_its_kind() -> None:
    kinds = {found.kind for found in map(schema.parse, STORED_NAMES) if found is not None}
    assert {shape.kind for shape in schema.SHAPES} <= kinds    # no shape without a key above
    assert len(kinds) == len(STORED_NAMES)                    # and each key read back as another kind
    assert schema.parse(schema.submission("acme", "job_1")) == schema.Key("submission", "acme", "job_1")
    assert schema.parse(schema.active_jobs("acme")) == schema.Key("active_jobs", "acme", None)
    assert schema.parse(schema.refresh_queued("acme", "con_1", 7)) == schema.Key("refresh_queued", "acme", "con_1")
    assert schema.parse(schema.auth_state_claim(STATE)) == schema.Key("auth_state_claim", None, STATE_HASH)
    assert schema.parse(schema.KEY_CHECK) == schema.Key("key_check")
    assert schema.parse(schema.pool("acme", 3)) == schema.Key("pool", "acme", "3")


def test_a_shape_reads_back_only_its_own_keys() -> None:
    assert schema.job.parse(b"authq:t:acme:job:job_1") == schema.Key("job", "acme", "job_1")  # bytes, as SCAN answers
    assert schema.job.parse(schema.submission("acme", "job_1")) is None
    assert schema.connector.parse(schema.refresh_lock("acme", "con_1")) is None
    assert schema.submission.parse("authq:t:acme:job::submission") is None     # an empty field
    assert schema.auth_state.parse("authq:state:not-a-sha256") is None         # a hashed id is a SHA-256
    assert schema.parse("authq:t:acme:job:job_1:unknown") is None
    assert schema.parse("another-app:t:acme:job:job_1") is None
    assert schema.parse("authq.interactive") is None                           # the broker's lists are not ours


def test_ids_and_members() -> None:
    assert schema.is_id("job_1") and schema.is_id("3")
    assert not schema.is_id("") and not schema.is_id("job_1:submission")
    assert schema.member_parts(schema.expiring_member("acme", "con_1")) == ("acme", "con_1")
    assert schema.member_parts(schema.orphan_suspect("acme", "job_1").encode()) == ("acme", "job_1")


@pytest.fixture
def tenant_names() -> tuple[str, str]:
    """Two tenants, one named like a glob that would match the other."""
    plain = f"schema-{new_id('t')}"
    return plain, plain[:-3] + "*"


def test_patterns_find_every_key_of_their_kind_with_real_scans(redis_client: redis.Redis,
                                                               tenant_names: tuple[str, str]) -> None:
    plain, globbed = tenant_names
    made: list[str] = []
    for tenant in (plain, globbed):
        for key in (schema.job(tenant, "job_1"), schema.submission(tenant, "job_1"), schema.job_lease(tenant, "job_1"),
                    schema.connector(tenant, "con_1"), schema.refresh_lock(tenant, "con_1"),
                    schema.active_jobs(tenant), schema.certificate(tenant, "crt_1")):
            redis_client.set(key, "x", ex=60)
            made.append(key)

    def scanned(pattern: str, shape: schema.Shape) -> set[str]:
        return {k.decode() for k in redis_client.scan_iter(match=pattern, count=1000) if shape.parse(k) is not None}

    try:
        for tenant in (plain, globbed):
            assert scanned(schema.job.pattern(tenant), schema.job) == {schema.job(tenant, "job_1")}
            assert scanned(schema.connector.pattern(tenant), schema.connector) == {schema.connector(tenant, "con_1")}
            assert {k.decode() for k in redis_client.scan_iter(match=schema.tenant_keys(tenant), count=1000)} == {
                k for k in made if schema.parse(k) is not None and schema.parse(k).tenant == tenant}  # type: ignore[union-attr]
        every = scanned(schema.submission.pattern(), schema.submission)     # every tenant's
        assert {schema.submission(plain, "job_1"), schema.submission(globbed, "job_1")} <= every
        tenants = {schema.active_jobs.parse(k).tenant  # type: ignore[union-attr]
                   for k in redis_client.scan_iter(match=schema.active_jobs.pattern(), count=1000)}
        assert {plain, globbed} <= tenants
    finally:
        redis_client.delete(*made)


def test_a_job_key_is_its_prefix_and_id() -> None:
    """What the bench's reference server relies on to read authq's records as cheaply as it can."""
    assert schema.job("acme", "") + "job_1" == schema.job("acme", "job_1")
