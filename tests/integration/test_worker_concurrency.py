"""One worker process runs several jobs at once, as many as ``AUTHQ_WORKER_CONCURRENCY`` says.

A real ``celery -A worker worker`` started with no ``--pool`` or ``--concurrency`` (what the
worker's own configuration says applies, as for compose's and a bare ``celery`` command), its
own Redis, the real app factory and the loopback provider, which counts the requests it holds
at once. No clock is asserted: overlap is, as the provider counts it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tasks.settings import Settings
from tests.support.fleet import Fleet
from tests.support.helpers import PUBLIC_URL, TEST_CATALOG, Tenant, authorise_body
from tests.support.provider import Provider, start_provider

pytestmark = pytest.mark.integration

HOLD_SECONDS = 0.5  # every check is held this long: time for the others to arrive meanwhile


@pytest.fixture(scope="module")
def own_provider() -> Iterator[Provider]:
    server, stop = start_provider()
    yield server
    stop()


@pytest.fixture
def provider(own_provider: Provider) -> Iterator[Provider]:
    own_provider.reset()
    own_provider.delay = HOLD_SECONDS
    yield own_provider
    own_provider.reset()


@pytest.fixture
def fleet(tmp_path: Path, secret_key: str, ca_bundle: Path) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path, secret_key, ca_bundle)
    yield fleet
    fleet.stop()


@pytest.fixture
async def api(aiohttp_client, fleet: Fleet, secret_key: str, tenant: Tenant,  # type: ignore[no-untyped-def]
              ca_bundle: Path) -> AsyncIterator[TestClient]:
    from api.app import create_app
    from worker.queues import make_job_queue

    settings = Settings(redis_url=fleet.url, secret_key=secret_key, api_keys=f"{tenant.name}:{tenant.key}",
                        catalog=TEST_CATALOG, allow_private_networks=True, ca_bundle=ca_bundle,
                        public_url=PUBLIC_URL, _env_file=None)  # type: ignore[call-arg]
    yield await aiohttp_client(create_app(settings, make_job_queue(settings)))


async def run_jobs(api: TestClient, tenant: Tenant, provider: Provider, count: int) -> list[dict]:  # type: ignore[type-arg]
    """Submit ``count`` authorise jobs (each checks its credentials at the provider) and wait for their ends."""
    body = authorise_body()
    body["variables"][0]["value"] = provider.base_url  # type: ignore[index]
    ids = []
    for _ in range(count):
        answer = await api.post("/api/v1/oauth/authorise", json=body, headers=tenant.headers)
        assert answer.status == 202, await answer.text()
        ids.append((await answer.json())["data"]["id"])
    deadline = time.monotonic() + 60
    ended: dict[str, dict] = {}  # type: ignore[type-arg]
    while len(ended) < count:
        for job_id in ids:
            if job_id not in ended:
                answer = await api.get(f"/api/v1/jobs/{job_id}", headers=tenant.headers)
                job = (await answer.json())["data"]
                if job["status"] in ("succeeded", "failed"):
                    ended[job_id] = job
        assert time.monotonic() < deadline, f"{count - len(ended)} jobs did not end"
        await asyncio.sleep(0.1)
    return [ended[job_id] for job_id in ids]


async def test_one_worker_process_runs_its_concurrency_of_jobs_at_once(
        fleet: Fleet, api: TestClient, tenant: Tenant, provider: Provider) -> None:
    concurrency = 6
    fleet.extra_env["AUTHQ_WORKER_CONCURRENCY"] = str(concurrency)
    fleet.start_worker("c1", pool=())  # no pool options: the worker's configuration decides
    jobs = await run_jobs(api, tenant, provider, concurrency)
    assert all(job["status"] == "succeeded" and job["attempts"] == 1 for job in jobs), jobs
    print(f"\n{concurrency} jobs on one process of concurrency {concurrency}: "
          f"{provider.max_in_flight} checks at the provider at once")
    # One process, and yet the provider held several of its checks at the same time.
    assert provider.max_in_flight >= 4
    assert provider.max_in_flight <= concurrency
    assert "concurrency: 6 (thread)" in fleet.log("c1")  # Celery's banner: the threads pool, 6 threads


async def test_a_worker_never_runs_more_jobs_at_once_than_its_concurrency(
        fleet: Fleet, api: TestClient, tenant: Tenant, provider: Provider) -> None:
    fleet.extra_env["AUTHQ_WORKER_CONCURRENCY"] = "2"
    fleet.start_worker("c2", pool=())
    jobs = await run_jobs(api, tenant, provider, 6)
    assert all(job["status"] == "succeeded" and job["attempts"] == 1 for job in jobs), jobs
    assert provider.max_in_flight == 2
