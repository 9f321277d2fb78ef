"""Refresh jobs against the real loopback OAuth 2 server (Authlib, rotating refresh tokens
with reuse detection): asked for through the API, scheduled by the workers themselves, two
at once, and refused by the provider.

Connectors are authorised the way a user would: authorise -> the browser (the test) follows
the authorize URL -> the front end POSTs the code and state. Each test registers its own
client id and counts only that client's requests, so connectors of other tests (which the
workers' refresh scan may still visit) never blur the counts.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import time
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from tasks.model.api_keys import static_key_id
from tasks.model.records import Connector, Job
from tasks.security.sealing import SecretBox
from tasks.storage import schema
from tests.support.helpers import REDIRECT_URI, authorise_body, job_keys, poll_job
from tests.support.provider import GOOD_KEY, GOOD_SECRET

CLIENT_SECRET = "refresh-secret-Q7w2"
WAIT = {"Prefer": "wait=20"}


def oauth_body(server_url: str, client_id: str, impl: str = "test-oauth") -> dict[str, object]:
    return authorise_body(authentication_implementation_id=impl, variables=[
        {"key": "base_url", "value": server_url}, {"key": "client_id", "value": client_id},
        {"key": "client_secret", "value": CLIENT_SECRET, "secret": True}])


async def submitted(answer: aiohttp.ClientResponse) -> dict[str, Any]:
    assert answer.status in (200, 202), await answer.text()
    return (await answer.json())["data"]


async def authorised_connector(client, tenant, oauth, test_ca, client_id: str) -> str:  # type: ignore[no-untyped-def]
    """An authorization-code connector, authorised end to end; its id."""
    oauth.add_client(client_id, CLIENT_SECRET, redirect_uris=[REDIRECT_URI], scope="read")
    job = await submitted(await client.post("/api/v1/oauth/authorise", json=oauth_body(oauth.https_url, client_id),
                                            headers={**tenant.headers, **WAIT}))
    assert job["status"] == "succeeded", job
    context = ssl.create_default_context()
    test_ca.configure_trust(context)
    async with (
        aiohttp.ClientSession() as browser,  # the end user's browser consents
        browser.get(job["result"]["next_action"]["url"], ssl=context, allow_redirects=False) as answer,
    ):
        assert answer.status == 302, await answer.text()
        location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    done = await submitted(await client.post("/api/v1/oauth/authenticate", json=params,
                                             headers={**tenant.headers, **WAIT}))
    done = done if done["status"] in ("succeeded", "failed") else await poll_job(client, tenant, done["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["connector"]["status"] == "authorised"
    return job["connector_id"]


def stored(redis_client, tenant, connector_id: str) -> Connector:  # type: ignore[no-untyped-def]
    raw = redis_client.get(schema.connector(tenant.name, connector_id))
    assert raw is not None
    return Connector.model_validate_json(raw)


def tokens_of(record: Connector, secret_key: str) -> dict[str, Any]:
    assert record.credentials_sealed
    return SecretBox(secret_key).open_json(record.credentials_sealed)


def token_requests(oauth, client_id: str, grant_type: str) -> list:  # type: ignore[no-untyped-def]
    return [r for r in oauth.records("/token") if r.client_id == client_id and r.form.get("grant_type") == grant_type]


async def refresh(client, tenant, connector_id: str, **headers: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    answer = await client.post(f"/api/v1/connectors/{connector_id}/refresh", headers={**tenant.headers, **headers})
    assert answer.status == 202, await answer.text()
    assert answer.headers["Location"] == f"/api/v1/jobs/{(await answer.json())['data']['id']}"
    job = (await answer.json())["data"]
    assert job["type"] == "refresh" and job["connector_id"] == connector_id
    return job


async def connector_view(client, tenant, connector_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    answer = await client.get(f"/api/v1/connectors/{connector_id}", headers=tenant.headers)
    assert answer.status == 200, await answer.text()
    return (await answer.json())["data"]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_refresh_rotates_the_refresh_token(client, tenant, workers, fresh_oauth, test_ca, redis_client,
                                                 secret_key):
    client_id = f"rot-{secrets.token_hex(4)}"
    connector_id = await authorised_connector(client, tenant, fresh_oauth, test_ca, client_id)
    before = stored(redis_client, tenant, connector_id)
    old = tokens_of(before, secret_key)
    shown_before = await connector_view(client, tenant, connector_id)

    fresh_oauth.expires_in = 7200   # the new token lives longer: its expiry visibly moves
    job = await poll_job(client, tenant, (await refresh(client, tenant, connector_id))["id"])
    assert job["status"] == "succeeded", job
    assert job["error"] is None

    assert len(token_requests(fresh_oauth, client_id, "refresh_token")) == 1
    assert fresh_oauth.refresh_reuse_detected == 0
    after = stored(redis_client, tenant, connector_id)
    new = tokens_of(after, secret_key)
    assert after.credential_version == before.credential_version + 1
    assert new["refresh_token"] != old["refresh_token"]          # rotated ...
    assert new["access_token"] != old["access_token"]
    assert fresh_oauth.token_info(old["refresh_token"]).refresh_revoked   # ... and the old one spent
    assert fresh_oauth.is_active(new["access_token"])

    shown = await connector_view(client, tenant, connector_id)
    assert shown["status"] == "authorised"
    moved = parse_time(shown["credentials"]["expires_at"]) - parse_time(shown_before["credentials"]["expires_at"])
    assert 3500 <= moved.total_seconds() <= 3700, (shown_before["credentials"], shown["credentials"])
    text = str(shown) + str(job)
    assert new["access_token"] not in text and new["refresh_token"] not in text
    # Audited: the refresh, by the key that asked for it; the creation before it.
    audited = await audit_events(client, tenant, connector_id)
    assert {"type": "connector.refreshed", "job_id": job["id"], "status": "authorised", "by": True} in audited
    assert audited[-1]["type"] == "connector.created"
    text = str(audited)
    assert all(t not in text for t in (new["access_token"], new["refresh_token"], old["refresh_token"], CLIENT_SECRET))


async def audit_events(client, tenant, connector_id: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The connector's audit events, newest first: type, job, status, and whether the tenant's key asked."""
    answer = await client.get(f"/api/v1/audit-events?connector_id={connector_id}", headers=tenant.headers)
    assert answer.status == 200, await answer.text()
    return [{"type": e["type"], "job_id": e["details"].get("job_id"), "status": e["details"].get("status"),
             "by": e["actor"]["api_key_id"] == static_key_id(tenant.key)} for e in (await answer.json())["data"]]


async def test_refresh_keeps_a_refresh_token_the_provider_does_not_rotate(client, tenant, workers, fresh_oauth,
                                                                          test_ca, redis_client, secret_key):
    client_id = f"keep-{secrets.token_hex(4)}"
    connector_id = await authorised_connector(client, tenant, fresh_oauth, test_ca, client_id)
    original = tokens_of(stored(redis_client, tenant, connector_id), secret_key)["refresh_token"]
    fresh_oauth.rotate_refresh_tokens = False   # answers carry no new refresh token
    for _ in range(2):
        job = await poll_job(client, tenant, (await refresh(client, tenant, connector_id))["id"])
        assert job["status"] == "succeeded", job
        assert tokens_of(stored(redis_client, tenant, connector_id), secret_key)["refresh_token"] == original
    assert len(token_requests(fresh_oauth, client_id, "refresh_token")) == 2
    assert (await connector_view(client, tenant, connector_id))["status"] == "authorised"


async def test_refresh_of_client_credentials_fetches_a_new_token(client, tenant, workers, fresh_oauth, redis_client,
                                                                 secret_key):
    client_id = f"cc-{secrets.token_hex(4)}"
    fresh_oauth.add_client(client_id, CLIENT_SECRET, scope="read")
    job = await submitted(await client.post(
        "/api/v1/oauth/authorise", json=oauth_body(fresh_oauth.https_url, client_id, "test-cc-basic"),
        headers={**tenant.headers, **WAIT}))
    assert job["status"] == "succeeded", job
    connector_id = job["connector_id"]
    before = stored(redis_client, tenant, connector_id)

    done = await poll_job(client, tenant, (await refresh(client, tenant, connector_id))["id"])
    assert done["status"] == "succeeded", done
    assert len(token_requests(fresh_oauth, client_id, "client_credentials")) == 2
    after = stored(redis_client, tenant, connector_id)
    assert after.credential_version == before.credential_version + 1
    assert tokens_of(after, secret_key)["access_token"] != tokens_of(before, secret_key)["access_token"]
    assert (await connector_view(client, tenant, connector_id))["status"] == "authorised"


async def test_two_refreshes_at_once_make_one_provider_call(client, tenant, workers, fresh_oauth, test_ca,
                                                            redis_client, secret_key):
    client_id = f"dup-{secrets.token_hex(4)}"
    connector_id = await authorised_connector(client, tenant, fresh_oauth, test_ca, client_id)
    before = stored(redis_client, tenant, connector_id)
    fresh_oauth.token_delay = 0.5   # the first refresh is still in flight when the second starts

    first, second = await asyncio.gather(refresh(client, tenant, connector_id), refresh(client, tenant, connector_id))
    assert first["id"] != second["id"]
    jobs = await asyncio.gather(poll_job(client, tenant, first["id"]), poll_job(client, tenant, second["id"]))
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded"], jobs
    # Both jobs ran at the same time (two workers), and still only one spent the refresh token.
    spans = [(parse_time(j["started_at"]), parse_time(j["finished_at"])) for j in jobs]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], spans
    assert len(token_requests(fresh_oauth, client_id, "refresh_token")) == 1
    assert fresh_oauth.refresh_reuse_detected == 0
    after = stored(redis_client, tenant, connector_id)
    assert after.credential_version == before.credential_version + 1
    for job in jobs:
        assert job["result"]["connector"]["status"] == "authorised"

    # The connector still works: its stored token is live, and the next refresh succeeds.
    assert fresh_oauth.is_active(tokens_of(after, secret_key)["access_token"])
    fresh_oauth.token_delay = 0.0
    later = await poll_job(client, tenant, (await refresh(client, tenant, connector_id))["id"])
    assert later["status"] == "succeeded", later
    assert len(token_requests(fresh_oauth, client_id, "refresh_token")) == 2
    assert fresh_oauth.refresh_reuse_detected == 0
    assert (await connector_view(client, tenant, connector_id))["status"] == "authorised"


async def test_invalid_grant_expires_the_connector(client, tenant, workers, fresh_oauth, test_ca, redis_client):
    client_id = f"rev-{secrets.token_hex(4)}"
    connector_id = await authorised_connector(client, tenant, fresh_oauth, test_ca, client_id)
    fresh_oauth.revoke_tokens(client_id)   # the user revoked the app at the provider

    job = await poll_job(client, tenant, (await refresh(client, tenant, connector_id))["id"])
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "provider_error", job["error"]
    assert job["error"]["provider"]["error"] == "invalid_grant"
    assert job["error"]["retryable"] is False
    assert job["attempts"] == 1
    assert len(token_requests(fresh_oauth, client_id, "refresh_token")) == 1
    shown = await connector_view(client, tenant, connector_id)
    assert shown["status"] == "expired"
    # An expired connector is no longer on the refresh schedule.
    assert redis_client.zscore(schema.refresh_schedule(tenant.name), connector_id) is None
    # The refused refresh is audited as the connector's expiry, with the failed job's end.
    audited = await audit_events(client, tenant, connector_id)
    assert audited[0] == {"type": "connector.expired", "job_id": job["id"], "status": None, "by": True}
    assert [e["type"] for e in audited] == ["connector.expired", "connector.created"]


async def test_scheduled_refresh_before_expiry(client, tenant, workers, fresh_oauth, test_ca, redis_client,
                                               secret_key):
    client_id = f"sched-{secrets.token_hex(4)}"
    fresh_oauth.expires_in = 120     # inside the 300 s refresh window as soon as it is issued
    # Every /token answer takes > 1 s, so the scheduled refresh's expiry is a later second.
    fresh_oauth.token_delay = 1.1
    connector_id = await authorised_connector(client, tenant, fresh_oauth, test_ca, client_id)
    fresh_oauth.expires_in = 3600    # the refreshed token is no longer due
    try:
        issued = await connector_view(client, tenant, connector_id)
        first_expiry = parse_time(issued["credentials"]["expires_at"])
        assert 100 <= first_expiry.timestamp() - time.time() <= 121

        # No API call: the workers' scan (every second in tests) queues the refresh itself.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and stored(redis_client, tenant, connector_id).credential_version < 2:
            await asyncio.sleep(0.2)
        assert token_requests(fresh_oauth, client_id, "refresh_token"), "no scheduled refresh within 15 s"
        shown = await connector_view(client, tenant, connector_id)
        assert shown["status"] == "authorised"
        assert parse_time(shown["credentials"]["expires_at"]) > first_expiry

        # The jobs the scheduler queued are ordinary refresh jobs of this tenant, and succeeded.
        found = [Job.from_stored(redis_client.get(key), tenant.name) for key in job_keys(redis_client, tenant.name)]
        scheduled = [j for j in found if j.type == "refresh"]
        assert scheduled, found
        for job in scheduled:
            assert job.connector_id == connector_id
            assert (await poll_job(client, tenant, job.id))["status"] == "succeeded"
        # Every refresh the provider saw was stored (none wasted, none reused).
        record = stored(redis_client, tenant, connector_id)
        assert record.credential_version >= 2
        assert len(token_requests(fresh_oauth, client_id, "refresh_token")) == record.credential_version - 1
        assert fresh_oauth.refresh_reuse_detected == 0
        assert fresh_oauth.is_active(tokens_of(record, secret_key)["access_token"])
    finally:
        # Leave nothing on the schedule for later tests.
        assert (await client.delete(f"/api/v1/connectors/{connector_id}", headers=tenant.headers)).status == 204


async def test_refresh_of_a_basic_connector_is_not_supported(client, tenant, tenants, workers, fresh_provider):
    body = authorise_body(variables=[{"key": "base_url", "value": fresh_provider.base_url},
                                     {"key": "consumer_key", "value": GOOD_KEY},
                                     {"key": "consumer_secret", "value": GOOD_SECRET, "secret": True}])
    job = await submitted(await client.post("/api/v1/oauth/authorise", json=body, headers={**tenant.headers, **WAIT}))
    assert job["status"] == "succeeded", job
    connector_id = job["connector_id"]
    assert job["result"]["connector"]["status"] == "authorised"
    checks = len(fresh_provider.seen)

    done = await poll_job(client, tenant, (await refresh(client, tenant, connector_id))["id"])
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "not_supported", done["error"]
    assert done["error"]["retryable"] is False
    assert "OAuth" in done["error"]["message"]
    assert len(fresh_provider.seen) == checks                     # nothing was called
    assert (await connector_view(client, tenant, connector_id))["status"] == "authorised"   # and nothing changed

    other = tenants[1]
    for who, cid in ((tenant, "con_missing"), (other, connector_id)):
        answer = await client.post(f"/api/v1/connectors/{cid}/refresh", headers=who.headers)
        assert answer.status == 404, await answer.text()


async def test_scheduled_refreshes_keep_a_short_lived_token_alive(client, tenant, workers, fresh_oauth, test_ca,
                                                                  redis_client, secret_key):
    """A token that lives less than the refresh window is refreshed again after each refresh,
    not once and then left to lapse."""
    client_id = f"short-{secrets.token_hex(4)}"
    fresh_oauth.expires_in = 4
    connector_id = await authorised_connector(client, tenant, fresh_oauth, test_ca, client_id)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and stored(redis_client, tenant, connector_id).credential_version < 4:
            await asyncio.sleep(0.2)
        record = stored(redis_client, tenant, connector_id)
        assert record.credential_version >= 4, "fewer than three scheduled refreshes in 20 s"
        assert len(token_requests(fresh_oauth, client_id, "refresh_token")) >= 3
        assert fresh_oauth.refresh_reuse_detected == 0
        assert record.status == "authorised"
        assert fresh_oauth.is_active(tokens_of(record, secret_key)["access_token"])
    finally:
        await client.delete(f"/api/v1/connectors/{connector_id}", headers=tenant.headers)


WINDOW = 300.0   # the workers' AUTHQ_REFRESH_WINDOW_SECONDS (the default)


def refresh_jobs(redis_client, tenant, connector_id: str) -> list[Job]:  # type: ignore[no-untyped-def]
    found = [Job.from_stored(redis_client.get(key), tenant.name) for key in job_keys(redis_client, tenant.name)]
    return [j for j in found if j.type == "refresh" and j.connector_id == connector_id]


async def scheduled_attempt(redis_client, tenant, connector_id: str) -> tuple[Job, float, float]:  # type: ignore[no-untyped-def]
    """Make the connector due now (as if its backoff had passed), let the workers' scan queue its
    refresh, and wait for that job's end: the job, and the bounds of the delay the scan chose."""
    schedule = schema.refresh_schedule(tenant.name)
    known = {j.id for j in refresh_jobs(redis_client, tenant, connector_id)}
    before = time.time()
    redis_client.zadd(schedule, {connector_id: before}, xx=True)
    redis_client.zadd(schema.REFRESH_TENANTS, {tenant.name: before}, lt=True)   # as a write lowers it
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        new = [j for j in refresh_jobs(redis_client, tenant, connector_id) if j.id not in known]
        if new and new[0].status in ("succeeded", "failed"):
            after = time.time()
            pushed = float(redis_client.zscore(schedule, connector_id)) - WINDOW
            return new[0], pushed - after, pushed - before
        await asyncio.sleep(0.2)
    raise AssertionError("the scan queued no refresh, or it did not end, within 20 s")


async def test_a_failing_scheduled_refresh_backs_off_and_a_success_starts_over(client, tenant, workers, fresh_oauth,
                                                                             test_ca, redis_client):
    client_id = f"backoff-{secrets.token_hex(4)}"
    connector_id = await authorised_connector(client, tenant, fresh_oauth, test_ca, client_id)  # due in an hour
    try:
        fresh_oauth.remove_client(client_id)          # the provider now refuses every refresh
        delays = []
        for _ in range(2):
            job, low, high = await scheduled_attempt(redis_client, tenant, connector_id)
            assert job.status == "failed", job
            assert stored(redis_client, tenant, connector_id).status == "authorised"   # not the connector's end
            delays.append((low, high))
        (low1, high1), (low2, high2) = delays
        assert low1 >= 48 - 1 and high1 <= 60 + 1, delays          # the base, less up to 20% jitter
        assert low2 >= 96 - 1 and high2 <= 120 + 1, delays         # doubled after a second failure
        assert len(token_requests(fresh_oauth, client_id, "refresh_token")) == 2      # no retry in between

        fresh_oauth.add_client(client_id, CLIENT_SECRET, redirect_uris=[REDIRECT_URI], scope="read")
        job, _, _ = await scheduled_attempt(redis_client, tenant, connector_id)
        assert job.status == "succeeded", job
        record = stored(redis_client, tenant, connector_id)
        assert record.credential_version == 2
        assert record.credentials.expires_at is not None     # the schedule is the new token's expiry again
        assert float(redis_client.zscore(schema.refresh_schedule(tenant.name), connector_id)) == pytest.approx(
            record.credentials.expires_at.timestamp(), abs=1)

        fresh_oauth.remove_client(client_id)
        job, low, high = await scheduled_attempt(redis_client, tenant, connector_id)
        assert job.status == "failed", job
        assert low >= 48 - 1 and high <= 60 + 1, (low, high)       # after a success, from the base again
    finally:
        await client.delete(f"/api/v1/connectors/{connector_id}", headers=tenant.headers)
