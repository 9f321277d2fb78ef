"""The governor under load, with real workers (contract §8, §9): 300 waiters for one connector
limited to 5 requests a second all get their permits, in the order they asked, within the limit,
while a worker's reauthorise takes its own permit for its credential check from the same limit.

Every permit is timed by the Redis clock that granted it: the governor's from their grants, the
worker's from the rate-limit log itself (its members are named by their grant's time, and the
worker's are the ones no permit id names), read often enough that none ages out unseen. The
union never holds more than 5 grants in any window.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from api.typedefs import GOVERNOR, STORE
from tasks.provider.permits import Grant
from tasks.settings import Settings
from tasks.storage import schema
from tests.support.helpers import basic_body, poll_job
from tests.unit.provider.test_limits import assert_sliding

pytestmark = pytest.mark.integration

WAITERS = 300
RATE = 5
WINDOW = 1.1   # a second, with the headroom every connector's window has (connector_limits.WINDOW_HEADROOM)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The job is polled often with one key: its API rate limit is raised, not off."""
    return settings.model_copy(update={"api_rate_limit": 1_000_000.0})


async def test_300_waiters_at_5_a_second_get_their_permits_in_order_sharing_the_limit_with_a_worker(
        client, tenant, workers, fresh_provider, redis_client) -> None:
    body = basic_body(fresh_provider, rate_limit_unit="second", rate_limit_duration=RATE)
    answer = await client.post("/api/v1/oauth/authorise", json=body, headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    done = await poll_job(client, tenant, (await answer.json())["data"]["id"])
    assert done["status"] == "succeeded", done
    connector = await client.app[STORE].connector(tenant.name, str(done["connector_id"]))
    assert connector is not None and connector.status == "authorised"
    governor = client.app[GOVERNOR]
    log = schema.rate_log(tenant.name, connector.id)

    worker_permits: dict[bytes, float] = {}
    watching = True

    async def watch_the_log() -> None:
        while watching:
            for member, score in redis_client.zrange(log, 0, -1, withscores=True):
                if b"pmt_" not in member:
                    worker_permits[member] = score / 1_000_000
            await asyncio.sleep(0.2)  # a grant counts for 1.1 s: each is seen at least five times

    grants: list[tuple[int, Grant]] = []

    async def wait(index: int) -> None:
        grants.append((index, await governor.acquire(tenant.name, connector, max_wait=150)))

    watcher = asyncio.ensure_future(watch_the_log())
    before = governor.script_calls
    started = time.monotonic()
    waiting = [asyncio.ensure_future(wait(index)) for index in range(WAITERS)]
    await asyncio.sleep(3)
    answer = await client.patch(f"/api/v1/oauth/{connector.id}/reauthorise", json={"name": "Checked again"},
                                headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    job = await poll_job(client, tenant, (await answer.json())["data"]["id"], timeout=150)
    assert job["status"] == "succeeded", job
    await asyncio.wait_for(asyncio.gather(*waiting), timeout=150)
    took = time.monotonic() - started
    watching = False
    await watcher

    assert len(grants) == WAITERS
    assert [index for index, _ in grants] == list(range(WAITERS)), "the waiters were not served first come first"
    granted_at = [grant.granted_at.timestamp() for _, grant in grants]
    assert len(worker_permits) >= 2, worker_permits  # the authorise's check and the reauthorise's
    reauthorise_permit = max(worker_permits.values())
    assert granted_at[0] < reauthorise_permit < granted_at[-1], "the worker's permit was not taken among the waiters'"
    assert_sliding(granted_at + list(worker_permits.values()), RATE, WINDOW)
    # 300 permits at 5 per 1.1 s, one of them the worker's: about a minute, not less.
    assert (WAITERS + 1) / RATE * WINDOW - 2 * WINDOW < took < 120, took
    calls = governor.script_calls - before
    print(f"{WAITERS} waiters: {calls} permit scripts in {took:.1f}s")
    # Not a poll per waiter: one attempt as each arrives (an arrival that finds nobody in line asks
    # at once, so a burst asks once each), the grant, and about a look per window.
    assert calls <= 3 * WAITERS + took / WINDOW + 10, calls
