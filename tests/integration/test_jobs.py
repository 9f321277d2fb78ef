"""Jobs end to end: the real app, the real broker, two real Celery workers, a real provider.

What is proven here (contract §3, §5, §6, §7): an authorise job for ``basic`` and ``token``
implementations succeeds and stores a connector whose view hides every secret; a rejected
credential fails the job with ``credentials_rejected``; each lookup failure ends the job with
its code and field and creates no connector; ``Prefer: wait`` answers 200 with the finished
job; a 5xx from the provider is retried with backoff until it passes; a reauthorise replaces
settings in place and a failed one leaves the connector as it was; jobs are tenant-private;
an implementation without a flow yet fails rather than hangs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tasks.storage import schema
from tests.support.helpers import authorise_body, basic_body, pem_bundle, poll_job
from tests.support.provider import GOOD_KEY, GOOD_SECRET, GOOD_TOKEN

pytestmark = pytest.mark.integration

CHECK_PATHS = {"/wp-json/wc/v3/system_status", "/admin/shop.json"}
JOB_FIELDS = {"id", "type", "status", "connector_id", "attempts", "created_at", "started_at", "finished_at",
              "progress", "result", "error", "links"}
CONNECTOR_FIELDS = {"id", "name", "authentication_implementation_id", "type", "system", "status", "timezone",
                    "date_format", "rate_limit", "connection_pool_id", "certificate_id", "session_id", "variables",
                    "credentials", "authorised_at", "created_at", "updated_at"}


# --- helpers -----------------------------------------------------------------------------


def checks(provider):  # type: ignore[no-untyped-def]
    """The credential-check requests the provider received, as it counts them."""
    return [s for s in provider.seen if s.path in CHECK_PATHS]


async def submit(client, tenant, body):  # type: ignore[no-untyped-def]
    """POST the authorise body: 202, Location and Retry-After; returns the job and the answer's text."""
    answer = await client.post("/api/v1/oauth/authorise", json=body, headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    job = (await answer.json())["data"]
    assert answer.headers["Location"] == f"/api/v1/jobs/{job['id']}" and answer.headers["Retry-After"]
    return job, await answer.text()


async def authorise(client, tenant, body):  # type: ignore[no-untyped-def]
    job, _ = await submit(client, tenant, body)
    return await poll_job(client, tenant, job["id"])


async def reauthorise(client, tenant, connector_id, body):  # type: ignore[no-untyped-def]
    answer = await client.patch(f"/api/v1/oauth/{connector_id}/reauthorise", json=body, headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    job = (await answer.json())["data"]
    assert job["type"] == "reauthorise" and job["connector_id"] == connector_id
    return await poll_job(client, tenant, job["id"])


async def get_connector(client, tenant, connector_id):  # type: ignore[no-untyped-def]
    answer = await client.get(f"/api/v1/connectors/{connector_id}", headers=tenant.headers)
    assert answer.status == 200, await answer.text()
    return (await answer.json())["data"], await answer.text()


def assert_utc(*values: object) -> None:
    for value in values:
        assert isinstance(value, str) and value.endswith("Z"), value
        datetime.fromisoformat(value.replace("Z", "+00:00"))


async def create(client, tenant, path, body):  # type: ignore[no-untyped-def]
    answer = await client.post(path, json=body, headers=tenant.headers)
    assert answer.status == 201, await answer.text()
    return (await answer.json())["data"]


# --- authorise: success ------------------------------------------------------------------

async def test_basic_authorise_stores_connector_and_hides_secrets(client, tenant, workers, fresh_provider):
    pool = await create(client, tenant, "/api/v1/connection-pools", {"name": "shop pool", "limit": 4})
    body = basic_body(fresh_provider, connection_pool_id=pool["id"])
    job, accepted_text = await submit(client, tenant, body)
    assert job["type"] == "authorise" and job["status"] in ("queued", "running", "succeeded")
    assert job["connector_id"]

    answer = await client.get(f"/api/v1/jobs/{job['id']}", headers=tenant.headers)
    done = await poll_job(client, tenant, job["id"])
    job_text = json.dumps(done)
    assert done["status"] == "succeeded", done
    assert set(done) == JOB_FIELDS and done["type"] == "authorise"
    assert done["error"] is None and done["attempts"] == 1
    assert done["result"]["connector"]["status"] == "authorised"
    assert done["result"]["next_action"] is None
    assert done["result"]["connector"]["id"] == job["connector_id"]
    assert [p["step"] for p in done["progress"]] == [
        "lookup_connection_pool", "apply_settings", "credential_check", "store_connector"]
    assert_utc(done["created_at"], done["started_at"], done["finished_at"], *(p["at"] for p in done["progress"]))
    assert done["links"] == {"self": f"/api/v1/jobs/{job['id']}",
                             "connector": f"/api/v1/connectors/{job['connector_id']}"}

    connector, connector_text = await get_connector(client, tenant, job["connector_id"])
    assert set(connector) == CONNECTOR_FIELDS
    assert connector == done["result"]["connector"]
    assert connector["status"] == "authorised"
    assert connector["name"] == "My shop"
    assert (connector["type"], connector["system"]) == ("basic", "TestShop")
    assert connector["authentication_implementation_id"] == "test-basic"
    assert connector["timezone"] == "Europe/London" and connector["date_format"] == "d/m/Y H:i"
    assert connector["rate_limit"] == {"unit": "minute", "duration": 60}
    assert connector["connection_pool_id"] == pool["id"]
    assert_utc(connector["created_at"], connector["updated_at"], connector["authorised_at"])
    variables = {v["key"]: v for v in connector["variables"]}
    assert variables["consumer_secret"]["value"] is None
    assert variables["consumer_secret"]["has_value"] is True and variables["consumer_secret"]["secret"] is True
    for v in connector["variables"]:
        if v["secret"]:
            assert v["value"] is None and v["has_value"] is True, v
    assert variables["base_url"]["value"] == fresh_provider.base_url
    assert variables["consumer_key"]["value"] == GOOD_KEY
    # The catalog's defaults fill variables the request left out (region: locked, aliased).
    assert variables["region"]["value"] == "eu" and variables["region"]["locked"] is True
    assert variables["region"]["pivot"]["alias"] == "region_code"
    assert connector["credentials"] == {"token_type": "basic", "scopes": [], "expires_at": None}

    listing = await client.get("/api/v1/connectors", headers=tenant.headers)
    list_text = await listing.text()
    assert [c["id"] for c in (await listing.json())["data"]] == [job["connector_id"]]
    for text in (accepted_text, await answer.text(), job_text, connector_text, list_text):
        assert GOOD_SECRET not in text

    # The provider saw exactly one check, with the connector's Basic credentials.
    seen = checks(fresh_provider)
    assert len(seen) == 1
    assert (seen[0].method, seen[0].path) == ("GET", "/wp-json/wc/v3/system_status")
    basic = base64.b64encode(f"{GOOD_KEY}:{GOOD_SECRET}".encode()).decode()
    assert seen[0].headers["Authorization"] == "Basic " + basic


async def test_token_authorise_sends_the_token_header(client, tenant, workers, fresh_provider):
    body = authorise_body(authentication_implementation_id="test-token", variables=[
        {"key": "base_url", "value": fresh_provider.base_url}, {"key": "token", "value": GOOD_TOKEN}])
    done = await authorise(client, tenant, body)
    assert done["status"] == "succeeded", done
    connector, text = await get_connector(client, tenant, done["connector_id"])
    assert connector["status"] == "authorised" and connector["type"] == "token"
    token = next(v for v in connector["variables"] if v["key"] == "token")
    assert token["value"] is None and token["has_value"] is True and token["secret"] is True
    assert GOOD_TOKEN not in text and GOOD_TOKEN not in json.dumps(done)
    [seen] = checks(fresh_provider)
    assert seen.path == "/admin/shop.json" and seen.headers["X-Shop-Access-Token"] == GOOD_TOKEN


async def test_prefer_wait_answers_200_with_the_finished_job(client, tenant, workers, fresh_provider):
    answer = await client.post("/api/v1/oauth/authorise", json=basic_body(fresh_provider),
                               headers={**tenant.headers, "Prefer": "wait=10"})
    assert answer.status == 200, await answer.text()
    assert answer.headers["Preference-Applied"] == "wait=10"
    job = (await answer.json())["data"]
    assert job["status"] == "succeeded" and job["finished_at"].endswith("Z")
    assert answer.headers["Location"] == f"/api/v1/jobs/{job['id']}"


def subscribes(redis_client) -> int:  # type: ignore[no-untyped-def]
    return int(redis_client.info("commandstats").get("cmdstat_subscribe", {}).get("calls", 0))


async def test_prefer_wait_on_a_submission_subscribes_to_nothing_per_job(client, tenant, workers, fresh_provider,
                                                                         redis_client):
    """The workers tell the waiting API process on its inbox: no SUBSCRIBE (nor UNSUBSCRIBE)
    of a job's channel per waiting submission, and each still answers with its finished job.
    An inbox named in the request body is not the one the job is told on."""
    wait = {**tenant.headers, "Prefer": "wait=20"}
    first = await client.post("/api/v1/oauth/authorise", json=basic_body(fresh_provider), headers=wait)
    assert first.status == 200  # (the process's inbox is subscribed by now)
    before = subscribes(redis_client)
    sent = {**basic_body(fresh_provider), "waiter_inbox": "authq:api-inbox:not-this-process"}
    answers = await asyncio.gather(*(client.post("/api/v1/oauth/authorise", json=sent, headers=wait)
                                     for _ in range(8)))
    jobs = [(await a.json())["data"] for a in answers]
    assert [a.status for a in answers] == [200] * 8 and {j["status"] for j in jobs} == {"succeeded"}
    assert subscribes(redis_client) == before


async def test_another_tenant_cannot_see_the_job_or_connector(client, tenants, workers, fresh_provider):
    owner, other = tenants
    done = await authorise(client, owner, basic_body(fresh_provider))
    for path in (f"/api/v1/jobs/{done['id']}", f"/api/v1/connectors/{done['connector_id']}"):
        answer = await client.get(path, headers=other.headers)
        assert answer.status == 404, await answer.text()
    answer = await client.patch(f"/api/v1/oauth/{done['connector_id']}/reauthorise", json={"name": "mine now"},
                                headers=other.headers)
    assert answer.status == 404, await answer.text()
    listing = await client.get("/api/v1/connectors", headers=other.headers)
    assert (await listing.json())["data"] == []


# --- authorise: failures -----------------------------------------------------------------

async def test_wrong_secret_fails_with_credentials_rejected(client, tenant, workers, fresh_provider):
    body = basic_body(fresh_provider)
    body["variables"][2]["value"] = "cs_wrong"  # type: ignore[index]
    done = await authorise(client, tenant, body)
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "credentials_rejected" and done["error"]["retryable"] is False
    assert done["error"]["message"] and done["result"] is None and done["attempts"] == 1
    connector, _ = await get_connector(client, tenant, done["connector_id"])
    assert connector["status"] == "failed"
    assert len(checks(fresh_provider)) == 1  # a rejection is not retried


async def test_provider_5xx_is_retried_until_it_passes(client, tenant, workers, fresh_provider):
    fresh_provider.script.extend([503, 503])
    job, _ = await submit(client, tenant, basic_body(fresh_provider))
    statuses = []
    deadline = time.monotonic() + 30
    while True:
        answer = await client.get(f"/api/v1/jobs/{job['id']}", headers=tenant.headers)
        current = (await answer.json())["data"]
        if not statuses or statuses[-1] != current["status"]:
            statuses.append(current["status"])
        if current["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert current["status"] == "succeeded", (statuses, current)
    assert "retrying" in statuses, statuses
    assert current["attempts"] == 3 and current["error"] is None
    assert len(checks(fresh_provider)) == 3


async def test_authorization_code_authorise_answers_a_redirect(client, tenant, workers, fresh_provider):
    """An authorization-code authorise succeeds with a next_action redirect and a pending connector."""
    body = authorise_body(authentication_implementation_id="test-oauth", variables=[
        {"key": "base_url", "value": fresh_provider.base_url}, {"key": "client_id", "value": "cid"},
        {"key": "client_secret", "value": "csecret"}])
    done = await authorise(client, tenant, body)
    assert done["status"] == "succeeded", done
    action = done["result"]["next_action"]
    assert action["type"] == "redirect" and action["url"].startswith(fresh_provider.base_url + "/authorize?")
    assert done["result"]["connector"]["status"] == "pending"


# --- lookups -----------------------------------------------------------------------------

async def assert_lookup_fails(client, tenant, provider, body, code, field):  # type: ignore[no-untyped-def]
    done = await authorise(client, tenant, body)
    assert done["status"] == "failed", done
    assert (done["error"]["code"], done["error"]["field"]) == (code, field), done["error"]
    assert done["error"]["retryable"] is False and done["attempts"] == 1
    missing = await client.get(f"/api/v1/connectors/{done['connector_id']}", headers=tenant.headers)
    assert missing.status == 404, "a failed lookup must not create a connector"
    assert checks(provider) == [], "a failed lookup must not reach the provider"
    return done


async def test_unknown_session(client, tenants, workers, fresh_provider):
    owner, other = tenants
    theirs = await create(client, other, "/api/v1/sessions", {"end_user_id": "u2"})
    for session_id in ("ses_nope", theirs["id"]):  # another tenant's session is as missing as none
        await assert_lookup_fails(client, owner, fresh_provider, basic_body(fresh_provider, session_id=session_id),
                                  "session_not_found", "session_id")


async def test_expired_session(client, tenant, workers, fresh_provider, redis_client):
    session = await create(client, tenant, "/api/v1/sessions", {"end_user_id": "u1", "ttl_seconds": 60})
    key = schema.session(tenant.name, session["id"])
    record = json.loads(redis_client.get(key))
    record["expires_at"] = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    redis_client.set(key, json.dumps(record), keepttl=True)
    await assert_lookup_fails(client, tenant, fresh_provider, basic_body(fresh_provider, session_id=session["id"]),
                              "session_expired", "session_id")


async def test_session_that_excludes_the_implementation(client, tenant, workers, fresh_provider):
    session = await create(client, tenant, "/api/v1/sessions", {"allowed_implementations": ["test-token"]})
    await assert_lookup_fails(client, tenant, fresh_provider, basic_body(fresh_provider, session_id=session["id"]),
                              "session_forbidden", "session_id")


async def test_session_that_allows_the_implementation(client, tenant, workers, fresh_provider):
    session = await create(client, tenant, "/api/v1/sessions", {"allowed_implementations": ["test-basic"]})
    done = await authorise(client, tenant, basic_body(fresh_provider, session_id=session["id"]))
    assert done["status"] == "succeeded", done
    assert done["progress"][0]["step"] == "lookup_session"
    assert done["result"]["connector"]["session_id"] == session["id"]


async def test_unknown_certificate(client, tenants, workers, fresh_provider):
    owner, other = tenants
    now = datetime.now(UTC)
    theirs = await create(client, other, "/api/v1/certificates",
                          {"certificate": pem_bundle(now - timedelta(days=1), now + timedelta(days=30))})
    for cert_id in ("crt_nope", theirs["id"]):  # another tenant's certificate is as missing as none
        await assert_lookup_fails(client, owner, fresh_provider, basic_body(fresh_provider, certificate_id=cert_id),
                                  "certificate_not_found", "certificate_id")


async def test_expired_certificate(client, tenant, workers, fresh_provider):
    now = datetime.now(UTC)
    cert = await create(client, tenant, "/api/v1/certificates",
                        {"certificate": pem_bundle(now - timedelta(days=30), now - timedelta(days=1)), "name": "old"})
    assert cert["not_after"].endswith("Z")
    await assert_lookup_fails(client, tenant, fresh_provider, basic_body(fresh_provider, certificate_id=cert["id"]),
                              "certificate_expired", "certificate_id")


async def test_current_certificate_is_accepted(client, tenant, workers, fresh_provider):
    now = datetime.now(UTC)
    cert = await create(client, tenant, "/api/v1/certificates",
                        {"certificate": pem_bundle(now - timedelta(days=1), now + timedelta(days=30))})
    done = await authorise(client, tenant, basic_body(fresh_provider, certificate_id=cert["id"]))
    assert done["status"] == "succeeded", done
    assert "lookup_certificate" in [p["step"] for p in done["progress"]]
    assert done["result"]["connector"]["certificate_id"] == cert["id"]


async def test_unknown_connection_pool(client, tenants, workers, fresh_provider):
    owner, other = tenants
    theirs = await create(client, other, "/api/v1/connection-pools", {"name": "theirs", "limit": 1})
    for pool_id in (987654, theirs["id"]):  # pool ids are per tenant: theirs is not ours
        await assert_lookup_fails(client, owner, fresh_provider, basic_body(fresh_provider, connection_pool_id=pool_id),
                                  "connection_pool_not_found", "connection_pool_id")


async def test_unknown_platform_app(client, tenant, workers, fresh_provider):
    for key in ("no-such-app", "test-app"):  # test-app exists, but for test-oauth, not test-basic
        await assert_lookup_fails(client, tenant, fresh_provider, basic_body(fresh_provider, platform_app_key=key),
                                  "platform_app_not_found", "platform_app_key")


# --- reauthorise -------------------------------------------------------------------------

async def test_reauthorise_updates_settings_in_place(client, tenant, workers, fresh_provider):
    first = await authorise(client, tenant, basic_body(fresh_provider))
    assert first["status"] == "succeeded", first
    connector_id = first["connector_id"]
    before, _ = await get_connector(client, tenant, connector_id)

    done = await reauthorise(client, tenant, connector_id,
                             {"name": "Renamed shop", "rate_limit_unit": "hour", "rate_limit_duration": 500})
    assert done["status"] == "succeeded", done
    assert done["result"]["connector"]["id"] == connector_id
    after, _ = await get_connector(client, tenant, connector_id)
    assert after["id"] == connector_id and after["status"] == "authorised"
    assert after["name"] == "Renamed shop"
    assert after["rate_limit"] == {"unit": "hour", "duration": 500}
    assert after["created_at"] == before["created_at"]
    assert {v["key"]: v["id"] for v in after["variables"]} == {v["key"]: v["id"] for v in before["variables"]}
    assert len(checks(fresh_provider)) == 2  # the reauthorise checked the credentials again
    listing = await client.get("/api/v1/connectors", headers=tenant.headers)
    assert [c["id"] for c in (await listing.json())["data"]] == [connector_id]


async def test_failed_reauthorise_keeps_the_working_connector(client, tenant, workers, fresh_provider):
    first = await authorise(client, tenant, basic_body(fresh_provider))
    assert first["status"] == "succeeded", first
    connector_id = first["connector_id"]
    before, _ = await get_connector(client, tenant, connector_id)

    done = await reauthorise(client, tenant, connector_id, {
        "name": "Should not stick", "variables": [{"key": "consumer_secret", "value": "cs_wrong"}]})
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "credentials_rejected"
    after, _ = await get_connector(client, tenant, connector_id)
    assert after == before  # status authorised, name, variables, credentials, timestamps: untouched

    # A failed lookup leaves it as it was too.
    done = await reauthorise(client, tenant, connector_id, {"name": "Nor this", "connection_pool_id": 987654})
    assert (done["error"]["code"], done["error"]["field"]) == ("connection_pool_not_found", "connection_pool_id")
    assert (await get_connector(client, tenant, connector_id))[0] == before

    # The stored credentials still work: a reauthorise without new ones passes the check.
    fresh_provider.seen.clear()
    again = await reauthorise(client, tenant, connector_id, {})
    assert again["status"] == "succeeded", again
    [seen] = checks(fresh_provider)
    assert seen.headers["Authorization"] == "Basic " + base64.b64encode(f"{GOOD_KEY}:{GOOD_SECRET}".encode()).decode()


async def test_the_request_id_follows_the_job_into_the_worker_log(client, tenant, workers, fresh_provider,
                                                                  tmp_path_factory):
    """The X-Request-Id of the submission is on the worker's lines for the job's run."""
    request_id = f"trace-{uuid.uuid4()}"
    answer = await client.post("/api/v1/oauth/authorise", json=basic_body(fresh_provider),
                               headers={**tenant.headers, "X-Request-Id": request_id, "Prefer": "wait=10"})
    assert answer.status == 200, await answer.text()
    assert answer.headers["X-Request-Id"] == request_id
    job_id = (await answer.json())["data"]["id"]
    logs = list(tmp_path_factory.getbasetemp().glob("worker-logs*/worker*.log"))
    deadline = time.monotonic() + 10
    finished: list[dict] = []
    while not finished and time.monotonic() < deadline:
        lines = [line for log in logs for line in log.read_text(errors="replace").splitlines()]
        finished = [entry for entry in (json.loads(line) for line in lines if line.startswith("{"))
                    if entry.get("job_id") == job_id and entry.get("event") == "job finished"]
        await asyncio.sleep(0.1)
    assert finished, "no 'job finished' line for the job in the worker logs"
    assert finished[0]["request_id"] == request_id and finished[0]["tenant"] == tenant.name
    assert finished[0]["status"] == "succeeded" and finished[0]["attempts"] == 1 and finished[0]["seconds"] >= 0
    # One line for the job's end: Celery's own per-task lines stay at DEBUG (worker/lifecycle.py).
    task_lines = [line for line in lines if "authq.run_job[" in line and ("received" in line or "succeeded in" in line)]
    assert task_lines == []
