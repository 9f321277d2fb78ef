"""The platform's use of its connectors on ``/metrics`` (``api/usage_metrics.py``), driven through
the real app on the session's Redis against the loopback provider: proxied requests by system and
the status class the client got (authq's own failures by code), permits granted and refused by
code, the wait of granted permits, credential reads by outcome; the counts of two API processes
(two apps, each its own in-memory counts, one Redis) add up on either's page; and no label holds a
connector id, a tenant or a secret.

Counters are the session's, shared with earlier tests: every assertion is of a difference."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from yarl import URL

from api.app import create_app
from api.usage_metrics import FLUSH_SECONDS
from tasks.model.records import Connector, RateLimit
from tasks.security.sealing import SecretBox
from tasks.settings import Settings
from tests.support.helpers import save_connector
from tests.support.provider import GOOD_KEY, GOOD_SECRET
from worker.queues import make_job_queue

SYSTEM = "TestShop"  # test-basic's system in tests/support/catalog.yaml


@pytest.fixture
def settings(settings: Settings, tenants) -> Settings:  # type: ignore[no-untyped-def]
    """The tenants' keys may read credentials too."""
    keys = ",".join(f"{t.name}:{t.key}:manage+proxy+credentials" for t in tenants)
    return settings.model_copy(update={"api_keys": SecretStr(keys)})


@pytest.fixture
async def second_client(aiohttp_client, settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def,type-arg]
    """A second API process on the same Redis: its own app, its own counts."""
    yield await aiohttp_client(create_app(settings, make_job_queue(settings)))


async def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[no-untyped-def]
    answer = await client.get("/metrics")
    assert answer.status == 200
    text = await answer.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(page: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return page.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: dict, after: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return value(after, name, **labels) - value(before, name, **labels)


def usable(redis_client, secret_key: str, tenant, provider, **fields: object) -> Connector:  # type: ignore[no-untyped-def]
    """An authorised basic connector whose base URL is the loopback provider, its keys stored as a
    worker stores them."""
    sealed = SecretBox(secret_key).seal_json({"username": GOOD_KEY, "password": GOOD_SECRET})
    return save_connector(redis_client, secret_key, tenant, base_url=provider.base_url, credentials_sealed=sealed,
                          **fields)


def proxied(connector_id: str, path: str) -> URL:
    return URL(f"/api/v1/connectors/{connector_id}/proxy/{path}", encoded=True)


async def test_proxied_requests_are_counted_by_system_and_status_class(client, tenant, redis_client, secret_key,
                                                                       fresh_provider) -> None:
    connector = usable(redis_client, secret_key, tenant, fresh_provider)
    tight = usable(redis_client, secret_key, tenant, fresh_provider,
                           rate_limit=RateLimit(unit="minute", duration=1))
    pending = usable(redis_client, secret_key, tenant, fresh_provider, status="pending")
    before = await scrape(client)
    for path, expected in (("echo/a", 200), ("echo/b", 200), ("redirect/x", 302)):
        answer = await client.get(proxied(connector.id, path), headers=tenant.headers, allow_redirects=False)
        assert answer.status == expected, await answer.text()
    fresh_provider.script.extend([404, 503])
    for expected in (404, 503):
        answer = await client.get(proxied(connector.id, "wp-json/wc/v3/system_status"), headers=tenant.headers)
        assert answer.status == expected
    assert (await client.get(proxied(tight.id, "echo/1"), headers=tenant.headers)).status == 200
    refused = await client.get(proxied(tight.id, "echo/2"), headers={**tenant.headers, "X-Authq-Max-Wait": "0"})
    assert refused.status == 429 and (await refused.json())["code"] == "rate_limited"
    assert (await client.get(proxied(pending.id, "echo/3"), headers=tenant.headers)).status == 409
    after = await scrape(client)  # this process's own counts are flushed by its scrape: exact at once

    name = "authq_proxy_requests_total"
    assert moved(before, after, name, system=SYSTEM, **{"class": "2xx", "code": ""}) == 3
    assert moved(before, after, name, system=SYSTEM, **{"class": "3xx", "code": ""}) == 1
    assert moved(before, after, name, system=SYSTEM, **{"class": "4xx", "code": ""}) == 1
    assert moved(before, after, name, system=SYSTEM, **{"class": "5xx", "code": ""}) == 1
    assert moved(before, after, name, system=SYSTEM, **{"class": "4xx", "code": "rate_limited"}) == 1
    assert moved(before, after, name, system=SYSTEM, **{"class": "4xx", "code": "connector_not_authorised"}) == 1
    # the proxy's permits: one for each of the six provider answers; the tight connector's second refused
    assert moved(before, after, "authq_permits_total", via="proxy", outcome="granted") == 6
    assert moved(before, after, "authq_permits_total", via="proxy", outcome="rate_limited") == 1
    assert moved(before, after, "authq_permit_wait_seconds_count", via="proxy") == 6


async def test_permits_and_their_waits_are_counted(client, tenant, redis_client, secret_key) -> None:
    created = await client.post("/api/v1/connection-pools", json={"name": "one", "limit": 1}, headers=tenant.headers)
    pool_id = (await created.json())["data"]["id"]
    pooled = save_connector(redis_client, secret_key, tenant, connection_pool_id=pool_id)
    url = f"/api/v1/connectors/{pooled.id}/permits"
    before = await scrape(client)
    first = await client.post(url, headers=tenant.headers)
    assert first.status == 201
    assert (await client.post(url, json={"wait_seconds": 0}, headers=tenant.headers)).status == 429

    async def free_soon() -> None:
        await asyncio.sleep(0.3)
        permit_id = (await first.json())["data"]["id"]
        assert (await client.delete(f"/api/v1/permits/{permit_id}", headers=tenant.headers)).status == 204

    started = time.monotonic()
    waited, _ = await asyncio.gather(client.post(url, json={"wait_seconds": 5}, headers=tenant.headers), free_soon())
    assert waited.status == 201 and time.monotonic() - started >= 0.3
    after = await scrape(client)
    assert moved(before, after, "authq_permits_total", via="permits", outcome="granted") == 2
    assert moved(before, after, "authq_permits_total", via="permits", outcome="pool_exhausted") == 1
    assert moved(before, after, "authq_permit_wait_seconds_count", via="permits") == 2
    assert moved(before, after, "authq_permit_wait_seconds_bucket", via="permits", le="0.1") == 1  # the one at once
    assert moved(before, after, "authq_permit_wait_seconds_bucket", via="permits", le="5.0") == 2
    assert 0.3 <= moved(before, after, "authq_permit_wait_seconds_sum", via="permits") < 5


async def test_credential_reads_are_counted_by_outcome(client, tenant, redis_client, secret_key,
                                                       fresh_provider) -> None:
    connector = usable(redis_client, secret_key, tenant, fresh_provider)
    failed = save_connector(redis_client, secret_key, tenant, status="failed")
    before = await scrape(client)
    read = f"/api/v1/connectors/{connector.id}/credentials"
    for _ in range(2):
        assert (await client.get(read, headers=tenant.headers)).status == 200
    assert (await client.get(f"/api/v1/connectors/{failed.id}/credentials", headers=tenant.headers)).status == 409
    after = await scrape(client)
    assert moved(before, after, "authq_credential_reads_total", system=SYSTEM, outcome="served") == 2
    assert moved(before, after, "authq_credential_reads_total", system=SYSTEM, outcome="not_authorised") == 1


async def test_two_api_processes_add_up_on_either_page(client, second_client, tenant, redis_client, secret_key,
                                                       fresh_provider) -> None:
    connector = usable(redis_client, secret_key, tenant, fresh_provider)
    labels = {"system": SYSTEM, "class": "2xx", "code": ""}
    before = await scrape(client)
    for app_client, n in ((client, 3), (second_client, 5)):
        for i in range(n):
            assert (await app_client.get(proxied(connector.id, f"echo/{i}"), headers=tenant.headers)).status == 200
    # The first process's page has its own 3 at once; the second's 5 once its loop has flushed them.
    first_page = await scrape(client)
    assert moved(before, first_page, "authq_proxy_requests_total", **labels) in (3, 8)
    deadline = time.monotonic() + 5 * FLUSH_SECONDS
    while moved(before, first_page, "authq_proxy_requests_total", **labels) < 8 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        first_page = await scrape(client)
    assert moved(before, first_page, "authq_proxy_requests_total", **labels) == 8
    second_page = await scrape(second_client)
    assert moved(before, second_page, "authq_proxy_requests_total", **labels) == 8
    assert moved(before, second_page, "authq_permits_total", via="proxy", outcome="granted") == 8


async def test_no_label_names_a_connector_a_tenant_or_a_secret(client, tenant, redis_client, secret_key,
                                                               fresh_provider) -> None:
    connector = usable(redis_client, secret_key, tenant, fresh_provider)
    assert (await client.get(proxied(connector.id, "echo/x"), headers=tenant.headers)).status == 200
    assert (await client.get(f"/api/v1/connectors/{connector.id}/credentials", headers=tenant.headers)).status == 200
    text = await (await client.get("/metrics")).text()
    assert "authq_proxy_requests_total" in text and "authq_credential_reads_total" in text
    for hidden in (connector.id, tenant.name, tenant.key, GOOD_SECRET, fresh_provider.base_url):
        assert hidden not in text
