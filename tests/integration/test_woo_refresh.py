"""WooCommerce app authentication end to end, with the test playing WooCommerce.

authq's authorise job answers the redirect to ``{store_url}/wc-auth/v1/authorize``; the
test reads it as a store would, then POSTs the documented callback JSON exactly as
``WC_Auth::post_consumer_data`` sends it (``Content-Type: application/json;charset=UTF-8``,
``key_id`` an integer, ``user_id`` echoed back) to authq's callback, with no API key. The
worker then checks the keys against the loopback store (``tests/support/provider.py``) with Basic
auth. Refresh jobs are in ``test_refresh_tokens.py``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from urllib.parse import parse_qs, urlsplit

import redis

from tasks.model.records import Connector, Job
from tasks.security.sealing import SecretBox
from tasks.storage import schema
from tests.support.helpers import PUBLIC_URL, authorise_body, job_keys, poll_job
from tests.support.leakcheck import remember_secret
from tests.support.provider import GOOD_KEY, GOOD_SECRET

CALLBACK = "/api/v1/oauth/woo-app-auth"
CALLBACK_URL = f"{PUBLIC_URL}{CALLBACK}"
# What WooCommerce sends (class-wc-auth.php, post_consumer_data).
WOO_HEADERS = {"Content-Type": "application/json;charset=UTF-8", "User-Agent": "WordPress/6.5; https://shop.test"}


def woo_body(store_url: str, **extra):  # type: ignore[no-untyped-def]
    return authorise_body(authentication_implementation_id="test-woo", name="Woo shop",
                          variables=[{"key": "store_url", "value": store_url}], **extra)


async def authorise_woo(client, tenant, store_url: str, **extra) -> tuple[dict, dict[str, str]]:  # type: ignore[no-untyped-def]
    """Submit the authorise; answer the finished job and the redirect's query parameters."""
    answer = await client.post("/api/v1/oauth/authorise", json=woo_body(store_url, **extra),
                               headers={**tenant.headers, "Prefer": "wait=20"})
    assert answer.status == 200, await answer.text()
    job = (await answer.json())["data"]
    assert job["status"] == "succeeded", job
    action = job["result"]["next_action"]
    assert action["type"] == "redirect"
    parts = urlsplit(action["url"])
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{store_url}/wc-auth/v1/authorize"
    query = parse_qs(parts.query, keep_blank_values=True)
    assert all(len(v) == 1 for v in query.values()), query
    return job, {k: v[0] for k, v in query.items()}


def callback(state: str, key: str = GOOD_KEY, secret: str = GOOD_SECRET, key_id: int = 17) -> bytes:
    remember_secret(secret)  # the session's leak check looks for it in Redis and the logs
    return json.dumps({"key_id": key_id, "user_id": state, "consumer_key": key, "consumer_secret": secret,
                       "key_permissions": "read_write"}).encode()


def redis_values(client: redis.Redis) -> list[bytes]:
    """Every value stored in Redis (all keys, all types), for a secret-in-clear check."""
    out: list[bytes] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "string":
            out.append(client.get(key) or b"")
        elif kind == "hash":
            out.extend(b"%s=%s" % kv for kv in client.hgetall(key).items())
        elif kind == "list":
            out.extend(client.lrange(key, 0, -1))
        elif kind == "set":
            out.extend(client.smembers(key))
        elif kind == "zset":
            out.extend(m for m, _ in client.zrange(key, 0, -1, withscores=True))
        elif kind == "stream":
            out.extend(json.dumps(entry, default=repr).encode() for entry in client.xrange(key))
    return out


def jobs_in_redis(client: redis.Redis, tenant: str, job_type: str) -> list[Job]:
    found = []
    for key in job_keys(client, tenant):
        job = Job.from_stored(client.get(key), tenant)
        if job.type == job_type:
            found.append(job)
    return found


async def connector_view(client, tenant, connector_id: str) -> dict:  # type: ignore[no-untyped-def]
    answer = await client.get(f"/api/v1/connectors/{connector_id}", headers=tenant.headers)
    assert answer.status == 200, await answer.text()
    return (await answer.json())["data"]


async def wait_status(client, tenant, connector_id: str, wanted: str, timeout: float = 20.0) -> dict:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout * 10)):
        data = await connector_view(client, tenant, connector_id)
        if data["status"] == wanted:
            return data
        await asyncio.sleep(0.1)
    raise AssertionError(f"connector {connector_id} is {data['status']}, not {wanted}: {data}")


async def test_woo_authorise_redirects_to_the_store_with_the_five_parameters(client, tenant, workers,
                                                                             fresh_provider):
    job, query = await authorise_woo(client, tenant, fresh_provider.base_url)
    assert set(query) == {"app_name", "scope", "user_id", "return_url", "callback_url"}
    assert query["app_name"] == "Woo shop"
    assert query["scope"] == "read_write"
    assert query["callback_url"] == CALLBACK_URL
    assert query["return_url"] == CALLBACK_URL   # no session: authq's own landing page
    assert len(query["user_id"]) >= 32           # the single-use state, unguessable
    connector = await connector_view(client, tenant, job["connector_id"])
    assert connector["status"] == "pending"
    assert connector["type"] == "woocommerce_app"
    assert fresh_provider.seen == []             # nothing is called before the owner approves


async def test_woo_return_url_is_the_sessions(client, tenant, workers, fresh_provider):
    answer = await client.post("/api/v1/sessions", headers=tenant.headers,
                               json={"return_url": "https://app.example/connected?x=1"})
    assert answer.status == 201, await answer.text()
    session_id = (await answer.json())["data"]["id"]
    _, query = await authorise_woo(client, tenant, fresh_provider.base_url, session_id=session_id)
    assert query["return_url"] == "https://app.example/connected?x=1"
    assert query["callback_url"] == CALLBACK_URL


async def test_woo_callback_stores_keys_then_the_job_authorises(client, tenant, workers, fresh_provider,
                                                                redis_client, secret_key):
    job, query = await authorise_woo(client, tenant, fresh_provider.base_url)
    connector_id, state = job["connector_id"], query["user_id"]

    # The store answers the job's key check after 1.5 s: a fast worker would otherwise end the
    # job, and delete its sealed submission, before the test looks at what the 200 stored.
    fresh_provider.delay = 1.5
    answer = await client.post(CALLBACK, data=callback(state), headers=WOO_HEADERS)  # no API key
    assert answer.status == 200, await answer.text()
    assert await answer.read() == b""

    # At the moment of the 200 the keys are already stored: the job and its sealed submission.
    stored = jobs_in_redis(redis_client, tenant.name, "woo_app_auth")
    assert len(stored) == 1, stored
    woo_job = stored[0]
    assert woo_job.connector_id == connector_id
    sealed = redis_client.get(schema.submission(tenant.name, woo_job.id))
    assert sealed is not None
    assert GOOD_SECRET.encode() not in sealed
    opened = SecretBox(secret_key).open_json(sealed.decode())
    assert (opened["consumer_key"], opened["consumer_secret"]) == (GOOD_KEY, GOOD_SECRET)
    leaks = [v for v in redis_values(redis_client) if GOOD_SECRET.encode() in v]
    assert leaks == [], leaks

    finished = await poll_job(client, tenant, woo_job.id)
    assert finished["status"] == "succeeded", finished
    assert finished["type"] == "woo_app_auth"
    assert finished["connector_id"] == connector_id

    # The keys were checked against the store with Basic auth.
    checks = [s for s in fresh_provider.seen if s.path == "/wp-json/wc/v3/system_status"]
    assert len(checks) == 1
    expected = "Basic " + base64.b64encode(f"{GOOD_KEY}:{GOOD_SECRET}".encode()).decode()
    assert checks[0].headers.get("Authorization") == expected

    connector = await connector_view(client, tenant, connector_id)
    assert connector["status"] == "authorised"
    assert connector["authorised_at"] is not None
    assert connector["credentials"]["token_type"] == "basic"
    assert connector["credentials"]["scopes"] == ["read_write"]
    record = Connector.model_validate_json(redis_client.get(schema.connector(tenant.name, connector_id)))
    assert record.credentials_sealed and GOOD_SECRET not in record.credentials_sealed

    # The consumer secret is in no API answer, nor in clear anywhere in Redis afterwards.
    answers = [
        await client.get(f"/api/v1/connectors/{connector_id}", headers=tenant.headers),
        await client.get("/api/v1/connectors", headers=tenant.headers),
        await client.get(f"/api/v1/jobs/{woo_job.id}", headers=tenant.headers),
        await client.get(f"/api/v1/jobs/{job['id']}", headers=tenant.headers),
        await client.get(CALLBACK, params={"success": "1", "user_id": state}),
    ]
    for shown in answers:
        assert shown.status == 200
        assert GOOD_SECRET not in await shown.text()
    leaks = [v for v in redis_values(redis_client) if GOOD_SECRET.encode() in v]
    assert leaks == [], leaks


async def test_woo_callback_replay_and_unknown_state_are_404(client, tenant, workers, fresh_provider, redis_client):
    job, query = await authorise_woo(client, tenant, fresh_provider.base_url)
    state = query["user_id"]
    first = await client.post(CALLBACK, data=callback(state), headers=WOO_HEADERS)
    assert first.status == 200, await first.text()

    replay = await client.post(CALLBACK, data=callback(state, key="ck_other", secret="cs_other"), headers=WOO_HEADERS)
    assert replay.status == 404, await replay.text()
    unknown = await client.post(CALLBACK, data=callback("not-a-state-authq-issued"), headers=WOO_HEADERS)
    assert unknown.status == 404, await unknown.text()

    # A state is good for its own flow only: an OAuth state on the Woo callback, a Woo state on
    # the OAuth redirect.
    oauth_job = (await (await client.post("/api/v1/oauth/authorise", headers={**tenant.headers, "Prefer": "wait=20"},
                                          json=authorise_body(authentication_implementation_id="test-oauth", variables=[
                                              {"key": "base_url", "value": "https://oauth.test"},
                                              {"key": "client_id", "value": "c"},
                                              {"key": "client_secret", "value": "s"}]))).json())["data"]
    assert oauth_job["status"] == "succeeded", oauth_job
    oauth_state = parse_qs(urlsplit(oauth_job["result"]["next_action"]["url"]).query)["state"][0]
    crossed = await client.post(CALLBACK, data=callback(oauth_state), headers=WOO_HEADERS)
    assert crossed.status == 404, await crossed.text()
    fresh_state = (await authorise_woo(client, tenant, fresh_provider.base_url))[1]["user_id"]
    crossed = await client.get("/api/v1/oauth/authenticate", params={"state": fresh_state, "code": "x"},
                               allow_redirects=False)
    assert crossed.status == 400

    await wait_status(client, tenant, job["connector_id"], "authorised")
    assert len(jobs_in_redis(redis_client, tenant.name, "woo_app_auth")) == 1   # the replay queued nothing
    # The connector kept the first keys: the store was checked once, with them.
    checks = [s for s in fresh_provider.seen if s.path == "/wp-json/wc/v3/system_status"]
    assert len(checks) == 1


async def test_woo_callback_with_bad_keys_fails_the_connector(client, tenant, workers, fresh_provider, redis_client):
    job, query = await authorise_woo(client, tenant, fresh_provider.base_url)
    state = query["user_id"]
    answer = await client.post(CALLBACK, data=callback(state, secret="cs_wrong_secret"), headers=WOO_HEADERS)
    assert answer.status == 200, await answer.text()
    assert await answer.read() == b""
    (woo_job,) = jobs_in_redis(redis_client, tenant.name, "woo_app_auth")
    finished = await poll_job(client, tenant, woo_job.id)
    assert finished["status"] == "failed", finished
    assert finished["error"]["code"] == "credentials_rejected", finished["error"]
    assert finished["error"]["retryable"] is False
    assert "cs_wrong_secret" not in json.dumps(finished)
    connector = await connector_view(client, tenant, job["connector_id"])
    assert connector["status"] == "failed"
    assert connector["authorised_at"] is None


async def test_woo_landing_page(client, tenant, workers, fresh_provider):
    job, query = await authorise_woo(client, tenant, fresh_provider.base_url)
    state = query["user_id"]

    waiting = await client.get(CALLBACK, params={"success": "1", "user_id": state})
    assert waiting.status == 200
    assert waiting.headers["Content-Type"].startswith("text/html")
    refused = await client.get(CALLBACK, params={"success": "0", "user_id": state})
    assert refused.status == 200
    assert "text/html" in refused.headers["Content-Type"]

    answer = await client.post(CALLBACK, data=callback(state), headers=WOO_HEADERS)
    assert answer.status == 200
    await wait_status(client, tenant, job["connector_id"], "authorised")
    done = await client.get(CALLBACK, params={"success": "1", "user_id": state})
    assert done.status == 200
    assert done.headers["Content-Type"].startswith("text/html")
    assert "Connected" in await done.text()

    unknown = await client.get(CALLBACK, params={"success": "1", "user_id": "never-issued"})
    assert unknown.status == 400
    assert unknown.headers["Content-Type"].startswith("text/html")


async def test_woo_reauthorise_keeps_the_connector_working_until_new_keys_arrive(client, tenant, workers,
                                                                                fresh_provider, redis_client):
    job, query = await authorise_woo(client, tenant, fresh_provider.base_url)
    connector_id = job["connector_id"]
    assert (await client.post(CALLBACK, data=callback(query["user_id"]), headers=WOO_HEADERS)).status == 200
    await wait_status(client, tenant, connector_id, "authorised")
    stored = redis_client.get(schema.connector(tenant.name, connector_id))
    version = Connector.model_validate_json(stored).credential_version

    for secret, outcome in (("cs_wrong_secret", "failed"), (GOOD_SECRET, "succeeded")):
        answer = await client.patch(f"/api/v1/oauth/{connector_id}/reauthorise", json={"name": "Woo shop 2"},
                                    headers={**tenant.headers, "Prefer": "wait=20"})
        assert answer.status == 200, await answer.text()
        again = (await answer.json())["data"]
        assert again["status"] == "succeeded" and again["connector_id"] == connector_id, again
        state = parse_qs(urlsplit(again["result"]["next_action"]["url"]).query)["user_id"][0]
        assert (await connector_view(client, tenant, connector_id))["status"] == "authorised"   # still working

        before = {j.id for j in jobs_in_redis(redis_client, tenant.name, "woo_app_auth")}
        answer = await client.post(CALLBACK, data=callback(state, secret=secret, key_id=18), headers=WOO_HEADERS)
        assert answer.status == 200
        (woo_job,) = [j for j in jobs_in_redis(redis_client, tenant.name, "woo_app_auth") if j.id not in before]
        finished = await poll_job(client, tenant, woo_job.id)
        assert finished["status"] == outcome, finished
        shown = await connector_view(client, tenant, connector_id)
        assert shown["status"] == "authorised"     # bad new keys leave the old ones in place
        record = Connector.model_validate_json(redis_client.get(schema.connector(tenant.name, connector_id)))
        if outcome == "failed":
            assert finished["error"]["code"] == "credentials_rejected"
            assert shown["name"] == "Woo shop" and record.credential_version == version
        else:
            assert shown["name"] == "Woo shop 2" and record.credential_version == version + 1
