"""OAuth 2 authorization code end to end against the real loopback authorization server (Authlib).

Real parts only: the app factory, two ``celery -A worker worker`` processes, Redis, and an
Authlib server on loopback TLS (trusted through AUTHQ_CA_BUNDLE). The test plays the
browser (``consent``) and brings the server's redirect to authq by the GET callback or
the POST one. Proven here (contract §5 Authorisation, §6, §7; DOMAIN "OAuth 2 details"):

- the code flow with PKCE S256 via both callbacks leaves the connector ``authorised`` with
  ``expires_at`` and ``scopes``, and no token (nor client secret) appears in any API answer
  or in clear in Redis, though the tokens are kept there, sealed;
- a session's ``return_url`` gets the 303 with ``connector_id`` and ``job_id``;
- a 503 from the token endpoint during the exchange is retried by the same job;
- a platform app authenticates with its own client id and the secret from the environment;
- ``expires_in`` as a string; reauthorise keeps the connector as it was until the callback
  (a refused one leaves it so), then applies the new settings in one step; a connector
  deleted while its reauthorise waits stays deleted (the callback is `connector_not_found`).

Refusals, bad states and RFC 9207 ``iss`` are in ``test_oauth_states.py``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time

from tasks.model.api_keys import static_key_id
from tasks.security.sealing import SecretBox
from tasks.storage import schema
from tests.support.helpers import PLATFORM_APP_SECRET, REDIRECT_URI
from tests.support.oauth_helpers import (
    CALLBACK,
    CLIENT_SECRET,
    assert_authorised,
    assert_no_leak,
    callback_job_id,
    connector,
    consent,
    job_of,
    oauth_body,
    pkce_client,
    post_callback,
    query_of,
    start,
    submit,
    token_values,
    wait_connector,
)


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _assert_pkce_and_basic(server, cid: str, authorize_url: str) -> None:  # type: ignore[no-untyped-def]
    """The authorize URL asked for S256; the one code exchange proved it and used Basic auth."""
    query = query_of(authorize_url)
    assert query["code_challenge_method"] == "S256"
    assert query["client_id"] == cid and query["redirect_uri"] == REDIRECT_URI and query["scope"] == "read"
    exchanges = [r for r in server.records("/token") if r.form.get("grant_type") == "authorization_code"]
    assert len(exchanges) == 1
    form = exchanges[0].form
    assert form["code_verifier"] and _s256(form["code_verifier"]) == query["code_challenge"]
    assert form["redirect_uri"] == REDIRECT_URI
    assert exchanges[0].client_id == cid and exchanges[0].headers["Authorization"] == "Basic <redacted>"
    assert exchanges[0].status == 200


# --- 1. the code flow through each callback ---------------------------------------------

async def test_authorization_code_via_get_callback(client, tenant, workers, fresh_oauth, test_ca, redis_client,
                                                  secret_key):
    cid = pkce_client(fresh_oauth)
    job = await start(client, tenant, oauth_body(fresh_oauth.https_url, client_id=cid))
    assert job["result"]["connector"]["status"] == "pending"
    url = job["result"]["next_action"]["url"]
    assert url.startswith(fresh_oauth.https_url + "/authorize?")
    params = consent(url, test_ca)
    assert set(params) == {"code", "state", "iss"}

    answer = await client.get(CALLBACK, params=params, allow_redirects=False)
    assert answer.status == 200, await answer.text()
    assert "text/html" in answer.headers["Content-Type"]
    auth_job = await job_of(client, tenant, callback_job_id(redis_client, params["state"]))
    assert auth_job["type"] == "authenticate" and auth_job["status"] == "succeeded", auth_job
    assert auth_job["connector_id"] == job["connector_id"] and auth_job["attempts"] == 1
    assert [p["step"] for p in auth_job["progress"]][-2:] == ["token_exchange", "store_connector"]

    data = await connector(client, tenant, job["connector_id"])
    assert_authorised(data, ["read"])
    _assert_pkce_and_basic(fresh_oauth, cid, url)
    tokens = token_values(fresh_oauth, cid)
    assert len(tokens) == 2  # one access token, one refresh token
    await assert_no_leak(client, tenant, redis_client, secrets_=[*tokens, CLIENT_SECRET],
                         job_ids=[job["id"], auth_job["id"]], connector_id=job["connector_id"])
    # ... and yet they are kept: sealed on the connector, they open to the server's own values.
    stored = json.loads(redis_client.get(schema.connector(tenant.name, job["connector_id"])))
    sealed = SecretBox(secret_key).open_json(stored["credentials_sealed"])
    assert sorted([sealed["access_token"], sealed["refresh_token"]]) == sorted(tokens)

    again = await client.get(CALLBACK, params=params, allow_redirects=False)  # the state is single-use
    assert again.status == 400 and "text/html" in again.headers["Content-Type"]
    assert "not valid" in await again.text()
    assert fresh_oauth.count("/token") == 1


async def test_authorization_code_via_post_callback(client, tenant, workers, fresh_oauth, test_ca, redis_client):
    cid = pkce_client(fresh_oauth)
    job = await start(client, tenant, oauth_body(fresh_oauth.https_url, client_id=cid))
    url = job["result"]["next_action"]["url"]
    params = consent(url, test_ca)

    auth_job = await post_callback(client, tenant, {"code": params["code"], "state": params["state"]})
    assert auth_job["type"] == "authenticate" and auth_job["status"] == "succeeded", auth_job
    assert auth_job["connector_id"] == job["connector_id"] and auth_job["attempts"] == 1
    shown = auth_job["result"]["connector"]
    assert_authorised(shown, ["read"])
    assert shown == await connector(client, tenant, job["connector_id"])
    _assert_pkce_and_basic(fresh_oauth, cid, url)
    tokens = token_values(fresh_oauth, cid)
    assert len(tokens) == 2
    await assert_no_leak(client, tenant, redis_client, secrets_=[*tokens, CLIENT_SECRET],
                         job_ids=[job["id"], auth_job["id"]], connector_id=job["connector_id"])


async def test_code_exchange_503_is_retried_by_the_same_job(client, tenant, workers, fresh_oauth, test_ca):
    cid = pkce_client(fresh_oauth)
    job = await start(client, tenant, oauth_body(fresh_oauth.https_url, client_id=cid))
    params = consent(job["result"]["next_action"]["url"], test_ca)
    fresh_oauth.script_token((503, {"error": "temporarily_unavailable"}))
    auth_job = await post_callback(client, tenant, {"code": params["code"], "state": params["state"]})
    # The second attempt still holds the state's claim, and the code (never spent) works.
    assert auth_job["status"] == "succeeded" and auth_job["attempts"] == 2, auth_job
    assert [r.status for r in fresh_oauth.records("/token")] == [503, 200]
    assert_authorised(auth_job["result"]["connector"], ["read"])


# --- 2. a session's return_url ------------------------------------------------------------

async def test_get_callback_with_session_redirects_to_return_url(client, tenant, workers, fresh_oauth, test_ca):
    cid = pkce_client(fresh_oauth)
    made = await client.post("/api/v1/sessions", json={"return_url": "https://app.example/done"},
                             headers=tenant.headers)
    assert made.status == 201, await made.text()
    session_id = (await made.json())["data"]["id"]
    job = await start(client, tenant, oauth_body(fresh_oauth.https_url, client_id=cid, session_id=session_id))
    params = consent(job["result"]["next_action"]["url"], test_ca)

    answer = await client.get(CALLBACK, params=params, allow_redirects=False)
    assert answer.status == 303, await answer.text()
    location = answer.headers["Location"]
    assert location.startswith("https://app.example/done?")
    back = query_of(location)
    assert set(back) == {"connector_id", "job_id"} and back["connector_id"] == job["connector_id"]
    auth_job = await job_of(client, tenant, back["job_id"])
    assert auth_job["type"] == "authenticate" and auth_job["status"] == "succeeded", auth_job
    data = await connector(client, tenant, job["connector_id"])
    assert data["status"] == "authorised" and data["session_id"] == session_id


# --- 6. platform app, 7. expires_in as a string -------------------------------------------

async def test_platform_app_authenticates_with_its_own_client(client, tenant, workers, fresh_oauth, test_ca,
                                                              redis_client):
    fresh_oauth.add_client("platform-client", PLATFORM_APP_SECRET, redirect_uris=[REDIRECT_URI], scope="read")
    earlier = len(fresh_oauth.issued_tokens("platform-client"))  # the client id is fixed: skip others' tokens
    body = oauth_body(fresh_oauth.https_url, client_id=None, client_secret=None, platform_app_key="test-app")
    job = await start(client, tenant, body)
    url = job["result"]["next_action"]["url"]
    assert query_of(url)["client_id"] == "platform-client"
    params = consent(url, test_ca)
    auth_job = await post_callback(client, tenant, {"code": params["code"], "state": params["state"]})
    assert auth_job["status"] == "succeeded", auth_job
    assert auth_job["result"]["connector"]["status"] == "authorised"
    (exchange,) = fresh_oauth.records("/token")
    assert exchange.status == 200 and exchange.client_id == "platform-client"
    assert exchange.headers["Authorization"] == "Basic <redacted>"  # the secret was right: the server said 200
    (issued,) = fresh_oauth.issued_tokens("platform-client")[earlier:]
    tokens = [issued.access_token, issued.refresh_token]
    own = {v["key"]: v["has_value"] for v in auth_job["result"]["connector"]["variables"]}
    assert own == {"base_url": True, "client_id": False, "client_secret": False}  # the app's are not copied in
    await assert_no_leak(client, tenant, redis_client, secrets_=[*tokens, PLATFORM_APP_SECRET],
                         job_ids=[job["id"], auth_job["id"]], connector_id=job["connector_id"])


async def test_expires_in_as_a_string(client, tenant, workers, fresh_oauth, test_ca):
    fresh_oauth.expires_in_as_string = True
    cid = pkce_client(fresh_oauth)
    job = await start(client, tenant, oauth_body(fresh_oauth.https_url, client_id=cid))
    params = consent(job["result"]["next_action"]["url"], test_ca)
    auth_job = await post_callback(client, tenant, {"code": params["code"], "state": params["state"]})
    assert auth_job["status"] == "succeeded", auth_job
    assert_authorised(await connector(client, tenant, job["connector_id"]), ["read"])


# --- 8. reauthorise -----------------------------------------------------------------------

async def _authorised(client, tenant, server, test_ca, cid: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """A connector authorised through the code flow (POST callback): its view."""
    job = await start(client, tenant, oauth_body(server.https_url, client_id=cid))
    params = consent(job["result"]["next_action"]["url"], test_ca)
    done = await post_callback(client, tenant, {"code": params["code"], "state": params["state"]})
    assert done["status"] == "succeeded", done
    return await connector(client, tenant, job["connector_id"])


async def test_reauthorise_keeps_the_connector_until_the_callback(client, tenant, workers, fresh_oauth, test_ca):
    cid = pkce_client(fresh_oauth)
    before = await _authorised(client, tenant, fresh_oauth, test_ca, cid)
    connector_id = before["id"]
    new_cid = pkce_client(fresh_oauth)  # the reauthorise moves the connector to another client

    re_job = await submit(client, tenant, "PATCH", f"/api/v1/oauth/{connector_id}/reauthorise", {
        "name": "Renamed shop", "timezone": "Europe/Paris",
        "variables": [{"key": "client_id", "value": new_cid}]})
    assert re_job["type"] == "reauthorise" and re_job["status"] == "succeeded", re_job
    assert re_job["connector_id"] == connector_id
    assert re_job["result"]["connector"] == before
    url = re_job["result"]["next_action"]["url"]
    assert re_job["result"]["next_action"]["type"] == "redirect" and url.startswith(fresh_oauth.https_url)
    assert query_of(url)["client_id"] == new_cid and query_of(url)["code_challenge_method"] == "S256"
    assert await connector(client, tenant, connector_id) == before  # still authorised, old name

    params = consent(url, test_ca)
    assert await connector(client, tenant, connector_id) == before
    answer = await client.get(CALLBACK, params=params, allow_redirects=False)
    assert answer.status == 200
    after = await wait_connector(client, tenant, connector_id, lambda c: c["name"] != before["name"])
    assert after["name"] == "Renamed shop" and after["timezone"] == "Europe/Paris"
    assert next(v for v in after["variables"] if v["key"] == "client_id")["value"] == new_cid
    assert after["status"] == "authorised" and after["id"] == connector_id
    assert after["authorised_at"] > before["authorised_at"] and after["created_at"] == before["created_at"]
    assert_authorised(after, ["read"])
    exchange = fresh_oauth.records("/token")[-1]
    assert exchange.client_id == new_cid and exchange.status == 200  # the new settings made the exchange
    assert len(fresh_oauth.issued_tokens(new_cid)) == 1
    listed = await client.get("/api/v1/connectors?per_page=100", headers=tenant.headers)
    assert [c["id"] for c in (await listed.json())["data"]].count(connector_id) == 1
    # Audited: the creation (by the key), and the re-authorisation once the callback made it (by the
    # browser: an address and no key); not the reauthorise job that only sent the user away.
    deadline = time.monotonic() + 10
    while True:
        answer = await client.get(f"/api/v1/audit-events?connector_id={connector_id}", headers=tenant.headers)
        audited = (await answer.json())["data"]
        if len(audited) >= 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert [(e["type"], e["details"]["job_type"], e["actor"]) for e in audited] == [
        ("connector.reauthorised", "authenticate", {"api_key_id": None, "ip": "127.0.0.1"}),
        ("connector.created", "authorise", {"api_key_id": static_key_id(tenant.key), "ip": "127.0.0.1"})]


async def test_refused_reauthorise_leaves_the_connector_working(client, tenant, workers, fresh_oauth, test_ca):
    cid = pkce_client(fresh_oauth)
    before = await _authorised(client, tenant, fresh_oauth, test_ca, cid)
    re_job = await submit(client, tenant, "PATCH", f"/api/v1/oauth/{before['id']}/reauthorise", {"name": "Renamed"})
    fresh_oauth.deny_next = True
    params = consent(re_job["result"]["next_action"]["url"], test_ca)
    refused = await post_callback(client, tenant, params)
    assert refused["status"] == "failed" and refused["error"]["code"] == "access_denied", refused
    assert await connector(client, tenant, before["id"]) == before  # authorised, old name, old credentials


async def test_connector_deleted_during_reauthorise_stays_deleted(client, tenant, workers, fresh_oauth, test_ca):
    cid = pkce_client(fresh_oauth)
    connector_id = (await _authorised(client, tenant, fresh_oauth, test_ca, cid))["id"]
    re_job = await submit(client, tenant, "PATCH", f"/api/v1/oauth/{connector_id}/reauthorise", {"name": "Renamed"})
    params2 = consent(re_job["result"]["next_action"]["url"], test_ca)
    gone = await client.delete(f"/api/v1/connectors/{connector_id}", headers=tenant.headers)
    assert gone.status == 204

    late = await post_callback(client, tenant, {"code": params2["code"], "state": params2["state"]})
    assert late["status"] == "failed" and late["error"]["code"] == "connector_not_found", late
    shown = await client.get(f"/api/v1/connectors/{connector_id}", headers=tenant.headers)
    assert shown.status == 404  # the callback did not bring it back
    assert fresh_oauth.count("/token") == 1  # nor spent the code for nothing
