"""Idempotency-Key (contract §3), the per-key API rate limit and the per-tenant cap on
queued jobs (§2 settings), through the real app factory on the session's real Redis."""

from __future__ import annotations

import asyncio

import pytest

from tasks.settings import DEFAULT_API_RATE_LIMIT, Settings
from tasks.storage import schema
from tests.support.helpers import authorise_body, job_keys

AUTHORISE = "/api/v1/oauth/authorise"


def jobs_of(redis_client, tenant) -> list[bytes]:  # type: ignore[no-untyped-def]
    return job_keys(redis_client, tenant.name)


async def test_same_key_and_body_answers_the_same_job(client, tenant, redis_client):
    headers = {**tenant.headers, "Idempotency-Key": "order-42"}
    first = await client.post(AUTHORISE, json=authorise_body(), headers=headers)
    again = await client.post(AUTHORISE, json=authorise_body(), headers=headers)
    assert first.status == again.status == 202
    one, two = (await first.json())["data"], (await again.json())["data"]
    assert one["id"] == two["id"] and one["connector_id"] == two["connector_id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert len(jobs_of(redis_client, tenant)) == 1


async def test_same_key_with_another_body_is_422(client, tenant, redis_client):
    headers = {**tenant.headers, "Idempotency-Key": "order-43"}
    assert (await client.post(AUTHORISE, json=authorise_body(), headers=headers)).status == 202
    other = await client.post(AUTHORISE, json=authorise_body(name="Another shop"), headers=headers)
    assert other.status == 422
    body = await other.json()
    assert "Idempotency-Key" in body["errors"] and body["message"]
    assert len(jobs_of(redis_client, tenant)) == 1


async def test_keys_are_per_tenant(client, tenants):
    a, b = tenants
    first = await client.post(AUTHORISE, json=authorise_body(), headers={**a.headers, "Idempotency-Key": "k"})
    second = await client.post(AUTHORISE, json=authorise_body(), headers={**b.headers, "Idempotency-Key": "k"})
    assert first.status == second.status == 202
    assert (await first.json())["data"]["id"] != (await second.json())["data"]["id"]


async def test_a_retry_while_the_first_is_being_accepted_is_409(client, tenant, redis_client):
    """The first request holds the key while it is accepted; we hold it as it would."""
    from api import idempotency

    body = authorise_body()
    key = schema.idempotency(tenant.name, "in-flight")
    from aiohttp.test_utils import make_mocked_request

    printed = idempotency.fingerprint(make_mocked_request("POST", AUTHORISE), body)
    redis_client.set(key, f'{{"fingerprint": "{printed}"}}', ex=60)
    answer = await client.post(AUTHORISE, json=body, headers={**tenant.headers, "Idempotency-Key": "in-flight"})
    assert answer.status == 409 and (await answer.json())["message"]
    assert jobs_of(redis_client, tenant) == []


async def test_a_rejected_request_leaves_the_key_free(client, tenant):
    headers = {**tenant.headers, "Idempotency-Key": "fix-and-retry"}
    bad = await client.post(AUTHORISE, json=authorise_body(rate_limit_unit="week"), headers=headers)
    assert bad.status == 422
    good = await client.post(AUTHORISE, json=authorise_body(), headers=headers)
    assert good.status == 202


async def test_an_overlong_key_is_422(client, tenant):
    answer = await client.post(AUTHORISE, json=authorise_body(),
                               headers={**tenant.headers, "Idempotency-Key": "x" * 256})
    assert answer.status == 422


@pytest.fixture
async def limited_client(aiohttp_client, settings):  # type: ignore[no-untyped-def]
    from api.app import create_app
    from worker.queues import make_job_queue

    limited = settings.model_copy(update={"api_rate_limit": 3.0, "max_queued_per_tenant": 2})
    return await aiohttp_client(create_app(limited, make_job_queue(limited)))


async def test_api_rate_limit_per_key(limited_client, tenants):
    a, b = tenants
    answers = [await limited_client.get("/api/v1/connectors", headers=a.headers) for _ in range(5)]
    statuses = [r.status for r in answers]
    assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:], statuses
    refused = next(r for r in answers if r.status == 429)
    assert int(refused.headers["Retry-After"]) >= 1 and (await refused.json())["message"]
    assert (await limited_client.get("/api/v1/connectors", headers=b.headers)).status == 200  # another key
    await asyncio.sleep(1.1)
    assert (await limited_client.get("/api/v1/connectors", headers=a.headers)).status == 200


async def test_queued_jobs_per_tenant_are_capped(limited_client, tenants, redis_client):
    a, b = tenants
    statuses = []
    for _ in range(3):
        statuses.append((await limited_client.post(AUTHORISE, json=authorise_body(), headers=a.headers)).status)
        await asyncio.sleep(0.4)  # stay under the 3/s key rate limit
    assert statuses == [202, 202, 429], statuses
    assert len(jobs_of(redis_client, a)) == 2
    assert (await limited_client.post(AUTHORISE, json=authorise_body(), headers=b.headers)).status == 202


def test_the_api_rate_limit_is_on_by_default_and_can_be_turned_off():
    default = Settings(_env_file=None).api_rate_limit  # type: ignore[call-arg]
    assert default == DEFAULT_API_RATE_LIMIT
    assert Settings(api_rate_limit="off", _env_file=None).api_rate_limit is None  # type: ignore[call-arg]


async def test_a_key_flooding_the_api_with_the_default_settings_gets_429(client, tenants):
    """The session's ``settings`` leave ``AUTHQ_API_RATE_LIMIT`` at its default: one key sending far
    more than it allows in a burst is refused with 429 and ``Retry-After``; another key is not."""
    a, b = tenants
    burst = [client.get("/api/v1/connectors", headers=a.headers) for _ in range(3 * int(DEFAULT_API_RATE_LIMIT))]
    answers = await asyncio.gather(*burst)
    refused = [r for r in answers if r.status == 429]
    assert refused and all(r.status in (200, 429) for r in answers)
    assert int(refused[0].headers["Retry-After"]) >= 1
    assert (await client.get("/api/v1/connectors", headers=b.headers)).status == 200
