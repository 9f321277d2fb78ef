"""A client-credentials connector whose provider issued a refresh token outside authq (Amazon
SP-API's self-authorisation; the catalog's ``refresh_token_variable``), against the real
OAuth server.

Proven here: the first token is the refresh grant for the given refresh token, the client
authenticating as the catalog says; the token goes in the header the catalog names
(``token_header``: SP-API's ``x-amz-access-token``) in the credentials endpoint's answer; a
later refresh sends the rotated refresh token (the server refuses a reused one and revokes the
grant); no token or secret in any answer or in Redis.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from tests.integration.test_refresh_tokens import CLIENT_SECRET, authorised_connector
from tests.support.helpers import authorise_body, poll_job
from tests.support.oauth_helpers import assert_no_leak, new_client_id, submit, token_values


@pytest.fixture
def settings(settings, tenants):  # type: ignore[no-untyped-def]
    keys = [f"{t.name}:{t.key}:manage+proxy+credentials" for t in tenants]
    return settings.model_copy(update={"api_keys": SecretStr(",".join(keys))})


async def test_a_given_refresh_token_is_traded_and_then_rotated(client, tenant, workers, fresh_oauth, test_ca,
                                                                redis_client):
    cid = new_client_id("lwa")
    first = await authorised_connector(client, tenant, fresh_oauth, test_ca, cid)
    (issued,) = fresh_oauth.issued_tokens(cid)
    given = issued.refresh_token
    assert given
    body = authorise_body(authentication_implementation_id="test-cc-refresh-token", variables=[
        {"key": "base_url", "value": fresh_oauth.https_url}, {"key": "client_id", "value": cid},
        {"key": "client_secret", "value": CLIENT_SECRET}, {"key": "refresh_token", "value": given}])
    job = await submit(client, tenant, "POST", "/api/v1/oauth/authorise", body)
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["connector"]["status"] == "authorised"
    traded = fresh_oauth.records("/token")[-1]
    assert traded.status == 200 and traded.form["grant_type"] == "refresh_token"
    assert traded.headers["Authorization"] == "Basic <redacted>"  # client_secret_basic, as the catalog says
    connector_id = job["connector_id"]

    answer = await client.get(f"/api/v1/connectors/{connector_id}/credentials", headers=tenant.headers)
    assert answer.status == 200, await answer.text()
    usable = (await answer.json())["data"]
    token = usable["values"]["access_token"]
    assert usable["headers"] == {"x-amz-access-token": token}
    assert fresh_oauth.is_active(token)

    # The server rotated the refresh token: a refresh must send the new one (the old one would be
    # refused, and its reuse would revoke the grant).
    refresh = await client.post(f"/api/v1/connectors/{connector_id}/refresh", headers=tenant.headers)
    assert refresh.status == 202, await refresh.text()
    done = await poll_job(client, tenant, (await refresh.json())["data"]["id"])
    assert done["status"] == "succeeded", done
    again = fresh_oauth.records("/token")[-1]
    assert again.status == 200 and again.form["grant_type"] == "refresh_token"
    await assert_no_leak(client, tenant, redis_client, secrets_=[*token_values(fresh_oauth, cid), CLIENT_SECRET],
                         job_ids=[job["id"], done["id"]], connector_id=connector_id)
    assert first != connector_id
