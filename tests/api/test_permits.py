"""Permits (contract §9) through the real app on the session's Redis: granted and refused with their
``code`` and ``Retry-After``, the 409, 404 and 422 answers, and waiting: a slot freed (by
``DELETE /permits/{id}`` or by a worker's request ending) is handed to the waiter at once because
the release is published and the governor's pump hears it (the number of permit scripts sent
shows it did not poll); a slot nobody frees lapses at ``expires_at`` and the waiter gets it then.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timedelta

from api.event_hub import EventHub
from api.governor import Governor
from api.typedefs import GOVERNOR, STORE
from tasks.model.records import RateLimit
from tasks.provider import permits
from tasks.provider.connector_limits import Limits
from tasks.storage import schema
from tasks.storage.store import run
from tests.support.helpers import save_connector

V1 = "/api/v1"
PERMIT_ID = re.compile(r"pmt_[0-9a-f]{32}")


async def make_pool(client, tenant, limit: int, timeout: int | None = None) -> int:  # type: ignore[no-untyped-def]
    body: dict[str, object] = {"name": "pool", "limit": limit, **({"timeout": timeout} if timeout else {})}
    answer = await client.post(f"{V1}/connection-pools", json=body, headers=tenant.headers)
    assert answer.status == 201, await answer.text()
    return int((await answer.json())["data"]["id"])


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def take(client, tenant, connector_id: str, wait: float | None = None):  # type: ignore[no-untyped-def]
    return await client.post(f"{V1}/connectors/{connector_id}/permits",
                             json=None if wait is None else {"wait_seconds": wait}, headers=tenant.headers)


async def test_a_permit_is_granted_with_its_pool_and_its_lease(client, tenant, redis_client, secret_key) -> None:
    pool_id = await make_pool(client, tenant, 2, timeout=12)
    connector = save_connector(redis_client, secret_key, tenant, connection_pool_id=pool_id)
    answer = await take(client, tenant, connector.id)
    assert answer.status == 201, await answer.text()
    assert "Location" not in answer.headers
    permit = (await answer.json())["data"]
    assert PERMIT_ID.fullmatch(permit["id"]) and permit["connector_id"] == connector.id
    assert permit["connection_pool_id"] == pool_id
    assert moment(permit["expires_at"]) - moment(permit["granted_at"]) == timedelta(seconds=12)
    slots = schema.pool_slots(tenant.name, pool_id)
    assert redis_client.zrange(slots, 0, -1) == [permit["id"].encode()]
    assert redis_client.zcard(schema.rate_log(tenant.name, connector.id)) == 1  # the workers' log, the same key
    assert 11_000 < redis_client.pttl(schema.permit(tenant.name, permit["id"])) <= 12_000

    plain = save_connector(redis_client, secret_key, tenant)
    answer = await take(client, tenant, plain.id, wait=0)
    permit = (await answer.json())["data"]
    assert answer.status == 201 and permit["connection_pool_id"] is None
    assert moment(permit["expires_at"]) - moment(permit["granted_at"]) == timedelta(seconds=30)  # the default


async def test_refusals_say_which_limit_and_when_to_retry(client, tenant, redis_client, secret_key) -> None:
    rated = save_connector(redis_client, secret_key, tenant, rate_limit=RateLimit(unit="minute", duration=1))
    assert (await take(client, tenant, rated.id)).status == 201
    refused = await take(client, tenant, rated.id)
    assert refused.status == 429
    body = await refused.json()
    assert body["code"] == "rate_limited" and body["message"]
    assert 60 <= int(refused.headers["Retry-After"]) <= 66  # the minute's window (with its headroom)

    pool_id = await make_pool(client, tenant, 1, timeout=20)
    pooled = save_connector(redis_client, secret_key, tenant, connection_pool_id=pool_id)
    assert (await take(client, tenant, pooled.id)).status == 201
    refused = await take(client, tenant, pooled.id, wait=0)
    body = await refused.json()
    assert refused.status == 429 and body["code"] == "pool_exhausted", body
    assert 19 <= int(refused.headers["Retry-After"]) <= 20
    # Another connector of the same pool shares its slots.
    neighbour = save_connector(redis_client, secret_key, tenant, connection_pool_id=pool_id)
    assert (await (await take(client, tenant, neighbour.id)).json())["code"] == "pool_exhausted"


async def test_a_providers_block_refuses_permits_for_everyone(client, tenant, redis_client, secret_key) -> None:
    connector = save_connector(redis_client, secret_key, tenant)
    await client.app[GOVERNOR].block(tenant.name, connector, 45)
    refused = await take(client, tenant, connector.id)
    assert refused.status == 429 and (await refused.json())["code"] == "rate_limited"
    assert 44 <= int(refused.headers["Retry-After"]) <= 45
    # The workers' gate reads the same block (a request to any host of the connector waits).
    decision = run(redis_client, permits.take(Limits.of(connector, None), "lease", 5.0, host="shop.example:443"))
    assert decision.status == permits.BLOCKED


async def test_what_is_not_a_permit_to_give(client, tenant, tenants, redis_client, secret_key) -> None:
    other = tenants[1]
    pending = save_connector(redis_client, secret_key, tenant, status="pending")
    answer = await take(client, tenant, pending.id)
    assert answer.status == 409
    body = await answer.json()
    assert body["status"] == "pending" and body["message"]
    assert redis_client.exists(schema.rate_log(tenant.name, pending.id)) == 0  # no permit spent on it
    theirs = save_connector(redis_client, secret_key, other)
    for connector_id in (theirs.id, "con_" + "0" * 32, "con_1", theirs.id + ":permits"):
        assert (await take(client, tenant, connector_id)).status == 404, connector_id
    mine = save_connector(redis_client, secret_key, tenant)
    for wait, path in ((31, "wait_seconds"), (-1, "wait_seconds"), ("5", "wait_seconds"), (True, "wait_seconds")):
        invalid = await take(client, tenant, mine.id, wait=wait)  # type: ignore[arg-type]
        assert invalid.status == 422, wait
        assert list((await invalid.json())["errors"]) == [path], wait
    assert (await take(client, tenant, mine.id, wait=0.5)).status == 201

    granted = (await (await take(client, tenant, mine.id)).json())["data"]["id"]
    assert (await client.delete(f"{V1}/permits/{granted}", headers=other.headers)).status == 404
    assert (await client.delete(f"{V1}/permits/pmt_{'0' * 32}", headers=tenant.headers)).status == 404
    assert (await client.delete(f"{V1}/permits/{granted}x", headers=tenant.headers)).status == 404
    assert (await client.delete(f"{V1}/permits/{granted}", headers=tenant.headers)).status == 204
    assert (await client.delete(f"{V1}/permits/{granted}", headers=tenant.headers)).status == 404


async def queued(client, connector_id: str, count: int = 1) -> None:  # type: ignore[no-untyped-def]
    """Until ``count`` requests wait in the governor's line for the connector."""
    lines = client.app[GOVERNOR]._lines
    deadline = time.monotonic() + 5
    while not any(key[1] == connector_id and len(line.waiters) >= count for key, line in lines.items()):
        assert time.monotonic() < deadline, "the request never queued"
        await asyncio.sleep(0.01)


async def test_a_freed_slot_goes_to_the_waiter_at_once_because_the_release_is_published(
        client, tenant, redis_client, secret_key) -> None:
    pool_id = await make_pool(client, tenant, 1)  # leases of 30 s: nothing lapses during the test
    connector = save_connector(redis_client, secret_key, tenant, connection_pool_id=pool_id)
    governor = client.app[GOVERNOR]
    first = (await (await take(client, tenant, connector.id)).json())["data"]["id"]

    before = governor.script_calls
    waiting = asyncio.ensure_future(take(client, tenant, connector.id, wait=20))
    await queued(client, connector.id)
    await asyncio.sleep(2.0)  # a poller would have asked Redis dozens of times by now
    assert not waiting.done()
    freed_at = time.monotonic()
    assert (await client.delete(f"{V1}/permits/{first}", headers=tenant.headers)).status == 204
    answer = await waiting
    waited = time.monotonic() - freed_at
    assert answer.status == 201, await answer.text()
    assert waited < 0.5, f"the waiter got the slot {waited:.2f}s after it was freed"
    # One refusal, one look after subscribing, one grant after the release was heard.
    assert governor.script_calls - before <= 3, governor.script_calls - before

    # A slot a worker's request held (the gate's lease, freed when the request ends) wakes it the same way.
    second = (await answer.json())["data"]["id"]
    assert (await client.delete(f"{V1}/permits/{second}", headers=tenant.headers)).status == 204
    limits = Limits.of(connector, await client.app[GOVERNOR]._store.pool(tenant.name, pool_id))
    assert run(redis_client, permits.take(limits, "worker-lease", 30.0)).granted
    before = governor.script_calls
    waiting = asyncio.ensure_future(take(client, tenant, connector.id, wait=20))
    await queued(client, connector.id)
    await asyncio.sleep(1.0)
    freed_at = time.monotonic()
    run(redis_client, permits.free_slot(tenant.name, pool_id, "worker-lease"))
    answer = await waiting
    assert answer.status == 201 and time.monotonic() - freed_at < 0.5
    assert governor.script_calls - before <= 3


async def test_a_slot_nobody_frees_lapses_at_expires_at_and_the_waiter_gets_it_then(
        client, tenant, redis_client, secret_key) -> None:
    pool_id = await make_pool(client, tenant, 1, timeout=2)
    connector = save_connector(redis_client, secret_key, tenant, connection_pool_id=pool_id)
    kept = (await (await take(client, tenant, connector.id)).json())["data"]
    answer = await take(client, tenant, connector.id, wait=10)
    assert answer.status == 201, await answer.text()
    granted = moment((await answer.json())["data"]["granted_at"])
    lapsed = moment(kept["expires_at"])
    assert lapsed <= granted < lapsed + timedelta(seconds=0.5), (lapsed, granted)
    assert (await client.delete(f"{V1}/permits/{kept['id']}", headers=tenant.headers)).status == 404


async def test_waiting_in_vain_answers_429_after_the_wait_and_leaves_the_line(
        client, tenant, redis_client, secret_key) -> None:
    pool_id = await make_pool(client, tenant, 1)
    connector = save_connector(redis_client, secret_key, tenant, connection_pool_id=pool_id)
    assert (await take(client, tenant, connector.id)).status == 201
    started = time.monotonic()
    answer = await take(client, tenant, connector.id, wait=1)
    assert answer.status == 429 and (await answer.json())["code"] == "pool_exhausted"
    assert 1.0 <= time.monotonic() - started < 2.0
    assert 28 <= int(answer.headers["Retry-After"]) <= 30
    deadline = time.monotonic() + 3
    while client.app[GOVERNOR]._lines:  # the pump sees nobody waits and ends (its subscription with it)
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert redis_client.zcard(schema.pool_slots(tenant.name, pool_id)) == 1  # the slot given up is not held


async def test_no_permit_jumps_the_line_and_waiters_gone_leave_it(
        client, tenant, redis_client, secret_key) -> None:
    pool_id = await make_pool(client, tenant, 1)
    connector = save_connector(redis_client, secret_key, tenant, connection_pool_id=pool_id)
    governor = client.app[GOVERNOR]
    first = (await (await take(client, tenant, connector.id)).json())["data"]["id"]
    waiting = asyncio.ensure_future(take(client, tenant, connector.id, wait=20))
    await queued(client, connector.id)
    # Asking not to wait while another waits first: refused here, without a permit script.
    before = governor.script_calls
    refused = await take(client, tenant, connector.id, wait=0)
    assert refused.status == 429 and (await refused.json())["code"] == "pool_exhausted"
    assert governor.script_calls == before

    # Waiters whose clients are gone leave the line (the pump ends with it); a slot freed next is
    # nobody's.
    gone = asyncio.ensure_future(governor.acquire(tenant.name, connector, max_wait=20))
    await queued(client, connector.id, count=2)
    waiting.cancel()  # the HTTP request's client went away: its handler is cancelled
    gone.cancel()
    deadline = time.monotonic() + 3
    while governor._lines:
        assert time.monotonic() < deadline, "the line outlived its waiters"
        await asyncio.sleep(0.02)
    assert (await client.delete(f"{V1}/permits/{first}", headers=tenant.headers)).status == 204
    assert redis_client.zcard(schema.pool_slots(tenant.name, pool_id)) == 0
    assert (await take(client, tenant, connector.id)).status == 201


async def test_without_the_event_hub_a_waiter_looks_again_every_second(client, tenant, redis_client,
                                                                       secret_key) -> None:
    """A hub that cannot subscribe (its Redis unreachable): the pump polls for the slot instead."""
    pool_id = await make_pool(client, tenant, 1)
    connector = save_connector(redis_client, secret_key, tenant, connection_pool_id=pool_id)
    hub = EventHub("redis://127.0.0.1:1", subscribe_timeout=0.2, reconnect_delays=(5.0,))
    governor = Governor(client.app[STORE], hub)
    try:
        held = await governor.acquire(tenant.name, connector, max_wait=0)
        waiting = asyncio.ensure_future(governor.acquire(tenant.name, connector, max_wait=10))
        await asyncio.sleep(1.5)
        assert not waiting.done()
        assert await governor.release(tenant.name, held.id)
        freed_at = time.monotonic()
        grant = await waiting
        assert grant.connection_pool_id == pool_id and time.monotonic() - freed_at < 1.5
    finally:
        await governor.close()
        await hub.close()
