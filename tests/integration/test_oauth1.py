"""OAuth 1.0a against a real provider (Authlib's server side on loopback, verifying every
signature, timestamp and nonce): the three-legged ``oauth1`` flow and NetSuite-style
token-based authentication (``oauth1_token``). Contract §4 (types, template filters), §5 (the
OAuth 1.0a callback), §9 (what the credentials endpoint and the proxy give).

Proven here:
- ``oauth1``: a request token with ``oauth_callback`` = authq's redirect URI, the redirect to
  the authorize URL carrying it, the callback by GET (the provider's redirect) and by POST (a
  front end), the access-token exchange; HMAC-SHA1 and HMAC-SHA256 (with a realm); a wrong
  verifier changes nothing (the connector stays pending and the right verifier still completes
  it); a replayed ``oauth_token`` by either callback changes nothing; ``authorised``; no token
  secret in any answer or in Redis;
- a wrong consumer secret is ``credentials_rejected`` at the request token, before any redirect;
- a reauthorise keeps the old token credentials signing until its callback replaces them;
- ``oauth1_token``: the check signed with HMAC-SHA256 and the realm ``1234567_SB1``, sent to the
  account's ``1234567-sb1`` part, both from the one account id ``1234567_SB1``; a wrong token
  secret is ``credentials_rejected``; the proxy signs each request (query and form body
  included) and the provider accepts it; the credentials endpoint gives what a signer needs.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from pydantic import SecretStr

from tests.support.helpers import REDIRECT_URI, authorise_body, poll_job
from tests.support.leakcheck import remember_secret
from tests.support.oauth1_server import OAuth1Server
from tests.support.oauth_helpers import (
    CALLBACK,
    assert_no_leak,
    callback_job_id,
    connector,
    post_callback,
    start,
    submit,
)

AUTHORISE = "/api/v1/oauth/authorise"


@pytest.fixture(scope="module")
def oauth1() -> Iterator[OAuth1Server]:
    server = OAuth1Server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(settings, tenants):  # type: ignore[no-untyped-def]
    """The tenants' keys may also read credentials (contract §9)."""
    keys = [f"{t.name}:{t.key}:manage+proxy+credentials" for t in tenants]
    return settings.model_copy(update={"api_keys": SecretStr(",".join(keys))})


def _consumer(server: OAuth1Server) -> tuple[str, str]:
    key, secret = f"ck-{secrets.token_hex(4)}", f"cs-{secrets.token_urlsafe(18)}"
    server.add_client(key, secret)
    return key, secret


def _oauth1_body(server: OAuth1Server, impl: str, key: str, secret: str) -> dict[str, Any]:
    return authorise_body(authentication_implementation_id=impl, variables=[
        {"key": "base_url", "value": server.url}, {"key": "consumer_key", "value": key},
        {"key": "consumer_secret", "value": secret}])


def _approve(url: str) -> dict[str, str]:
    """The browser at the provider: it approves and is sent back to authq's redirect URI."""
    with httpx2.Client(follow_redirects=False) as browser:
        answer = browser.get(url)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.mark.parametrize(("impl", "method", "via"), [("test-oauth1", "HMAC-SHA1", "get"),
                                                     ("test-oauth1-sha256", "HMAC-SHA256", "post")])
async def test_the_three_legged_flow_end_to_end(client, tenant, workers, oauth1, redis_client, impl, method, via):
    key, secret = _consumer(oauth1)
    job = await start(client, tenant, _oauth1_body(oauth1, impl, key, secret))
    connector_id = job["connector_id"]
    url = job["result"]["next_action"]["url"]
    assert url.startswith(f"{oauth1.url}/oauth1/authorize?oauth_token=rt-"), url
    (asked,) = [r for r in oauth1.records("/oauth1/request_token") if r.status == 200][-1:]
    assert asked.signature_method == method and asked.realm == ("Photos" if method == "HMAC-SHA256" else None)

    answer = _approve(url)
    assert set(answer) == {"oauth_token", "oauth_verifier"}
    # A wrong verifier: the provider refuses it, and nothing changes.
    wrong = await post_callback(client, tenant, {"oauth_token": answer["oauth_token"], "oauth_verifier": "nope"})
    assert wrong["status"] == "failed" and wrong["error"]["code"] == "state_invalid", wrong
    assert wrong["error"]["field"] == "oauth_verifier"
    pending = await connector(client, tenant, connector_id)
    assert pending["status"] == "pending" and pending["authorised_at"] is None

    if via == "get":
        page = await client.get(CALLBACK, params=answer, allow_redirects=False)
        assert page.status == 200, await page.text()
        done = await poll_job(client, tenant, callback_job_id(redis_client, answer["oauth_token"]))
    else:
        done = await post_callback(client, tenant, answer)
    assert done["status"] == "succeeded", done
    data = done["result"]["connector"]
    assert data["status"] == "authorised" and data["credentials"]["token_type"] == "oauth1"
    exchanges = oauth1.records("/oauth1/access_token")[-2:]
    assert [r.status for r in exchanges] == [400, 200] and exchanges[1].signature_method == method

    # The request token is spent: a replay by either callback changes nothing (nor is it sent again).
    sent = len(oauth1.records("/oauth1/access_token"))
    replay = await client.get(CALLBACK, params=answer, allow_redirects=False)
    assert replay.status == 400
    replayed = await post_callback(client, tenant, answer)
    assert replayed["status"] == "failed" and replayed["error"]["code"] == "state_invalid"
    after = await connector(client, tenant, connector_id)
    assert (after["status"], after["authorised_at"], after["updated_at"]) == (
        "authorised", data["authorised_at"], data["updated_at"])
    assert len(oauth1.records("/oauth1/access_token")) == sent

    # The proxy signs each request with the token credentials: the provider verifies it.
    proxied = await client.get(f"/api/v1/connectors/{connector_id}/proxy/me?page=2", headers=tenant.headers)
    assert proxied.status == 200, await proxied.text()
    assert (await proxied.json())["user"] == oauth1.user
    (issued,) = oauth1.issued_tokens(key)
    await assert_no_leak(client, tenant, redis_client, secrets_=[secret, issued.oauth_token_secret],
                         job_ids=[job["id"], wrong["id"], done["id"], replayed["id"]], connector_id=connector_id)


def _tba_body(server: OAuth1Server, key: str, secret: str, token: str, token_secret: str) -> dict[str, Any]:
    return authorise_body(authentication_implementation_id="test-netsuite-tba", variables=[
        {"key": "base_url", "value": server.url}, {"key": "account_id", "value": "1234567_SB1"},
        {"key": "consumer_key", "value": key}, {"key": "consumer_secret", "value": secret},
        {"key": "token_id", "value": token}, {"key": "token_secret", "value": token_secret}])


async def test_netsuite_token_based_auth(client, tenant, workers, oauth1, redis_client):
    key, secret = _consumer(oauth1)
    token, token_secret = f"tid-{secrets.token_hex(6)}", f"ts-{secrets.token_urlsafe(18)}"
    oauth1.add_token(key, token, token_secret)
    job = await submit(client, tenant, "POST", AUTHORISE, _tba_body(oauth1, key, secret, token, token_secret))
    assert job["status"] == "succeeded", job
    data = job["result"]["connector"]
    assert data["status"] == "authorised" and data["credentials"]["token_type"] == "oauth1"
    (check,) = oauth1.records("/1234567-sb1/services/rest/record/v1/metadata-catalog")
    assert (check.status, check.realm, check.signature_method) == (200, "1234567_SB1", "HMAC-SHA256")

    # Every proxied request is signed for itself: its query and its form body are covered.
    base = f"/api/v1/connectors/{job['connector_id']}/proxy"
    got = await client.get(f"{base}/record/v1/customer?limit=5&q=a%20b", headers=tenant.headers)
    assert got.status == 200, await got.text()
    posted = await client.post(f"{base}/record/v1/customer", data={"companyName": "Acme & Co", "n": "1"},
                               headers=tenant.headers)
    assert posted.status == 200, await posted.text()
    (form,) = [r for r in oauth1.records("/1234567-sb1/services/rest/record/v1/customer") if r.method == "POST"]
    assert form.status == 200 and form.realm == "1234567_SB1" and form.form["companyName"] == "Acme & Co"

    # What the platform gets to sign its own requests with (contract §9): no ready header.
    answer = await client.get(f"/api/v1/connectors/{job['connector_id']}/credentials", headers=tenant.headers)
    assert answer.status == 200, await answer.text()
    usable = (await answer.json())["data"]
    assert usable["headers"] == {} and usable["query"] == {}
    assert usable["values"] == {"consumer_key": key, "consumer_secret": secret, "token": token,
                                "token_secret": token_secret, "signature_method": "HMAC-SHA256",
                                "realm": "1234567_SB1"}
    await assert_no_leak(client, tenant, redis_client, secrets_=[secret, token_secret], job_ids=[job["id"]],
                         connector_id=job["connector_id"])


async def test_a_wrong_token_secret_is_credentials_rejected(client, tenant, workers, oauth1):
    key, secret = _consumer(oauth1)
    token = f"tid-{secrets.token_hex(6)}"
    oauth1.add_token(key, token, f"ts-{secrets.token_urlsafe(18)}")
    wrong = f"ts-wrong-{secrets.token_urlsafe(12)}"
    remember_secret(wrong)
    job = await submit(client, tenant, "POST", AUTHORISE, _tba_body(oauth1, key, secret, token, wrong))
    assert job["status"] == "failed" and job["error"]["code"] == "credentials_rejected", job
    assert oauth1.records()[-1].error == "invalid_signature"


async def test_a_wrong_consumer_secret_is_credentials_rejected_before_any_redirect(client, tenant, workers, oauth1):
    key, _ = _consumer(oauth1)
    wrong = f"cs-wrong-{secrets.token_urlsafe(12)}"
    remember_secret(wrong)
    job = await submit(client, tenant, "POST", AUTHORISE, _oauth1_body(oauth1, "test-oauth1", key, wrong))
    assert job["status"] == "failed" and job["error"]["code"] == "credentials_rejected", job
    assert job["result"] is None or job["result"].get("next_action") is None
    assert oauth1.records("/oauth1/request_token")[-1].status == 401
    shown = await connector(client, tenant, job["connector_id"])
    assert shown["status"] == "failed"


async def test_a_reauthorise_keeps_the_old_tokens_until_its_callback(client, tenant, workers, oauth1):
    key, secret = _consumer(oauth1)
    job = await start(client, tenant, _oauth1_body(oauth1, "test-oauth1", key, secret))
    first = await post_callback(client, tenant, _approve(job["result"]["next_action"]["url"]))
    assert first["status"] == "succeeded", first
    connector_id = job["connector_id"]
    (old,) = oauth1.issued_tokens(key)

    again = await submit(client, tenant, "PATCH", f"/api/v1/oauth/{connector_id}/reauthorise", {"name": "Renewed"})
    assert again["status"] == "succeeded" and again["result"]["next_action"]["type"] == "redirect", again
    still = await connector(client, tenant, connector_id)
    assert still["name"] != "Renewed" and still["status"] == "authorised"
    proxied = await client.get(f"/api/v1/connectors/{connector_id}/proxy/me", headers=tenant.headers)
    assert proxied.status == 200  # the old token credentials still sign

    done = await post_callback(client, tenant, _approve(again["result"]["next_action"]["url"]))
    assert done["status"] == "succeeded", done
    assert done["result"]["connector"]["name"] == "Renewed"
    (new,) = [t for t in oauth1.issued_tokens(key) if t.oauth_token != old.oauth_token]
    answer = await client.get(f"/api/v1/connectors/{connector_id}/credentials", headers=tenant.headers)
    assert (await answer.json())["data"]["values"]["token"] == new.oauth_token
