"""Waiting for permits, with real workers (contract §8): a job is deferred for at most an hour in
all, then fails ``provider_rate_limited`` (``retryable: false``), and a provider's block of a
connector holds requests to the host that sent it only: a reauthorise that moves the connector
to another host is not held up, one whose move fails leaves it blocked.

Through the real API and two Celery workers, against the loopback provider; the block is the
key a provider's 429 sets (``schema.rate_blocked``), written here as the gate writes it.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from tasks.storage import schema
from tests.support.helpers import basic_body, poll_job
from tests.support.provider import GOOD_SECRET

AUTHORISE = "/api/v1/oauth/authorise"


async def submitted(client, tenant, method: str, path: str, body: dict[str, object]) -> str:  # type: ignore[no-untyped-def]
    answer = await client.request(method, path, json=body, headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    return str((await answer.json())["data"]["id"])


def reauthorise_path(connector_id: str) -> str:
    return f"/api/v1/oauth/{connector_id}/reauthorise"


async def test_a_job_whose_permit_is_more_than_an_hour_away_fails_provider_rate_limited(
        client, tenant, workers, fresh_provider, redis_client):
    # One request a day: the authorise's credential check takes the day's permit.
    body = basic_body(fresh_provider, rate_limit_unit="day", rate_limit_duration=1)
    first = await poll_job(client, tenant, await submitted(client, tenant, "POST", AUTHORISE, body))
    assert first["status"] == "succeeded", first
    connector_id = str(first["connector_id"])
    checked = len(fresh_provider.seen)

    job_id = await submitted(client, tenant, "PATCH", reauthorise_path(connector_id), {"name": "Checked again"})
    done = await poll_job(client, tenant, job_id)  # no hour-long wait: the permit is a day away
    assert done["status"] == "failed", done
    error = done["error"]
    assert isinstance(error, dict) and error["code"] == "provider_rate_limited" and error["retryable"] is False
    assert "rate limit" in error["message"]
    assert len(fresh_provider.seen) == checked, "nothing may be sent without a permit"
    assert redis_client.exists(schema.submission(tenant.name, job_id)) == 0
    assert redis_client.exists(schema.job_deferred(tenant.name, job_id)) == 0


async def test_a_reauthorise_to_another_host_is_not_held_by_the_old_hosts_block(client, tenant, workers,
                                                                                fresh_provider, redis_client):
    body = basic_body(fresh_provider)
    first = await poll_job(client, tenant, await submitted(client, tenant, "POST", AUTHORISE, body))
    assert first["status"] == "succeeded", first
    connector_id = str(first["connector_id"])
    blocked = schema.rate_blocked(tenant.name, connector_id)
    old_host = f"127.0.0.1:{urlsplit(str(fresh_provider.base_url)).port}"
    redis_client.set(blocked, old_host, px=30 * 60 * 1000)  # the old host said 429, Retry-After: 30 minutes

    # The same host: the block holds, and the job waits (queued, not an attempt).
    waiting = await submitted(client, tenant, "PATCH", reauthorise_path(connector_id), {"name": "Same host"})
    await asyncio.sleep(3)
    answer = await client.get(f"/api/v1/jobs/{waiting}", headers=tenant.headers)
    job = (await answer.json())["data"]
    assert job["status"] == "queued" and job["attempts"] == 0, job
    assert redis_client.pttl(blocked) > 0
    moved = str(fresh_provider.base_url).replace("127.0.0.1", "localhost")

    # A move whose check the new host refuses: the connector still points at the old host, and
    # the old host's block still holds it there.
    refused = await submitted(client, tenant, "PATCH", reauthorise_path(connector_id), {"variables": [
        {"key": "base_url", "value": moved}, {"key": "consumer_secret", "value": "wrong", "secret": True}]})
    failed = await poll_job(client, tenant, refused, timeout=20)
    assert failed["status"] == "failed", failed
    assert redis_client.get(blocked) == old_host.encode() and redis_client.pttl(blocked) > 0

    # Another host (the same loopback provider, named differently): the reauthorise's own
    # credential check is not held up by the old host's answer.
    job_id = await submitted(client, tenant, "PATCH", reauthorise_path(connector_id), {"variables": [
        {"key": "base_url", "value": moved}, {"key": "consumer_secret", "value": GOOD_SECRET, "secret": True}]})
    done = await poll_job(client, tenant, job_id, timeout=20)
    assert done["status"] == "succeeded", done
