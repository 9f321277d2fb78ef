"""No number of event streams starves other requests (contract §5 jobs).

Each stream once held a pub/sub connection of its own from the pool every request's commands
come from (redis-py's default: 100): a tenant that opened ~99 streams on its own slow job left
the others 503s (``MaxConnectionsError``), ``/readyz`` included. Here the real app listens on a
real loopback port, in a thread with its own event loop, on the session's real Redis; the
client is another loop in the test's thread.

What is proven: with 50 streams open on each of three API keys (the 51st of each refused with
429) and their jobs changing all along, a fourth key's ``GET /jobs/{id}``, authorise and
``/readyz`` all answer 2xx with a p99 under 100 ms; more streams than the old pool held (120)
leave every other request 2xx, ``Prefer: wait`` waiters included, while the whole API holds one
subscribed Redis connection and one Redis subscription per job, however many streams follow it.

Jobs are stored as a worker would and none runs them; the authorise jobs are published to a
broker nobody consumes (another database of the session's Redis), and everything is removed after.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import redis

from api.stream_slots import MAX_STREAMS_PER_KEY
from authq.redis_server import RedisServer
from tasks.model.records import Job, ProgressStep, utcnow
from tasks.settings import Settings
from tasks.storage import schema
from tasks.storage.store import Store
from tests.support.event_streams import stored_job
from tests.support.helpers import TEST_CATALOG, Tenant, authorise_body
from tests.support.leakcheck import remember_secret
from tests.support.served_app import serve_in_thread

HUB_NAME, POOL_NAME = "authq-api-events", "authq-api"
FAKE_WORKER = "starvation-heartbeat@test"
UNCONSUMED_BROKER_DB = 15
SAMPLES = 100
P99_LIMIT_SECONDS = 0.100


@dataclass
class Served:
    url: str
    tenants: list[Tenant]
    settings: Settings


@pytest.fixture
def served(redis_server: RedisServer, secret_key: str, ca_bundle: Path, redis_client: redis.Redis) -> Iterator[Served]:
    from api.app import create_app
    from worker.queues import make_job_queue

    tenants = [Tenant(f"t{secrets.token_hex(4)}", f"key-{secrets.token_urlsafe(18)}") for _ in range(4)]
    for t in tenants:
        remember_secret(t.key)
    broker = redis_server.url.rsplit("/", 1)[0] + f"/{UNCONSUMED_BROKER_DB}"
    settings = Settings(redis_url=redis_server.url, broker_url=broker, secret_key=secret_key,
                        api_keys=",".join(f"{t.name}:{t.key}" for t in tenants), catalog=TEST_CATALOG,
                        allow_private_networks=True, ca_bundle=ca_bundle,
                        # The fourth key asks as fast as it is answered: its rate limit is raised
                        # (not turned off) so every answer measured is the endpoint's own.
                        api_rate_limit=1_000_000.0,
                        _env_file=None)  # type: ignore[call-arg]
    redis_client.zadd(schema.WORKERS, {FAKE_WORKER: time.time() + 300})  # /readyz: a worker was seen
    try:
        yield from (Served(url, tenants, settings)
                    for url in serve_in_thread(create_app(settings, make_job_queue(settings)), "starvation-api"))
    finally:
        redis_client.zrem(schema.WORKERS, FAKE_WORKER)
        for t in tenants:
            keys = list(redis_client.scan_iter(match=schema.tenant_keys(t.name), count=1000))
            if keys:
                redis_client.delete(*keys)
        with redis.Redis.from_url(broker) as unconsumed:
            unconsumed.flushdb()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """No client-side cap on connections: every stream and request gets its own socket."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


async def open_streams(http: aiohttp.ClientSession, url: str, tenant: Tenant, jobs: list[Job],
                       count: int) -> list[aiohttp.ClientResponse]:
    streams = []
    for i in range(count):
        response = await http.get(f"{url}/api/v1/jobs/{jobs[i % len(jobs)].id}/events", headers=tenant.headers)
        assert response.status == 200, (tenant.name, i, response.status, await response.text())
        assert b"event: job" in await response.content.readuntil(b"\n\n")
        streams.append(response)
    return streams


async def keep_changing(store: Store, jobs: list[Job], stop: asyncio.Event) -> int:
    """Save the streams' jobs as a worker reports progress, round after round: every save
    reaches each stream that follows the job (a read of the record each)."""
    saves = 0
    while not stop.is_set():
        for job in jobs:
            job.status = "running"
            job.progress.append(ProgressStep(step="check_credentials", at=utcnow()))
            await asyncio.to_thread(store.save_job, job)
            saves += 1
        await asyncio.sleep(0.25)
    return saves


def p99(samples: list[float]) -> float:
    return sorted(samples)[max(0, round(0.99 * len(samples)) - 1)]


def app_connections(redis_client: redis.Redis) -> list[dict[str, str]]:
    return [c for c in redis_client.client_list() if c.get("name") in (HUB_NAME, POOL_NAME)]


async def test_fifty_streams_on_each_of_three_keys_leave_a_fourth_keys_requests_fast(served, http, redis_client):
    *streaming, fourth = served.tenants
    store = Store(redis_client, 3600)
    jobs = {t.name: [stored_job(store, t.name) for _ in range(5)] for t in streaming}
    streams = []
    for t in streaming:
        streams += await open_streams(http, served.url, t, jobs[t.name], MAX_STREAMS_PER_KEY)
        refused = await http.get(f"{served.url}/api/v1/jobs/{jobs[t.name][0].id}/events", headers=t.headers)
        assert refused.status == 429 and "message" in await refused.json() and refused.headers["Retry-After"]

    own_job = stored_job(store, fourth.name)
    stop = asyncio.Event()
    changing = asyncio.create_task(keep_changing(store, [j for js in jobs.values() for j in js], stop))
    timings: dict[str, list[float]] = {"GET /jobs/{id}": [], "POST /oauth/authorise": [], "GET /readyz": []}
    statuses: dict[str, list[int]] = {name: [] for name in timings}
    try:
        for _ in range(SAMPLES):
            for name, method, path, body in (
                    ("GET /jobs/{id}", "GET", f"/api/v1/jobs/{own_job.id}", None),
                    ("POST /oauth/authorise", "POST", "/api/v1/oauth/authorise", authorise_body()),
                    ("GET /readyz", "GET", "/readyz", None)):
                started = time.perf_counter()
                async with http.request(method, served.url + path, json=body, headers=fourth.headers) as answer:
                    await answer.read()
                timings[name].append(time.perf_counter() - started)
                statuses[name].append(answer.status)
    finally:
        stop.set()
        saves = await changing
        for response in streams:
            response.close()

    for name in timings:
        assert all(200 <= s < 300 for s in statuses[name]), (name, statuses[name])
    assert saves > 0
    assert {name: round(p99(t) * 1000, 1) for name, t in timings.items() if p99(t) >= P99_LIMIT_SECONDS} == {}


async def test_more_streams_than_the_old_pool_held_cause_no_503_for_other_requests(served, http, redis_client):
    *streaming, fourth = served.tenants
    store = Store(redis_client, 3600)
    jobs = {t.name: [stored_job(store, t.name) for _ in range(2)] for t in streaming}
    streams = []
    for t in streaming:  # 3 x 40 = 120: past redis-py's default pool of 100, each key under its 50
        streams += await open_streams(http, served.url, t, jobs[t.name], 40)

    subscribed = [c for c in app_connections(redis_client) if int(c.get("sub", 0)) > 0]
    assert [c["name"] for c in subscribed] == [HUB_NAME]  # 120 streams, one subscribed connection
    for job in (j for js in jobs.values() for j in js):
        # 20 streams follow the job: one subscription
        assert redis_client.pubsub_numsub(schema.job_events(job.tenant, job.id))[0][1] == 1

    own_job = stored_job(store, fourth.name)

    async def status(path: str, **headers: str) -> int:
        async with http.get(served.url + path, headers={**fourth.headers, **headers}) as answer:
            await answer.read()
            return answer.status

    try:
        answers = await asyncio.gather(
            *(status(f"/api/v1/jobs/{own_job.id}") for _ in range(50)),
            *(status(f"/api/v1/jobs/{own_job.id}", Prefer="wait=1") for _ in range(50)),  # 50 waiters at once
            *(status("/readyz") for _ in range(10)))
        assert answers == [200] * 110
        assert len(app_connections(redis_client)) <= served.settings.api_redis_connections + 1
    finally:
        for response in streams:
            response.close()
