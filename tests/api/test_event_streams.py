"""``GET /jobs/{id}/events`` limits and lifetime, and ``Prefer: wait`` on the event hub, through the
real app factory on the session's real Redis (jobs are stored as a worker would; none runs).

What is proven: the 51st open stream of one API key is refused with the contract's 429 (other
keys unaffected, a closed stream's slot comes back), counted across two API processes sharing
the Redis; a stream that reaches ``AUTHQ_STREAM_MAX_SECONDS`` ends with ``event: reconnect``
and frees its slot; a finished state saved while the hub's connection is down still reaches the
stream (no lost terminal event); a ``Prefer: wait`` waiter listens on the hub and answers as
soon as the job ends."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
import redis
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from api.stream_slots import MAX_STREAMS_PER_KEY
from api.typedefs import EVENT_HUB
from tasks.model.records import Job, utcnow
from tasks.settings import Settings
from tasks.storage import schema
from tasks.storage.store import Store
from tests.support.event_streams import read_events, stored_job
from tests.support.helpers import Tenant

HUB_NAME = "authq-api-events"


def events_path(job: Job) -> str:
    return f"/api/v1/jobs/{job.id}/events"


async def open_streams(client: TestClient, tenant: Tenant, jobs: list[Job], count: int) -> list[ClientResponse]:
    """``count`` streams over ``jobs``, each read to its first event (so it is open, and counted)."""
    streams = []
    for i in range(count):
        response = await client.get(events_path(jobs[i % len(jobs)]), headers=tenant.headers)
        assert response.status == 200, (i, await response.text())
        assert b"event: job" in await response.content.readuntil(b"\n\n")
        streams.append(response)
    return streams


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client, 3600)


@pytest.fixture
async def second_client(aiohttp_client, settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    """A second API process on the same Redis (its own app, hub and pool)."""
    from api.app import create_app
    from worker.queues import make_job_queue

    yield await aiohttp_client(create_app(settings, make_job_queue(settings)))


async def test_the_51st_stream_of_a_key_is_429_and_a_closed_one_frees_its_slot(client, tenants, store,
                                                                                redis_client):
    owner, other = tenants
    jobs = [stored_job(store, owner.name) for _ in range(5)]
    streams = await open_streams(client, owner, jobs, MAX_STREAMS_PER_KEY)
    assert redis_client.zcard(schema.api_streams(schema.hash_api_key(owner.key))) == MAX_STREAMS_PER_KEY

    refused = await client.get(events_path(jobs[0]), headers=owner.headers)
    assert refused.status == 429
    assert refused.headers["Content-Type"].startswith("application/json")
    assert refused.headers["Retry-After"] == "5"
    assert await refused.json() == {"message": "This API key has 50 event streams open already; close one first."}
    # Another key is not held back by this one's streams; nor are this key's other requests.
    assert (await open_streams(client, other, [stored_job(store, other.name)], 1))[0].status == 200
    assert (await client.get(f"/api/v1/jobs/{jobs[0].id}", headers=owner.headers)).status == 200

    streams.pop().close()  # the client goes away: the server ends that stream and frees its slot
    deadline = time.monotonic() + 5
    while (again := await client.get(events_path(jobs[0]), headers=owner.headers)).status == 429:
        assert time.monotonic() < deadline, "the closed stream's slot never came back"
        await asyncio.sleep(0.1)
    assert again.status == 200
    for response in streams:
        response.close()


async def test_streams_are_counted_across_api_processes(client, second_client, tenant, store):
    jobs = [stored_job(store, tenant.name)]
    held = await open_streams(client, tenant, jobs, 30) + await open_streams(second_client, tenant, jobs, 20)
    for app_client in (client, second_client):
        assert (await app_client.get(events_path(jobs[0]), headers=tenant.headers)).status == 429
    for response in held:
        response.close()


@pytest.fixture
async def brief_client(aiohttp_client, settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    from api.app import create_app
    from worker.queues import make_job_queue

    brief = settings.model_copy(update={"stream_max_seconds": 1.0})
    yield await aiohttp_client(create_app(brief, make_job_queue(brief)))


async def test_a_stream_at_its_max_duration_ends_asking_the_client_to_reconnect(brief_client, tenant, store,
                                                                                 redis_client):
    job = stored_job(store, tenant.name)  # stays queued: only the time limit ends this stream
    response = await brief_client.get(events_path(job), headers={**tenant.headers, "Last-Event-ID": "4"})
    assert response.status == 200
    started = time.monotonic()
    events = await read_events(response, timeout=10)
    assert time.monotonic() - started >= 0.9 and response.content.at_eof()
    first, last = events
    assert first["event"] == "job" and first["id"] == "5" and json.loads(first["data"])["status"] == "queued"
    assert last == {"event": "reconnect", "retry": "1000", "data": '{"reason":"max_duration","seconds":1}'}
    assert "id" not in last  # a reconnection goes on from the job event's id
    key = schema.api_streams(schema.hash_api_key(tenant.key))
    deadline = time.monotonic() + 5
    while redis_client.zcard(key):
        assert time.monotonic() < deadline, "the ended stream kept its slot"
        await asyncio.sleep(0.05)


async def test_the_finished_state_saved_while_the_hub_reconnects_still_reaches_the_stream(client, tenant, store,
                                                                                          redis_client):
    job = stored_job(store, tenant.name)
    response = await client.get(events_path(job), headers=tenant.headers)
    assert b'"status":"queued"' in await response.content.readuntil(b"\n\n")
    [hub] = [c for c in redis_client.client_list() if c.get("name") == HUB_NAME]
    # Both calls block this loop, the app's too: the hub only sees its connection gone after
    # the finished job was published to nobody.
    redis_client.client_kill_filter(_id=hub["id"])
    job.status, job.finished_at, job.result = "succeeded", utcnow(), {"connector": None}
    store.save_job(job)
    # Well before the stream's own 15 s re-read: the hub's MISSED after resubscribing does it.
    [event] = await read_events(response, timeout=5)
    assert json.loads(event["data"])["status"] == "succeeded" and response.content.at_eof()


async def test_a_waiter_listens_on_the_hub_and_answers_when_the_job_ends(client, tenant, store):
    job = stored_job(store, tenant.name)
    hub = client.app[EVENT_HUB]
    channel = schema.job_events(tenant.name, job.id)
    waiting = asyncio.create_task(client.get(f"/api/v1/jobs/{job.id}", headers={**tenant.headers,
                                                                                 "Prefer": "wait=20"}))
    deadline = time.monotonic() + 5
    while hub.listeners(channel) != 1:
        assert time.monotonic() < deadline and not waiting.done(), "the waiter never listened on the hub"
        await asyncio.sleep(0.02)
    job.status, job.finished_at, job.result = "succeeded", utcnow(), {"connector": None}
    store.save_job(job)
    answer = await asyncio.wait_for(waiting, 10)
    assert answer.status == 200 and answer.headers["Preference-Applied"] == "wait=20"
    assert (await answer.json())["data"]["status"] == "succeeded"
    assert hub.listeners(channel) == 0


async def _listening(client: TestClient, channel: str, waiting: asyncio.Task[ClientResponse]) -> None:
    hub = client.app[EVENT_HUB]
    deadline = time.monotonic() + 5
    while hub.listeners(channel) != 1:
        assert time.monotonic() < deadline and not waiting.done(), "the waiter never listened on the hub"
        await asyncio.sleep(0.02)


async def test_a_waiter_answers_with_the_published_job_reading_it_only_once(client, tenant, store, monkeypatch):
    from api.store import ApiStore

    reads: list[str] = []
    real_read = ApiStore.job_json

    async def counted(self, owner, job_id):  # type: ignore[no-untyped-def]
        reads.append(job_id)
        return await real_read(self, owner, job_id)

    monkeypatch.setattr(ApiStore, "job_json", counted)
    job = stored_job(store, tenant.name)
    waiting = asyncio.create_task(client.get(f"/api/v1/jobs/{job.id}", headers={**tenant.headers,
                                                                                 "Prefer": "wait=20"}))
    await _listening(client, schema.job_events(tenant.name, job.id), waiting)
    job.status, job.started_at = "running", utcnow()
    store.save_job(job)
    job.status, job.finished_at, job.result = "succeeded", utcnow(), {"connector": None}
    store.save_job(job)
    answer = await asyncio.wait_for(waiting, 10)
    assert answer.status == 200 and (await answer.json())["data"] == job.view()
    # the poll's own read and the one after subscribing; the two saves came with the job in them
    assert reads == [job.id, job.id]


async def test_a_notice_without_the_job_makes_the_waiter_read_it(client, tenant, store, redis_client):
    job = stored_job(store, tenant.name)
    waiting = asyncio.create_task(client.get(f"/api/v1/jobs/{job.id}", headers={**tenant.headers,
                                                                                 "Prefer": "wait=20"}))
    channel = schema.job_events(tenant.name, job.id)
    await _listening(client, channel, waiting)
    job.status, job.finished_at, job.result = "failed", utcnow(), None
    redis_client.set(schema.job(tenant.name, job.id), job.stored_json())  # saved by a worker that
    started = time.monotonic()
    redis_client.publish(channel, "failed")                                # publishes only the status
    answer = await asyncio.wait_for(waiting, 10)
    assert time.monotonic() - started < 0.9  # at the notice, not at the next once-a-second recheck
    assert answer.status == 200 and (await answer.json())["data"]["status"] == "failed"


def test_the_stored_status_is_read_without_parsing_the_job() -> None:
    job = Job(id="job_" + "0" * 32, tenant="t", type="authorise", created_at=utcnow(),
              result={"connector": {"status": "succeeded"}}, error=None)
    assert not Job.stored_finished(job.stored_json().encode())  # a flow's "status" comes after the job's
    for status in ("succeeded", "failed"):
        job.status = status  # type: ignore[assignment]
        assert Job.stored_finished(job.stored_json().encode())
