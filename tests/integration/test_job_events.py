"""``GET /api/v1/jobs/{id}/events``: a job's changes as server-sent events, to its end.

Real parts only: the real app under aiohttp's test server, the session's Redis (its pub/sub
carries the workers' change notices), real Celery workers and the loopback provider.

What is proven: a job followed from submission to its end arrives as ``event: job`` events
with counting ids, its statuses in order and ending ``succeeded``, the last event equal to
``GET /jobs/{id}``, and the stream closes by itself; changes saved by the store (as a
worker saves them) each reach an open stream; an already-finished job gives one event and
the stream closes; ``Last-Event-ID`` is continued; another tenant's job and an unknown job
answer the JSON 404; a client that leaves ends the stream and its Redis subscription.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tasks.model.records import ProgressStep, utcnow
from tasks.storage import schema
from tasks.storage.store import Store
from tests.support.event_streams import read_events, stored_job
from tests.support.helpers import authorise_body, poll_job

pytestmark = pytest.mark.integration
ORDER = {"queued": 0, "running": 1, "retrying": 1, "succeeded": 2, "failed": 2}


async def open_stream(client, tenant, job_id: str, **headers: str):  # type: ignore[no-untyped-def]
    response = await client.get(f"/api/v1/jobs/{job_id}/events", headers={**tenant.headers, **headers})
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache"
    return response


async def shown(client, tenant, job_id: str) -> dict:  # type: ignore[no-untyped-def]
    answer = await client.get(f"/api/v1/jobs/{job_id}", headers=tenant.headers)
    assert answer.status == 200
    return (await answer.json())["data"]


async def test_stream_follows_a_real_job_to_its_end(client, tenant, workers, fresh_provider):
    fresh_provider.script.extend([503, 503])  # two retries (1 s, 2 s backoff): the stream sees it work
    body = authorise_body()
    body["variables"][0]["value"] = fresh_provider.base_url  # type: ignore[index]
    answer = await client.post("/api/v1/oauth/authorise", json=body, headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    job_id = (await answer.json())["data"]["id"]

    response = await open_stream(client, tenant, job_id)
    events = await read_events(response)
    assert response.content.at_eof()

    assert len(events) >= 2, events
    assert all(e["event"] == "job" for e in events)
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    jobs = [json.loads(e["data"]) for e in events]
    statuses = [j["status"] for j in jobs]
    assert statuses[-1] == "succeeded", statuses
    assert [ORDER[s] for s in statuses] == sorted(ORDER[s] for s in statuses), statuses
    assert "succeeded" not in statuses[:-1] and all(j["id"] == job_id for j in jobs)
    attempts = [j["attempts"] for j in jobs]
    assert attempts == sorted(attempts) and attempts[-1] == 3
    assert jobs[-1] == await shown(client, tenant, job_id)


async def test_each_saved_change_reaches_an_open_stream(client, tenant, redis_client):
    store = Store(redis_client, 3600)
    job = stored_job(store, tenant.name)
    response = await open_stream(client, tenant, job.id)
    first = await response.content.readuntil(b"\n\n")
    assert b"event: job" in first and b'"status":"queued"' in first

    async def worker_side() -> None:  # saved as the runner saves them, with pauses between
        for change in ("running", "step", "succeeded"):
            await asyncio.sleep(0.2)
            if change == "running":
                job.status, job.attempts, job.started_at = "running", 1, utcnow()
            elif change == "step":
                job.progress.append(ProgressStep(step="check_credentials", at=utcnow()))
            else:
                job.status, job.finished_at, job.result = "succeeded", utcnow(), {"connector": None}
            store.save_job(job)

    saving = asyncio.create_task(worker_side())
    rest = await read_events(response, timeout=10)
    await saving
    jobs = [json.loads(e["data"]) for e in rest]
    assert [j["status"] for j in jobs] == ["running", "running", "succeeded"], jobs
    assert [len(j["progress"]) for j in jobs] == [0, 1, 1]
    assert [e["id"] for e in rest] == ["2", "3", "4"]
    assert jobs[-1] == await shown(client, tenant, job.id)


async def test_an_already_finished_job_gives_one_event_then_closes(client, tenant, workers, fresh_provider):
    body = authorise_body()
    body["variables"][0]["value"] = fresh_provider.base_url  # type: ignore[index]
    answer = await client.post("/api/v1/oauth/authorise", json=body, headers=tenant.headers)
    done = await poll_job(client, tenant, (await answer.json())["data"]["id"])
    assert done["status"] == "succeeded", done

    response = await open_stream(client, tenant, done["id"])
    [event] = await read_events(response, timeout=5)
    assert event["event"] == "job" and event["id"] == "1"
    assert json.loads(event["data"]) == done == await shown(client, tenant, done["id"])

    # A reconnecting EventSource sends the last id it saw: the count goes on from there.
    response = await open_stream(client, tenant, done["id"], **{"Last-Event-ID": "7"})
    [event] = await read_events(response, timeout=5)
    assert event["id"] == "8" and json.loads(event["data"]) == done


async def test_another_tenants_job_and_an_unknown_job_are_404(client, tenants, redis_client):
    owner, other = tenants
    job = stored_job(Store(redis_client, 3600), owner.name)
    for who, job_id in ((other, job.id), (owner, "job_does_not_exist")):
        answer = await client.get(f"/api/v1/jobs/{job_id}/events", headers=who.headers)
        assert answer.status == 404
        assert answer.headers["Content-Type"].startswith("application/json")
        assert await answer.json() == {"message": "Job not found."}
    answer = await client.get(f"/api/v1/jobs/{job.id}/events")
    assert answer.status == 401


async def test_a_client_that_leaves_ends_the_stream_and_its_subscription(client, tenant, redis_client):
    job = stored_job(Store(redis_client, 3600), tenant.name)  # stays queued: the stream would go on
    channel = schema.job_events(tenant.name, job.id)
    response = await open_stream(client, tenant, job.id)
    await response.content.readuntil(b"\n\n")
    assert redis_client.pubsub_numsub(channel) == [(channel.encode(), 1)]

    response.close()  # the client goes away mid-stream
    deadline = time.monotonic() + 5
    while redis_client.pubsub_numsub(channel)[0][1] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert redis_client.pubsub_numsub(channel)[0][1] == 0
