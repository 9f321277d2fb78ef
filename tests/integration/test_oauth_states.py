"""Callbacks that must not complete a connector (contract §5 ``/oauth/authenticate``, §6).

Against the real Authlib server and real workers, as in ``test_oauth_flows.py``:

- refused consent (the server's ``error=access_denied`` redirect, by the GET or the POST
  callback) fails the authenticate job with ``access_denied`` and the connector ``failed``;
- a state used before: the GET answers 400 HTML; through the POST a reused or unknown state
  gives a job failing ``state_invalid`` that changes nothing, and an expired state (its
  Redis key gone, or its own ``expires_at`` past) is unknown;
- another tenant's state is ``state_invalid`` for that tenant and stays usable by its owner;
- RFC 9207: with the catalog's ``issuer``, the right ``iss`` completes; a wrong or missing one
  is ``state_invalid`` at ``iss`` and the code is never exchanged.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tasks.storage import schema, states
from tests.support.helpers import REDIRECT_URI
from tests.support.oauth_helpers import (
    CALLBACK,
    CLIENT_SECRET,
    assert_authorised,
    callback_job_id,
    connector,
    consent,
    job_of,
    new_client_id,
    oauth_body,
    pkce_client,
    post_callback,
    start,
)


@pytest.mark.parametrize("callback", ["get", "post"])
async def test_refused_consent_fails_with_access_denied(client, tenant, workers, fresh_oauth, test_ca, redis_client,
                                                        callback):
    cid = pkce_client(fresh_oauth)
    fresh_oauth.deny_next = "The end user said no."
    job = await start(client, tenant, oauth_body(fresh_oauth.https_url, client_id=cid))
    params = consent(job["result"]["next_action"]["url"], test_ca)
    assert params["error"] == "access_denied" and "code" not in params

    if callback == "get":
        answer = await client.get(CALLBACK, params=params, allow_redirects=False)
        assert answer.status == 200, await answer.text()
        auth_job = await job_of(client, tenant, callback_job_id(redis_client, params["state"]))
    else:
        auth_job = await post_callback(client, tenant, params)  # error, error_description, state, iss
    assert auth_job["status"] == "failed" and auth_job["attempts"] == 1, auth_job
    assert auth_job["error"]["code"] == "access_denied" and auth_job["error"]["retryable"] is False
    assert auth_job["error"]["provider"] == {"error": "access_denied",
                                             "error_description": "The end user said no."}
    data = await connector(client, tenant, job["connector_id"])
    assert data["status"] == "failed" and data["credentials"]["expires_at"] is None
    assert fresh_oauth.count("/token") == 0


async def test_post_callback_reused_or_unknown_state_changes_nothing(client, tenant, workers, fresh_oauth, test_ca):
    cid = pkce_client(fresh_oauth)
    job = await start(client, tenant, oauth_body(fresh_oauth.https_url, client_id=cid))
    params = consent(job["result"]["next_action"]["url"], test_ca)
    first = await post_callback(client, tenant, {"code": params["code"], "state": params["state"]})
    assert first["status"] == "succeeded", first
    before = await connector(client, tenant, job["connector_id"])

    reused = await post_callback(client, tenant, {"code": params["code"], "state": params["state"]})
    assert reused["status"] == "failed" and reused["attempts"] == 1, reused
    assert reused["error"]["code"] == "state_invalid" and reused["error"]["field"] == "state"
    unknown = await post_callback(client, tenant, {"code": params["code"], "state": "never-issued-" + "x" * 30})
    assert unknown["status"] == "failed" and unknown["error"]["code"] == "state_invalid", unknown
    assert unknown["connector_id"] is None
    assert await connector(client, tenant, job["connector_id"]) == before
    assert fresh_oauth.count("/token") == 1  # neither went to the provider


async def test_expired_state_is_unknown(client, tenant, workers, fresh_oauth, test_ca, redis_client):
    cid = pkce_client(fresh_oauth)
    # Expired by Redis (the key's TTL ran out): the GET answers 400.
    job = await start(client, tenant, oauth_body(fresh_oauth.https_url, client_id=cid))
    params = consent(job["result"]["next_action"]["url"], test_ca)
    key = schema.auth_state(params["state"])
    assert redis_client.exists(key) and 0 < redis_client.ttl(key) <= states.OAUTH_STATE_TTL
    redis_client.pexpire(key, 1)
    await asyncio.sleep(0.05)
    assert not redis_client.exists(key)
    answer = await client.get(CALLBACK, params=params, allow_redirects=False)
    assert answer.status == 400 and "text/html" in answer.headers["Content-Type"]
    assert redis_client.get(schema.auth_state_claim(params["state"])) is None

    # Expired by its own expires_at while the key lingers: the POST gives state_invalid.
    job2 = await start(client, tenant, oauth_body(fresh_oauth.https_url, client_id=cid))
    params2 = consent(job2["result"]["next_action"]["url"], test_ca)
    key2 = schema.auth_state(params2["state"])
    record = json.loads(redis_client.get(key2))
    record["expires_at"] = "2020-01-01T00:00:00Z"
    redis_client.set(key2, json.dumps(record), keepttl=True)
    failed = await post_callback(client, tenant, {"code": params2["code"], "state": params2["state"]})
    assert failed["status"] == "failed" and failed["error"]["code"] == "state_invalid", failed
    assert (await client.get(CALLBACK, params=params2, allow_redirects=False)).status == 400

    for made in (job, job2):  # nothing changed: both connectors still wait
        assert (await connector(client, tenant, made["connector_id"]))["status"] == "pending"
    assert fresh_oauth.count("/token") == 0


async def test_another_tenants_state_is_invalid_and_not_used_up(client, tenants, workers, fresh_oauth, test_ca):
    owner, other = tenants
    cid = pkce_client(fresh_oauth)
    job = await start(client, owner, oauth_body(fresh_oauth.https_url, client_id=cid))
    params = consent(job["result"]["next_action"]["url"], test_ca)
    stolen = await post_callback(client, other, {"code": params["code"], "state": params["state"]})
    assert stolen["status"] == "failed" and stolen["error"]["code"] == "state_invalid", stolen
    assert stolen["connector_id"] is None
    mine = await post_callback(client, owner, {"code": params["code"], "state": params["state"]})
    assert mine["status"] == "succeeded", mine
    assert (await connector(client, owner, job["connector_id"]))["status"] == "authorised"


async def test_issuer_is_checked_rfc9207(client, tenant, workers, fresh_oauth, test_ca, redis_client):
    cid = new_client_id()
    fresh_oauth.add_client(cid, CLIENT_SECRET, redirect_uris=[REDIRECT_URI], scope="read write",
                           auth_method="client_secret_post")
    body = oauth_body(fresh_oauth.https_url, "test-oauth-iss", client_id=cid)

    # The right iss (the server's, which the catalog says is the base_url): authorised.
    job = await start(client, tenant, body)
    params = consent(job["result"]["next_action"]["url"], test_ca)
    assert params["iss"] == fresh_oauth.https_url
    assert (await client.get(CALLBACK, params=params, allow_redirects=False)).status == 200
    auth_job = await job_of(client, tenant, callback_job_id(redis_client, params["state"]))
    assert auth_job["status"] == "succeeded", auth_job
    data = await connector(client, tenant, job["connector_id"])
    assert_authorised(data, ["read", "write"])
    (exchange,) = fresh_oauth.records("/token")
    assert exchange.form["client_id"] == cid and exchange.form["client_secret"] == "<redacted>"
    assert "Authorization" not in exchange.headers

    # A wrong iss (a mix-up), and none at all: state_invalid at iss; the code never reaches /token.
    for iss in ("https://evil.example", None):
        job = await start(client, tenant, body)
        params = consent(job["result"]["next_action"]["url"], test_ca)
        forwarded = {"code": params["code"], "state": params["state"]}
        if iss:
            forwarded["iss"] = iss
        failed = await post_callback(client, tenant, forwarded)
        assert failed["status"] == "failed", failed
        assert (failed["error"]["code"], failed["error"]["field"]) == ("state_invalid", "iss")
        assert (await connector(client, tenant, job["connector_id"]))["status"] == "failed"
    assert fresh_oauth.count("/token") == 1


async def test_a_code_is_never_sent_twice(client, tenant, workers, fresh_oauth, test_ca, redis_client):
    """A run that finds the exchange already started (its worker died mid-call) does not
    spend the code again: it fails asking for a new authorisation, and the provider saw
    no second token request."""
    cid = pkce_client(fresh_oauth)
    job = await start(client, tenant, oauth_body(fresh_oauth.https_url, client_id=cid))
    params = consent(job["result"]["next_action"]["url"], test_ca)
    redis_client.set(schema.auth_state_exchange(params["state"]), "job_of_an_earlier_run", ex=600)
    done = await post_callback(client, tenant, {"code": params["code"], "state": params["state"]})
    assert done["status"] == "failed" and done["error"]["code"] == "state_invalid", done
    assert "already spent" in done["error"]["message"]
    assert fresh_oauth.count("/token") == 0
