"""Webhooks end to end: real workers deliver to a real receiver on loopback, which verifies every
message with the ``standardwebhooks`` package (tests/support/webhook_receiver.py).

The workers run on the short schedule of tests/support/helpers.py (``WEBHOOK_TEST_SCHEDULE``:
1 s, 2 s, 3 s between four attempts), a 4 s deadline and a scan every 0.2 s.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import datetime
from typing import Any

import pytest
from pydantic import SecretStr

from tests.integration.test_refresh_tokens import CLIENT_SECRET, authorised_connector, refresh
from tests.support.helpers import basic_body, poll_job
from tests.support.leakcheck import remember_secret
from tests.support.provider import GOOD_SECRET, GOOD_TOKEN
from tests.support.webhook_receiver import Received, Receiver, refusing_url

pytestmark = pytest.mark.integration
WAIT = {"Prefer": "wait=20"}


@pytest.fixture
def settings(settings, tenants):  # type: ignore[no-untyped-def]
    """The tenants' keys may also read credentials (the on-demand refresh's path)."""
    keys = ",".join(f"{t.name}:{t.key}:manage+proxy+credentials" for t in tenants)
    return settings.model_copy(update={"api_keys": SecretStr(keys)})


async def subscribe(client, tenant, receiver: Receiver, name: str, events: list[str] | None = None,
                    url: str | None = None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    body: dict[str, Any] = {"url": url or receiver.url(name), "description": f"test {name}"}
    if events is not None:
        body["events"] = events
    answer = await client.post("/api/v1/webhooks", json=body, headers=tenant.headers)
    assert answer.status == 201, await answer.text()
    created = (await answer.json())["data"]
    remember_secret(created["secret"])
    receiver.expect(name, created["secret"])
    return created


def endpoint(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}"


def no_secret_in(messages: list[Received], *values: str) -> None:
    for message in messages:
        assert message.verified, message
        for value in values:
            assert value not in message.raw
            assert all(value not in header for header in message.headers.values())


async def connector_shown(client, tenant, connector_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    answer = await client.get(f"/api/v1/connectors/{connector_id}", headers=tenant.headers)
    assert answer.status == 200, await answer.text()
    return (await answer.json())["data"]


async def deliveries(client, tenant, webhook_id: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    answer = await client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=tenant.headers)
    assert answer.status == 200, await answer.text()
    return (await answer.json())["data"]


def of_type(messages: list[Received], kind: str) -> list[Received]:
    return [m for m in messages if m.type == kind]


# -- 1. each change produces its event, as the API shows the connector -------------------------

async def test_a_basic_authorise_sends_connector_authorised_and_job_succeeded(
        client, tenant, workers, fresh_provider, webhook_receiver):
    name = endpoint("basic")
    hook = await subscribe(client, tenant, webhook_receiver, name)
    answer = await client.post("/api/v1/oauth/authorise", json=basic_body(fresh_provider),
                               headers={**tenant.headers, **WAIT})
    job = (await answer.json())["data"]
    job = job if job["status"] == "succeeded" else await poll_job(client, tenant, job["id"])
    assert job["status"] == "succeeded", job
    got = await webhook_receiver.wait_for(name, lambda m: {"connector.authorised", "job.succeeded"}
                                          <= {r.type for r in m})
    no_secret_in(got, GOOD_SECRET, hook["secret"])
    authorised = of_type(got, "connector.authorised")[0]
    assert authorised.id.startswith("msg_") and authorised.headers["webhook-id"] == authorised.id
    assert authorised.body["data"] == {"connector": await connector_shown(client, tenant, job["connector_id"]),
                                       "job_id": job["id"]}
    assert set(authorised.body) == {"type", "timestamp", "data"}
    finished = of_type(got, "job.succeeded")[0]
    shown = await client.get(f"/api/v1/jobs/{job['id']}", headers=tenant.headers)
    assert finished.body["data"] == {"job": (await shown.json())["data"]}
    logged = await deliveries(client, tenant, hook["id"])
    assert {d["event_id"] for d in logged} == {m.id for m in got}
    assert all(d["status"] == "delivered" and d["attempts"] == 1 and d["last_status_code"] == 200 for d in logged)


async def test_an_oauth_code_flow_sends_connector_authorised_once_the_callback_completes_it(
        client, tenant, workers, fresh_oauth, test_ca, webhook_receiver):
    name = endpoint("code")
    hook = await subscribe(client, tenant, webhook_receiver, name, events=["connector.authorised"])
    connector_id = await authorised_connector(client, tenant, fresh_oauth, test_ca, f"wh-{secrets.token_hex(4)}")
    got = await webhook_receiver.wait_for(name, lambda m: len(m) >= 1)
    await asyncio.sleep(0.5)  # nothing else comes: the authorise's redirect left it pending, unannounced
    got = webhook_receiver.of(name)
    assert [m.type for m in got] == ["connector.authorised"]
    no_secret_in(got, CLIENT_SECRET, hook["secret"])
    assert got[0].body["data"]["connector"] == await connector_shown(client, tenant, connector_id)
    assert got[0].body["data"]["connector"]["status"] == "authorised"


async def test_a_failed_authorise_sends_connector_failed(client, tenant, workers, fresh_provider, webhook_receiver):
    name = endpoint("failed")
    hook = await subscribe(client, tenant, webhook_receiver, name, events=["connector.failed", "job.failed"])
    body = basic_body(fresh_provider)
    body["variables"][2]["value"] = "cs_wrong_secret_0000"  # type: ignore[index]
    remember_secret("cs_wrong_secret_0000")
    answer = await client.post("/api/v1/oauth/authorise", json=body, headers={**tenant.headers, **WAIT})
    job = await poll_job(client, tenant, (await answer.json())["data"]["id"])
    assert job["status"] == "failed" and job["error"]["code"] == "credentials_rejected", job
    got = await webhook_receiver.wait_for(name, lambda m: {"connector.failed", "job.failed"} <= {r.type for r in m})
    no_secret_in(got, "cs_wrong_secret_0000", hook["secret"])
    failed = of_type(got, "connector.failed")[0]
    assert failed.body["data"] == {"connector": await connector_shown(client, tenant, job["connector_id"]),
                                   "job_id": job["id"]}
    assert failed.body["data"]["connector"]["status"] == "failed"
    assert of_type(got, "job.failed")[0].body["data"]["job"]["error"]["code"] == "credentials_rejected"


async def test_a_refresh_refused_with_invalid_grant_sends_connector_expired(
        client, tenant, workers, fresh_oauth, test_ca, webhook_receiver):
    client_id = f"whx-{secrets.token_hex(4)}"
    connector_id = await authorised_connector(client, tenant, fresh_oauth, test_ca, client_id)
    name = endpoint("expired")
    hook = await subscribe(client, tenant, webhook_receiver, name, events=["connector.expired"])
    fresh_oauth.revoke_tokens(client_id)
    job = await poll_job(client, tenant, (await refresh(client, tenant, connector_id))["id"])
    assert job["status"] == "failed" and job["error"]["provider"]["error"] == "invalid_grant", job
    got = await webhook_receiver.wait_for(name, lambda m: len(m) >= 1)
    assert [m.type for m in got] == ["connector.expired"]
    no_secret_in(got, CLIENT_SECRET, hook["secret"])
    shown = await connector_shown(client, tenant, connector_id)
    assert shown["status"] == "expired"
    assert got[0].body["data"] == {"connector": shown, "job_id": job["id"]}
    listed = await client.get("/api/v1/connectors?status=expired", headers=tenant.headers)
    assert [c["id"] for c in (await listed.json())["data"]] == [connector_id]


async def test_an_on_demand_refresh_refused_with_invalid_grant_sends_connector_expired(
        client, tenant, workers, fresh_oauth, test_ca, webhook_receiver):
    client_id = f"whd-{secrets.token_hex(4)}"
    connector_id = await authorised_connector(client, tenant, fresh_oauth, test_ca, client_id)
    name = endpoint("expired-on-use")
    hook = await subscribe(client, tenant, webhook_receiver, name, events=["connector.expired"])
    fresh_oauth.revoke_tokens(client_id)
    answer = await client.get(f"/api/v1/connectors/{connector_id}/credentials", params={"min_ttl": "3600"},
                              headers=tenant.headers)
    assert answer.status == 409 and (await answer.json())["status"] == "expired"
    got = await webhook_receiver.wait_for(name, lambda m: len(m) >= 1)
    assert [m.type for m in got] == ["connector.expired"]
    no_secret_in(got, CLIENT_SECRET, hook["secret"])
    assert got[0].body["data"]["connector"] == await connector_shown(client, tenant, connector_id)


async def test_a_delete_sends_connector_deleted_with_the_connector_as_it_was(
        client, tenant, workers, fresh_provider, webhook_receiver):
    answer = await client.post("/api/v1/oauth/authorise", json=basic_body(fresh_provider),
                               headers={**tenant.headers, **WAIT})
    job = await poll_job(client, tenant, (await answer.json())["data"]["id"])
    name = endpoint("deleted")
    hook = await subscribe(client, tenant, webhook_receiver, name, events=["connector.deleted"])
    before = await connector_shown(client, tenant, job["connector_id"])
    deleted = await client.delete(f"/api/v1/connectors/{job['connector_id']}", headers=tenant.headers)
    assert deleted.status == 204
    got = await webhook_receiver.wait_for(name, lambda m: len(m) >= 1)
    assert [m.type for m in got] == ["connector.deleted"]
    no_secret_in(got, GOOD_SECRET, GOOD_TOKEN, hook["secret"])
    assert got[0].body["data"] == {"connector": before, "job_id": None}


async def authorised_basic(client, tenant, provider) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    answer = await client.post("/api/v1/oauth/authorise", json=basic_body(provider),
                               headers={**tenant.headers, **WAIT})
    job = await poll_job(client, tenant, (await answer.json())["data"]["id"])
    assert job["status"] == "succeeded", job
    return job


async def test_workers_that_ended_jobs_before_an_endpoint_existed_tell_it_of_the_next_and_stop_once_deleted(
        client, tenant, workers, fresh_provider, webhook_receiver):
    """Each worker keeps a tenant's subscriptions between jobs (one read fewer per job): an
    endpoint made, or deleted, after they were read must still be heard of at the next end."""
    # Enough ends that every worker thread of both workers has seen this tenant without endpoints.
    await asyncio.gather(*(authorised_basic(client, tenant, fresh_provider) for _ in range(12)))
    name = endpoint("late")
    hook = await subscribe(client, tenant, webhook_receiver, name, events=["job.succeeded"])
    jobs = await asyncio.gather(*(authorised_basic(client, tenant, fresh_provider) for _ in range(6)))
    got = await webhook_receiver.wait_for(name, lambda m: len(m) >= len(jobs))
    assert sorted(m.body["data"]["job"]["id"] for m in got) == sorted(j["id"] for j in jobs)
    assert (await client.delete(f"/api/v1/webhooks/{hook['id']}", headers=tenant.headers)).status == 204
    await asyncio.gather(*(authorised_basic(client, tenant, fresh_provider) for _ in range(6)))
    await asyncio.sleep(1.0)
    assert len(webhook_receiver.of(name)) == len(jobs)


# -- 2. retries, Retry-After, 410, and one endpoint never holding up another -------------------

async def ping(client, tenant, webhook_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    answer = await client.post(f"/api/v1/webhooks/{webhook_id}/test", headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    return (await answer.json())["data"]


async def test_500_500_200_is_the_same_message_three_times_on_the_schedule(client, tenant, workers,
                                                                            webhook_receiver):
    name = endpoint("retry")
    hook = await subscribe(client, tenant, webhook_receiver, name)
    webhook_receiver.answer(name, 500, 500)
    sent = await ping(client, tenant, hook["id"])
    got = await webhook_receiver.wait_for(name, lambda m: len(m) >= 3, timeout=20)
    assert [m.answered for m in got] == [500, 500, 200]
    assert {m.id for m in got} == {sent["event_id"]} and all(m.verified for m in got)
    assert {m.raw for m in got} == {got[0].raw}   # the same bytes; each attempt signed at its own time
    first, second = got[1].at - got[0].at, got[2].at - got[1].at
    assert 1.0 <= first < 2.5, first    # the schedule's 1 s (plus at most a scan period and a hop)
    assert 2.0 <= second < 3.5, second  # then 2 s
    await asyncio.sleep(0.3)
    [logged] = await deliveries(client, tenant, hook["id"])
    assert logged["status"] == "delivered" and logged["attempts"] == 3 and logged["last_status_code"] == 200
    assert logged["next_attempt_at"] is None and logged["delivered_at"] is not None


async def test_429_with_retry_after_waits_at_least_that_long(client, tenant, workers, webhook_receiver):
    name = endpoint("429")
    hook = await subscribe(client, tenant, webhook_receiver, name)
    webhook_receiver.answer(name, (429, {"Retry-After": "3"}))
    await ping(client, tenant, hook["id"])
    got = await webhook_receiver.wait_for(name, lambda m: len(m) >= 2, timeout=20)
    assert [m.answered for m in got] == [429, 200]
    assert got[1].at - got[0].at >= 3.0   # the answer's 3 s, longer than the schedule's 1 s


async def test_410_disables_the_endpoint(client, tenant, workers, fresh_provider, webhook_receiver):
    name = endpoint("gone")
    hook = await subscribe(client, tenant, webhook_receiver, name)
    webhook_receiver.answer(name, 410)
    await ping(client, tenant, hook["id"])
    await webhook_receiver.wait_for(name, lambda m: len(m) >= 1)
    deadline = time.monotonic() + 10
    while True:
        shown = (await (await client.get(f"/api/v1/webhooks/{hook['id']}", headers=tenant.headers)).json())["data"]
        if shown["disabled"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert shown["disabled"] is True
    [logged] = await deliveries(client, tenant, hook["id"])
    assert logged["status"] == "failed" and logged["last_status_code"] == 410
    # Nothing more is sent: not a job's events, not a ping.
    answer = await client.post("/api/v1/oauth/authorise", json=basic_body(fresh_provider),
                               headers={**tenant.headers, **WAIT})
    await poll_job(client, tenant, (await answer.json())["data"]["id"])
    assert (await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=tenant.headers)).status == 409
    await asyncio.sleep(1.5)
    assert len(webhook_receiver.of(name)) == 1
    assert len(await deliveries(client, tenant, hook["id"])) == 1


async def test_a_refused_connection_is_retried_then_failed_after_the_last_attempt(client, tenant, workers,
                                                                                 webhook_receiver):
    hook = await subscribe(client, tenant, webhook_receiver, endpoint("refused"), url=refusing_url())
    await ping(client, tenant, hook["id"])
    deadline = time.monotonic() + 20
    while True:
        [logged] = await deliveries(client, tenant, hook["id"])
        if logged["status"] == "failed" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert logged["status"] == "failed", logged
    assert logged["attempts"] == 4 and logged["last_status_code"] is None   # the first, then 1 s, 2 s, 3 s
    assert "connect" in (logged["last_error"] or "").lower()


async def test_a_hanging_endpoint_does_not_delay_another_endpoints_deliveries(
        client, tenant, workers, fresh_provider, webhook_receiver):
    slow, quick = endpoint("hangs"), endpoint("quick")
    await subscribe(client, tenant, webhook_receiver, slow, events=["job.succeeded"])
    await subscribe(client, tenant, webhook_receiver, quick, events=["job.succeeded"])
    webhook_receiver.hang_seconds = 6.0   # past the workers' 4 s deadline, and over soon after the test
    webhook_receiver.answer(slow, *(["hang"] * 40))
    jobs = []
    for _ in range(12):
        answer = await client.post("/api/v1/oauth/authorise", json=basic_body(fresh_provider), headers=tenant.headers)
        jobs.append((await answer.json())["data"]["id"])
    ended = {}
    for job_id in jobs:
        ended[job_id] = (await poll_job(client, tenant, job_id))["finished_at"]
    got = await webhook_receiver.wait_for(quick, lambda m: len(m) >= len(jobs), timeout=20)
    assert len(webhook_receiver.of(slow)) >= 1   # the slow one is being tried, and hangs
    for message in got:
        finished = datetime.fromisoformat(ended[message.body["data"]["job"]["id"]].replace("Z", "+00:00"))
        assert message.at - finished.timestamp() <= 1.0, (message.at - finished.timestamp())


async def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[no-untyped-def]
    from prometheus_client.parser import text_string_to_metric_families

    text = await (await client.get("/metrics")).text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_count_attempts_by_outcome_time_them_and_gauge_connectors_by_status(
        client, tenant, workers, fresh_provider, webhook_receiver):
    before = await scrape(client)
    name = endpoint("metrics")
    hook = await subscribe(client, tenant, webhook_receiver, name, events=["connector.authorised"])
    webhook_receiver.answer(name, 500)
    answer = await client.post("/api/v1/oauth/authorise", json=basic_body(fresh_provider),
                               headers={**tenant.headers, **WAIT})
    await poll_job(client, tenant, (await answer.json())["data"]["id"])
    await webhook_receiver.wait_for(name, lambda m: len(m) >= 2, timeout=20)
    await asyncio.sleep(0.3)
    after = await scrape(client)

    def grew(sample: str, **labels: str) -> float:
        key = (sample, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("authq_webhook_deliveries_total", outcome="retried") >= 1
    assert grew("authq_webhook_deliveries_total", outcome="delivered") >= 1
    assert grew("authq_webhook_delivery_seconds_count") >= 2
    assert after[("authq_connectors", (("status", "authorised"),))] >= 1
    assert ("authq_connectors", (("status", "expired"),)) in after
    assert [d["attempts"] for d in await deliveries(client, tenant, hook["id"])] == [2]
