"""The proxy decides a request on the connector as its process last read it and has the permit
script check, in the same round trip, that the record is still the one stored
(``api/governor.py``, ``api/parsed_records.py``): a connector changed or deleted since, by
anyone (another API process, a worker), is answered as it is stored now, and a request that
did not go takes no permit."""

from __future__ import annotations

import json

import redis

from tasks.storage import schema
from tests.integration.test_proxy import basic_connector, proxied  # noqa: F401 (the fixture)


async def test_a_connector_expired_since_the_last_request_is_answered_as_stored_now(
        client, tenant, fresh_provider, basic_connector, redis_client: redis.Redis):  # noqa: F811
    assert (await client.get(proxied(basic_connector, "echo/1"), headers=tenant.headers)).status == 200
    record_key = schema.connector(tenant.name, basic_connector)
    rate_log = schema.rate_log(tenant.name, basic_connector)
    stored = json.loads(redis_client.get(record_key))
    stored["status"] = "expired"  # as a worker's refused refresh leaves it, behind this process's back
    redis_client.set(record_key, json.dumps(stored))
    fresh_provider.seen.clear()
    permits_before = redis_client.zcard(rate_log)
    answer = await client.get(proxied(basic_connector, "echo/2"), headers=tenant.headers)
    assert answer.status == 409
    assert (await answer.json()) | {"message": ""} == {"message": "", "code": "connector_not_authorised",
                                                       "status": "expired"}
    assert fresh_provider.seen == [] and redis_client.zcard(rate_log) == permits_before
    stored["status"] = "authorised"
    redis_client.set(record_key, json.dumps(stored))
    assert (await client.get(proxied(basic_connector, "echo/3"), headers=tenant.headers)).status == 200


async def test_a_connector_deleted_since_the_last_request_is_not_found(client, tenant, fresh_provider,
                                                                      basic_connector):  # noqa: F811
    assert (await client.get(proxied(basic_connector, "echo/1"), headers=tenant.headers)).status == 200
    assert (await client.delete(f"/api/v1/connectors/{basic_connector}", headers=tenant.headers)).status == 204
    fresh_provider.seen.clear()
    answer = await client.get(proxied(basic_connector, "echo/2"), headers=tenant.headers)
    assert answer.status == 404 and fresh_provider.seen == []


async def test_another_tenants_request_never_uses_the_kept_record(client, tenants, fresh_provider,
                                                                  basic_connector):  # noqa: F811
    mine, theirs = tenants
    assert (await client.get(proxied(basic_connector, "echo/1"), headers=mine.headers)).status == 200
    fresh_provider.seen.clear()
    answer = await client.get(proxied(basic_connector, "echo/2"), headers=theirs.headers)
    assert answer.status == 404 and fresh_provider.seen == []


async def test_a_request_that_would_wait_in_line_checks_the_kept_record_first(
        client, tenant, workers, fresh_provider, redis_client: redis.Redis):
    """With others already waiting, the request would join the line without a script call of its
    own: the kept record is checked by a read first, so a connector expired meanwhile is a 409 at
    once, not a wait for a permit it must not use."""
    import asyncio
    import time

    from tests.integration.test_credentials import authorised
    from tests.support.helpers import basic_body

    # one a minute: the credential check took it, so the first proxied request waits in line
    connector_id = await authorised(client, tenant, basic_body(fresh_provider, rate_limit_unit="minute",
                                                               rate_limit_duration=1))
    waiting = asyncio.create_task(client.get(proxied(connector_id, "echo/1"),
                                             headers={**tenant.headers, "X-Authq-Max-Wait": "4"}))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    record_key = schema.connector(tenant.name, connector_id)
    stored = json.loads(redis_client.get(record_key))
    stored["status"] = "expired"
    redis_client.set(record_key, json.dumps(stored))
    started = time.monotonic()
    answer = await client.get(proxied(connector_id, "echo/2"), headers={**tenant.headers, "X-Authq-Max-Wait": "4"})
    assert answer.status == 409 and (await answer.json())["status"] == "expired"
    assert time.monotonic() - started < 2
    assert (await waiting).status == 429  # (it was decided on the connector as it was when it asked)
