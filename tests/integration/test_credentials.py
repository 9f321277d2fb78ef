"""``GET /connectors/{id}/credentials`` (contract §9) with real workers and real servers: for
each auth type the headers it answers are accepted by the provider stand-in; an expiring
OAuth 2 token is refreshed first, once however many read it at once; a refresh the provider
refuses makes the connector ``expired`` (409); and no refresh token or client secret is ever
in an answer."""

from __future__ import annotations

import asyncio
import secrets
import ssl

import aiohttp
import pytest
from pydantic import SecretStr

from tests.integration.test_refresh_tokens import CLIENT_SECRET, authorised_connector, token_requests
from tests.integration.test_woo_refresh import CALLBACK, WOO_HEADERS, authorise_woo, callback, wait_status
from tests.support.helpers import authorise_body, basic_body, job_keys, save_connector
from tests.support.oauth_helpers import seconds_from_now
from tests.support.provider import GOOD_KEY, GOOD_SECRET, GOOD_TOKEN

WAIT = {"Prefer": "wait=20"}


@pytest.fixture
def settings(settings, tenants):  # type: ignore[no-untyped-def]
    """The tenants' keys may read credentials (a plain `tenant:key` has manage and proxy only);
    a third key of the first tenant has only manage and proxy."""
    keys = [f"{t.name}:{t.key}:manage+proxy+credentials" for t in tenants]
    return settings.model_copy(update={"api_keys": SecretStr(",".join([*keys, f"{tenants[0].name}:{PLAIN_KEY}"]))})


PLAIN_KEY = "key-plain-" + secrets.token_hex(12)


async def credentials(client, tenant, connector_id: str, **params: str):  # type: ignore[no-untyped-def]
    answer = await client.get(f"/api/v1/connectors/{connector_id}/credentials", params=params,
                              headers=tenant.headers)
    return answer.status, answer.headers, await answer.json()


async def authorised(client, tenant, body) -> str:  # type: ignore[no-untyped-def]
    answer = await client.post("/api/v1/oauth/authorise", json=body, headers={**tenant.headers, **WAIT})
    job = (await answer.json())["data"]
    assert job["status"] == "succeeded", job
    return str(job["connector_id"])


async def provider_answers(url: str, usable: dict, ssl_context: ssl.SSLContext | None = None) -> int:  # type: ignore[type-arg]
    async with aiohttp.ClientSession() as session, session.get(
            url, headers=usable["headers"], params=usable["query"], ssl=ssl_context or False) as answer:
        return answer.status


async def test_basic_credentials_are_accepted_by_the_provider(client, tenant, workers, fresh_provider):
    connector_id = await authorised(client, tenant, basic_body(fresh_provider))
    status, headers, body = await credentials(client, tenant, connector_id)
    assert status == 200 and headers["Cache-Control"] == "no-store"
    usable = body["data"]
    assert usable["connector_id"] == connector_id and usable["type"] == "basic" and usable["expires_at"] is None
    assert usable["values"] == {"username": GOOD_KEY, "password": GOOD_SECRET}
    assert await provider_answers(f"{fresh_provider.base_url}/wp-json/wc/v3/system_status", usable) == 200


async def test_token_credentials_carry_the_catalog_header(client, tenant, workers, fresh_provider):
    connector_id = await authorised(client, tenant, authorise_body(
        authentication_implementation_id="test-token", variables=[
            {"key": "base_url", "value": fresh_provider.base_url}, {"key": "token", "value": GOOD_TOKEN}]))
    _, _, body = await credentials(client, tenant, connector_id)
    usable = body["data"]
    assert usable["headers"] == {"X-Shop-Access-Token": GOOD_TOKEN} and usable["values"] == {"token": GOOD_TOKEN}
    assert await provider_answers(f"{fresh_provider.base_url}/admin/shop.json", usable) == 200


async def test_woocommerce_keys_are_basic_auth_with_consumer_names(client, tenant, workers, fresh_provider):
    job, query = await authorise_woo(client, tenant, fresh_provider.base_url)
    assert (await client.post(CALLBACK, data=callback(query["user_id"]), headers=WOO_HEADERS)).status == 200
    await wait_status(client, tenant, job["connector_id"], "authorised")
    _, _, body = await credentials(client, tenant, job["connector_id"])
    usable = body["data"]
    assert usable["type"] == "woocommerce_app"
    assert usable["values"] == {"consumer_key": GOOD_KEY, "consumer_secret": GOOD_SECRET}
    assert await provider_answers(f"{fresh_provider.base_url}/wp-json/wc/v3/system_status", usable) == 200


@pytest.fixture
def tls(test_ca) -> ssl.SSLContext:  # type: ignore[no-untyped-def]
    context = ssl.create_default_context()
    test_ca.configure_trust(context)
    return context


async def test_an_oauth2_token_is_a_bearer_header_and_never_the_refresh_token(client, tenant, workers, fresh_oauth,
                                                                              test_ca, tls):
    connector_id = await authorised_connector(client, tenant, fresh_oauth, test_ca, f"use-{secrets.token_hex(4)}")
    status, headers, body = await credentials(client, tenant, connector_id)
    assert status == 200 and headers["Cache-Control"] == "no-store"
    usable = body["data"]
    assert set(usable["values"]) == {"access_token", "token_type"} and usable["values"]["token_type"] == "bearer"
    assert usable["headers"] == {"Authorization": f"Bearer {usable['values']['access_token']}"}
    assert usable["expires_at"]
    token = fresh_oauth.token_info(usable["values"]["access_token"])
    assert token is not None and token.refresh_token not in str(body) and CLIENT_SECRET not in str(body)
    assert await provider_answers(f"{fresh_oauth.https_url}/api/me", usable, tls) == 200


@pytest.fixture
async def busy_client(aiohttp_client, settings):  # type: ignore[no-untyped-def]
    """The API with the per-key rate limit raised: two hundred platform flows read at once."""
    from api.app import create_app
    from worker.queues import make_job_queue

    raised = settings.model_copy(update={"api_rate_limit": 1_000_000.0})
    return await aiohttp_client(create_app(raised, make_job_queue(raised)))


async def test_two_hundred_reads_of_an_expiring_token_make_one_refresh(busy_client, tenant, workers, fresh_oauth,
                                                                       test_ca, tls, redis_client):
    client = busy_client
    client_id = f"many-{secrets.token_hex(4)}"
    fresh_oauth.expires_in = 30    # within the default min_ttl (60 s) from the start
    connector_id = await authorised_connector(client, tenant, fresh_oauth, test_ca, client_id)
    fresh_oauth.expires_in = 3600  # the refreshed one is not
    answers = await asyncio.gather(*(credentials(client, tenant, connector_id) for _ in range(200)))
    assert {status for status, _, _ in answers} == {200}
    tokens = {body["data"]["values"]["access_token"] for _, _, body in answers}
    assert len(tokens) == 1
    assert seconds_from_now(answers[0][2]["data"]["expires_at"]) > 3000  # the refreshed token, not the 30 s one
    assert len(token_requests(fresh_oauth, client_id, "refresh_token")) == 1
    refresh_jobs = [raw for raw in map(redis_client.get, job_keys(redis_client, tenant.name))
                    if raw and b'"type":"refresh"' in raw and connector_id.encode() in raw]
    assert len(refresh_jobs) == 1  # one job for the two hundred reads, not one each
    assert await provider_answers(f"{fresh_oauth.https_url}/api/me", answers[0][2]["data"], tls) == 200


async def test_a_refused_refresh_expires_the_connector_and_answers_409(client, tenant, workers, fresh_oauth, test_ca):
    client_id = f"gone-{secrets.token_hex(4)}"
    connector_id = await authorised_connector(client, tenant, fresh_oauth, test_ca, client_id)
    fresh_oauth.revoke_tokens(client_id)  # the user revoked the app at the provider
    status, _, body = await credentials(client, tenant, connector_id, min_ttl="3600")
    assert status == 409 and body["status"] == "expired" and body["message"]
    status, _, body = await credentials(client, tenant, connector_id)  # and so it stays, without asking again
    assert status == 409 and body["status"] == "expired"
    assert len(token_requests(fresh_oauth, client_id, "refresh_token")) == 1


async def test_a_connector_not_authorised_a_bad_min_ttl_and_an_unknown_id(client, tenant, tenants, redis_client,
                                                                          secret_key):
    pending = save_connector(redis_client, secret_key, tenant, status="pending")
    status, _, body = await credentials(client, tenant, pending.id)
    assert status == 409 and body["status"] == "pending"
    for bad in ("-1", "3601", "soon", "", "²", "1.5"):
        status, _, body = await credentials(client, tenant, pending.id, min_ttl=bad)
        assert status == 422 and list(body["errors"]) == ["min_ttl"], (bad, body)
    other = tenants[1]
    status, _, _ = await credentials(client, other, pending.id)  # another tenant's: as if missing
    assert status == 404
    status, _, _ = await credentials(client, tenant, "con_" + "0" * 32)
    assert status == 404


async def test_a_key_without_the_credentials_scope_is_403_and_each_read_is_audited(client, tenant, workers,
                                                                                   fresh_provider):
    connector_id = await authorised(client, tenant, basic_body(fresh_provider))
    plain = {"Authorization": f"Bearer {PLAIN_KEY}"}
    unknown = "con_" + "0" * 32
    for path in (f"/api/v1/connectors/{connector_id}/credentials", f"/api/v1/connectors/{unknown}/credentials"):
        answer = await client.get(path, headers=plain)
        assert answer.status == 403 and await answer.json() == {"message": "This API key lacks the credentials scope."}
    for _ in range(2):
        assert (await credentials(client, tenant, connector_id))[0] == 200
    answer = await client.get("/api/v1/audit-events", params={"type": "credentials.read"}, headers=tenant.headers)
    events = (await answer.json())["data"]
    assert len(events) == 2 and all(e["connector_id"] == connector_id for e in events)
    assert all(e["actor"]["api_key_id"].startswith("key_") and e["details"]["type"] == "basic" for e in events)
    assert GOOD_SECRET not in str(events) and tenant.key not in str(events)
