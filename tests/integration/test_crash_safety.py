"""Crash safety with real processes killed for real: nothing lost, nothing run twice at once.

Each test has its own ``redis-server`` (append-only file on, as in production), its own
``celery -A worker worker --pool=threads`` processes (8 jobs at once each, the default
``AUTHQ_WORKER_CONCURRENCY``; ``tests/support/fleet.py``), the real app factory on that Redis
and its own loopback provider. Workers are killed with ``os.kill(pid, SIGKILL)`` — no warm
shutdown, nothing acked, no chance to clean up — and Redis is shut down and started again on
the same port and data directory.

What is proven (contract §6):

- a worker SIGKILLed in the middle of a job: the job is running again well within 2 minutes
  (the broker's sweep restores the dead worker's unacked message once its renewals stop) and
  ends ``succeeded`` exactly once: ``attempts == 2``, one connector, at most two credential
  checks at the provider, one terminal status ever published, nothing left in the broker;
- a worker SIGKILLed while it runs several jobs at once (its threads pool): every one of them
  is delivered again and ends ``succeeded`` exactly once (``attempts == 2``, one connector,
  two checks, one terminal status each);
- a poison job that kills every worker that starts it ends ``failed`` with
  ``attempts_exhausted`` after ``AUTHQ_MAX_ATTEMPTS`` starts, instead of looping;
- Redis restarted in the middle of a load: every submission answered 202 ends, succeeded or
  failed (none lost, none stuck), the workers reconnect by themselves, and submissions during
  the outage are refused with 503 rather than half accepted;
- a job that runs longer than the (short) visibility timeout is delivered once and runs once:
  its live worker renews it, so an idle worker's sweep never takes it back.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from aiohttp.test_utils import TestClient

from tasks.settings import Settings
from tasks.storage import schema
from tests.support.fleet import Ends, Fleet
from tests.support.helpers import PUBLIC_URL, TEST_CATALOG, Tenant, authorise_body
from tests.support.provider import Provider, start_provider

pytestmark = pytest.mark.integration

CHECK_PATH = "/wp-json/wc/v3/system_status"
RUNNING_AGAIN_WITHIN = 120.0  # contract §6


# --- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def own_provider() -> Iterator[Provider]:
    server, stop = start_provider()
    yield server
    stop()


@pytest.fixture
def slow_provider(own_provider: Provider) -> Iterator[Provider]:
    own_provider.reset()
    yield own_provider
    own_provider.reset()


@pytest.fixture
def fleet(tmp_path: Path, secret_key: str, ca_bundle: Path) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path, secret_key, ca_bundle)
    yield fleet
    fleet.stop()


@pytest.fixture
def api_settings(fleet: Fleet, secret_key: str, tenant: Tenant, ca_bundle: Path) -> Settings:
    return Settings(redis_url=fleet.url, secret_key=secret_key, api_keys=f"{tenant.name}:{tenant.key}",
                    catalog=TEST_CATALOG, allow_private_networks=True, ca_bundle=ca_bundle, public_url=PUBLIC_URL,
                    # One key polls every job of the load at once: its rate limit is raised, not off.
                    api_rate_limit=1_000_000.0, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
async def api(aiohttp_client, api_settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    """The real app factory, on this test's Redis."""
    from api.app import create_app
    from worker.queues import make_job_queue

    yield await aiohttp_client(create_app(api_settings, make_job_queue(api_settings)))


# --- helpers -------------------------------------------------------------------------------

def shop_body(provider: Provider, shop: str) -> dict[str, object]:
    """An authorise body whose credential check goes to ``/shops/<shop>`` (counted apart)."""
    body = authorise_body()
    body["variables"][0]["value"] = f"{provider.base_url}/shops/{shop}"  # type: ignore[index]
    return body


def shop_checks(provider: Provider, shop: str) -> int:
    return sum(1 for s in list(provider.seen) if s.path == f"/shops/{shop}{CHECK_PATH}")


async def get_job(api: TestClient, tenant: Tenant, job_id: str) -> dict:  # type: ignore[type-arg]
    answer = await api.get(f"/api/v1/jobs/{job_id}", headers=tenant.headers)
    assert answer.status == 200, await answer.text()
    return (await answer.json())["data"]


async def wait_job(api: TestClient, tenant: Tenant, job_id: str, until, timeout: float) -> dict:  # type: ignore[no-untyped-def,type-arg]
    deadline = time.monotonic() + timeout
    while True:
        job = await get_job(api, tenant, job_id)
        if until(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not as expected within {timeout}s: {job}")
        await asyncio.sleep(0.1)


def broker_is_empty(client: redis.Redis) -> bool:
    """No message left anywhere: queued, unacked (delivered) or waiting for a countdown."""
    return (client.hlen("unacked") == 0 and client.llen("authq.interactive") == 0
            and client.llen("authq.background") == 0)


def tenant_connectors(client: redis.Redis, tenant: Tenant) -> list[str]:
    return [c.decode() for c in client.zrange(schema.connectors(tenant.name), 0, -1)]


# --- a. SIGKILL in the middle of a job ---------------------------------------------------------

async def test_sigkilled_worker_job_runs_again_and_ends_exactly_once(
        fleet: Fleet, api: TestClient, tenant: Tenant, slow_provider: Provider) -> None:
    slow_provider.delay = 3.0  # the credential check takes 3 s: time to kill the worker mid-job
    fleet.start_worker("a1")
    ends = Ends(fleet, tenant.name)
    try:
        answer = await api.post("/api/v1/oauth/authorise", json=shop_body(slow_provider, "a"), headers=tenant.headers)
        assert answer.status == 202, await answer.text()
        job_id, connector_id = (await answer.json())["data"]["id"], (await answer.json())["data"]["connector_id"]

        # Running, and its check is at the provider: the worker is in the middle of the job.
        job = await wait_job(api, tenant, job_id,
                             lambda j: j["status"] == "running" and shop_checks(slow_provider, "a"), 30)
        assert job["attempts"] == 1
        fleet.kill("a1")
        killed_at = time.monotonic()
        fleet.start_worker("a2")  # a fresh worker (as `authq up` would start)

        again = await wait_job(api, tenant, job_id,
                               lambda j: j["attempts"] >= 2 or j["status"] in ("succeeded", "failed"),
                               RUNNING_AGAIN_WITHIN)
        running_again_after = time.monotonic() - killed_at
        assert again["attempts"] == 2, again
        assert running_again_after < RUNNING_AGAIN_WITHIN
        done = await wait_job(api, tenant, job_id, lambda j: j["status"] in ("succeeded", "failed"),
                              RUNNING_AGAIN_WITHIN - running_again_after)
        ended_after = time.monotonic() - killed_at
        print(f"\nkilled mid-job; running again after {running_again_after:.1f}s, succeeded after {ended_after:.1f}s")

        assert done["status"] == "succeeded", done
        assert done["attempts"] == 2
        assert done["result"]["connector"]["status"] == "authorised"
        assert ended_after < RUNNING_AGAIN_WITHIN
        # Once: the provider saw the killed attempt's check and the second one, nothing more.
        assert shop_checks(slow_provider, "a") == 2
        with fleet.client() as client:
            assert tenant_connectors(client, tenant) == [connector_id]
            await asyncio.sleep(2)  # any second end would be published by now
            assert ends.ends[job_id] == 1, ends.ends
            assert broker_is_empty(client), "a message of the finished job is still in the broker"
        assert shop_checks(slow_provider, "a") == 2
        assert (await get_job(api, tenant, job_id))["finished_at"] == done["finished_at"]
    finally:
        ends.stop()


# --- a2. SIGKILL while several jobs run at once in one process ----------------------------------

IN_FLIGHT = 5  # jobs the killed worker runs at once (of its 8 threads)


async def test_sigkilled_worker_with_several_jobs_in_flight_each_runs_again_and_ends_exactly_once(
        fleet: Fleet, api: TestClient, tenant: Tenant, slow_provider: Provider) -> None:
    """A threads-pool worker holds several deliveries at once: all of them unacked, all renewed
    by its one heartbeat. Killed, it renews none: every one is restored and run again, once."""
    slow_provider.delay = 4.0  # every check held 4 s: time to see all of them in flight, then kill
    fleet.start_worker("m1")
    ends = Ends(fleet, tenant.name)
    try:
        jobs: dict[str, str] = {}  # job id -> connector id
        shops: dict[str, str] = {}  # job id -> shop
        for i in range(IN_FLIGHT):
            answer = await api.post("/api/v1/oauth/authorise", json=shop_body(slow_provider, f"m{i}"),
                                    headers=tenant.headers)
            assert answer.status == 202, await answer.text()
            data = (await answer.json())["data"]
            jobs[data["id"]], shops[data["id"]] = data["connector_id"], f"m{i}"

        # Every job is at the provider at once, in the one worker: it is in the middle of all of them.
        deadline = time.monotonic() + 30
        while not all(shop_checks(slow_provider, shop) == 1 for shop in shops.values()):
            assert time.monotonic() < deadline, [shop_checks(slow_provider, shop) for shop in shops.values()]
            await asyncio.sleep(0.05)
        assert slow_provider.max_in_flight == IN_FLIGHT
        with fleet.client() as client:
            assert client.hlen("unacked") == IN_FLIGHT  # all delivered to m1, none acked
        for job_id in jobs:
            job = await get_job(api, tenant, job_id)
            assert (job["status"], job["attempts"]) == ("running", 1), job
        fleet.kill("m1")
        killed_at = time.monotonic()
        fleet.start_worker("m2")

        done = {job_id: await wait_job(api, tenant, job_id, lambda j: j["status"] in ("succeeded", "failed"),
                                       RUNNING_AGAIN_WITHIN - (time.monotonic() - killed_at))
                for job_id in jobs}
        print(f"\nkilled with {IN_FLIGHT} jobs in flight; all ended after {time.monotonic() - killed_at:.1f}s")
        for job in done.values():
            assert job["status"] == "succeeded", job
            assert job["attempts"] == 2, job
            assert job["result"]["connector"]["status"] == "authorised"
        with fleet.client() as client:
            assert sorted(tenant_connectors(client, tenant)) == sorted(jobs.values())
            await asyncio.sleep(2)  # any second end would be published by now
            assert {job_id: ends.ends[job_id] for job_id in jobs} == dict.fromkeys(jobs, 1), ends.ends
            assert broker_is_empty(client), "a message of a finished job is still in the broker"
        # The killed run's check and the second run's, nothing more, for every job.
        assert {shop: shop_checks(slow_provider, shop) for shop in shops.values()} == dict.fromkeys(shops.values(), 2)
    finally:
        ends.stop()


# --- b. a poison job ---------------------------------------------------------------------------

async def test_job_that_kills_every_worker_ends_attempts_exhausted(
        fleet: Fleet, api: TestClient, tenant: Tenant, slow_provider: Provider) -> None:
    """The provider never answers, and the test SIGKILLs whichever worker starts the job, as
    a job that crashes its worker would: after AUTHQ_MAX_ATTEMPTS starts it fails instead of
    looping for ever."""
    max_attempts = 2
    fleet.extra_env["AUTHQ_MAX_ATTEMPTS"] = str(max_attempts)
    slow_provider.delay = 8.0  # longer than the workers' outbound timeout (5 s): no answer ever arrives
    fleet.start_worker("b0")
    ends = Ends(fleet, tenant.name)
    try:
        answer = await api.post("/api/v1/oauth/authorise", json=shop_body(slow_provider, "b"), headers=tenant.headers)
        assert answer.status == 202, await answer.text()
        job_id, connector_id = (await answer.json())["data"]["id"], (await answer.json())["data"]["connector_id"]

        kills = 0
        deadline = time.monotonic() + (max_attempts + 1) * RUNNING_AGAIN_WITHIN
        while True:
            job = await get_job(api, tenant, job_id)
            if job["status"] in ("succeeded", "failed"):
                break
            if job["status"] == "running" and job["attempts"] > kills and shop_checks(slow_provider, "b") > kills:
                # Started again, and blocked at the provider: kill whichever worker runs it
                # (there is only ever one).
                fleet.kill(f"b{kills}")
                kills += 1
                fleet.start_worker(f"b{kills}")
            assert time.monotonic() < deadline, job
            await asyncio.sleep(0.05)

        assert kills == max_attempts
        assert job["status"] == "failed", job
        assert job["error"]["code"] == "attempts_exhausted"
        assert job["attempts"] == max_attempts
        # Each start reached the provider once; the last delivery did not call it at all.
        assert shop_checks(slow_provider, "b") == max_attempts
        answer = await api.get(f"/api/v1/connectors/{connector_id}", headers=tenant.headers)
        assert (await answer.json())["data"]["status"] == "failed"
        await asyncio.sleep(2)
        assert ends.ends[job_id] == 1
        with fleet.client() as client:
            assert broker_is_empty(client)
    finally:
        ends.stop()


# --- c. Redis restarted under load ---------------------------------------------------------------

async def test_redis_restart_mid_load_loses_no_accepted_job(
        fleet: Fleet, api: TestClient, tenant: Tenant, slow_provider: Provider) -> None:
    slow_provider.delay = 0.3  # 100 jobs keep 2 workers x 8 threads busy for about 2 s: the restart meets a load
    fleet.start_worker("c1")
    fleet.start_worker("c2")
    accepted: dict[str, str] = {}   # job id -> connector id
    refused: Counter[int] = Counter()
    sem = asyncio.Semaphore(16)

    async def submit(i: int) -> None:
        async with sem:
            try:
                answer = await api.post("/api/v1/oauth/authorise", json=shop_body(slow_provider, f"c{i}"),
                                        headers=tenant.headers)
            except Exception:  # noqa: BLE001 - the test client itself failing counts as refused
                refused[0] += 1
                return
            if answer.status == 202:
                data = (await answer.json())["data"]
                accepted[data["id"]] = data["connector_id"]
            else:
                refused[answer.status] += 1

    await asyncio.gather(*(submit(i) for i in range(100)))
    assert len(accepted) == 100, refused

    async def keep_submitting() -> None:
        for i in range(100, 160):
            await submit(i)
            await asyncio.sleep(0.05)

    more = asyncio.create_task(keep_submitting())
    await asyncio.sleep(0.5)
    with fleet.client() as client:
        assert client.llen("authq.interactive") > 0, "the load was already done: nothing to prove"
    await asyncio.to_thread(fleet.restart_redis, 1.0)
    restarted_at = time.time()
    await more

    deadline = time.monotonic() + 150
    while True:
        with fleet.client() as client:
            raw = client.mget([schema.job(tenant.name, j) for j in accepted])
        missing = [j for j, r in zip(accepted, raw, strict=True) if r is None]
        assert not missing, f"accepted jobs whose record is gone: {missing[:5]}"
        statuses = {j: (await get_job(api, tenant, j))["status"] for j in accepted}
        open_jobs = [j for j, s in statuses.items() if s not in ("succeeded", "failed")]
        if not open_jobs:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(open_jobs)} accepted jobs never ended, e.g. "
                                 f"{[await get_job(api, tenant, j) for j in open_jobs[:3]]}")
        await asyncio.sleep(1)

    outcome = Counter(statuses.values())
    print(f"\naccepted {len(accepted)}, refused {dict(refused)}, outcome {dict(outcome)}")
    assert set(refused) <= {503}, refused          # refused = never accepted, and said so
    assert outcome["succeeded"] == len(accepted), outcome  # a restart is no reason to fail a job
    with fleet.client() as client:
        connectors = set(tenant_connectors(client, tenant))
        assert set(accepted.values()) <= connectors
        assert all(fleet.workers[name].poll() is None for name in ("c1", "c2")), "a worker did not survive"
        # Both reconnected by themselves: their heartbeats reach the new Redis.
        beats = [score for _, score in client.zrange(schema.WORKERS, 0, -1, withscores=True)]
        assert sum(score > restarted_at for score in beats) == 2, beats


# --- d. a live worker keeps its job, however long it takes -----------------------------------

async def test_job_longer_than_the_visibility_timeout_runs_once(
        fleet: Fleet, api: TestClient, tenant: Tenant, slow_provider: Provider) -> None:
    """The visibility timeout is short (30 s) because live workers renew what they hold: a job
    that runs longer is not handed to an idle worker meanwhile, and runs once."""
    from worker.timings import VISIBILITY_TIMEOUT

    slow_provider.delay = VISIBILITY_TIMEOUT + 10.0
    fleet.extra_env["AUTHQ_OUTBOUND_TIMEOUT_SECONDS"] = str(VISIBILITY_TIMEOUT + 30)
    fleet.loglevel = "DEBUG"  # Celery's own "Task … received" lines (one per delivery) show at DEBUG
    fleet.start_worker("d1")
    fleet.start_worker("d2")  # idle all along, sweeping every few seconds
    answer = await api.post("/api/v1/oauth/authorise", json=shop_body(slow_provider, "d"), headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    job_id = (await answer.json())["data"]["id"]
    done = await wait_job(api, tenant, job_id, lambda j: j["status"] in ("succeeded", "failed"),
                          VISIBILITY_TIMEOUT + 40)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 1
    assert shop_checks(slow_provider, "d") == 1
    logs = fleet.log("d1") + fleet.log("d2")
    assert sum(1 for line in logs.splitlines() if job_id in line and "received" in line) == 1, "delivered twice"
    assert "already running elsewhere" not in logs
