"""A secret is only ever sent to the host it was given for (contract §5).

A reauthorise that changes where the implementation's URLs point (a variable in a URL's
scheme, host or port, or another implementation) must give every secret variable again,
else ``422`` at ``variables`` naming them. The reproduction: authorise ``test-basic`` (the
WooCommerce shape, ``{{base_url}}/wp-json/...``) against one loopback server, then reauthorise
changing only ``base_url`` to a second one: the second server must never receive the secret.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.support.helpers import Tenant, basic_body, poll_job, save_connector
from tests.support.leakcheck import remember_secret
from tests.support.provider import GOOD_KEY, GOOD_SECRET, start_provider

AUTHORISE = "/api/v1/oauth/authorise"
STORED_AT = "http://127.0.0.1:9"  # save_connector's base_url
OTHER_SECRET = "cs_given_for_the_new_host_0042"
remember_secret(OTHER_SECRET)


def reauthorise_url(connector_id: str) -> str:
    return f"/api/v1/oauth/{connector_id}/reauthorise"


async def _refused(client, tenant: Tenant, redis_client, connector_id: str, body: dict,  # type: ignore[no-untyped-def]
                   *names: str) -> None:
    jobs = set(redis_client.scan_iter(match=f"authq:t:{tenant.name}:job:*"))
    answer = await client.patch(reauthorise_url(connector_id), json=body, headers=tenant.headers)
    text = await answer.text()
    assert answer.status == 422, text
    errors = json.loads(text)["errors"]
    assert list(errors) == ["variables"], errors
    for name in names:
        assert any(name in message for message in errors["variables"]), (name, errors)
    assert set(redis_client.scan_iter(match=f"authq:t:{tenant.name}:job:*")) == jobs  # nothing queued


async def _accepted(client, tenant: Tenant, connector_id: str, body: dict) -> dict:  # type: ignore[no-untyped-def,type-arg]
    answer = await client.patch(reauthorise_url(connector_id), json=body, headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    return dict((await answer.json())["data"])


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:10", "http://127.0.0.2:9", "https://127.0.0.1:9",
                                      "http://localhost:9", "http://shop.example"])
async def test_moving_base_url_without_the_secret_is_422_naming_it(client, tenant, redis_client, secret_key, base_url):
    connector = save_connector(redis_client, secret_key, tenant)
    await _refused(client, tenant, redis_client, connector.id,
                   {"variables": [{"key": "base_url", "value": base_url}]}, "consumer_secret", "base_url")


async def test_a_move_by_variable_id_is_seen_too(client, tenant, redis_client, secret_key):
    connector = save_connector(redis_client, secret_key, tenant)
    base_url = connector.variable("base_url")
    assert base_url is not None
    await _refused(client, tenant, redis_client, connector.id,
                   {"variables": [{"id": base_url.id, "value": "http://127.0.0.1:10"}]}, "consumer_secret")


async def test_moving_with_the_secret_given_again_is_accepted(client, tenant, redis_client, secret_key):
    connector = save_connector(redis_client, secret_key, tenant)
    await _accepted(client, tenant, connector.id, {"variables": [
        {"key": "base_url", "value": "http://127.0.0.1:10"},
        {"key": "consumer_secret", "value": OTHER_SECRET}]})


@pytest.mark.parametrize("base_url", [f"{STORED_AT}/shops/other", f"{STORED_AT}/", "HTTP://127.0.0.1:9"])
async def test_the_same_scheme_host_and_port_is_not_a_move(client, tenant, redis_client, secret_key, base_url):
    """Only where a URL points counts: a new path under the same origin keeps the secret."""
    connector = save_connector(redis_client, secret_key, tenant)
    await _accepted(client, tenant, connector.id, {"variables": [{"key": "base_url", "value": base_url}]})


async def test_a_variable_outside_the_urls_authority_is_not_a_move(client, tenant, redis_client, secret_key):
    connector = save_connector(redis_client, secret_key, tenant)
    await _accepted(client, tenant, connector.id, {"variables": [{"key": "consumer_key", "value": "ck_other"}]})


async def test_another_implementation_needs_the_secrets_again(client, tenant, redis_client, secret_key):
    """Another implementation's URLs point wherever its templates say: every stored secret again."""
    connector = save_connector(redis_client, secret_key, tenant)
    body = {"authentication_implementation_id": "test-token", "type": "token",
            "variables": [{"key": "token", "value": "tok_new_value_123", "secret": True}]}
    remember_secret("tok_new_value_123")
    await _refused(client, tenant, redis_client, connector.id, body, "consumer_secret", "the implementation")
    body["variables"].append({"key": "consumer_secret", "value": OTHER_SECRET})
    await _accepted(client, tenant, connector.id, body)


def _basic_of(seen) -> tuple[str, str] | None:  # type: ignore[no-untyped-def]
    header = seen.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user, password


async def test_the_second_server_never_receives_the_stored_secret(client, tenant, workers, fresh_provider,
                                                                  redis_client):
    """The issue's reproduction, end to end with real workers and two loopback servers."""
    answer = await client.post(AUTHORISE, json=basic_body(fresh_provider), headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    done = await poll_job(client, tenant, (await answer.json())["data"]["id"])
    assert done["status"] == "succeeded", done
    connector_id = str(done["connector_id"])
    assert [_basic_of(s) for s in fresh_provider.seen] == [(GOOD_KEY, GOOD_SECRET)]

    second, stop = start_provider()
    try:
        moved = {"variables": [{"key": "base_url", "value": second.base_url}]}
        await _refused(client, tenant, redis_client, connector_id, moved, "consumer_secret")
        assert second.seen == []  # nothing was queued, nothing was sent

        # Given again, for the new host, the secret goes there (and only the one given now).
        given = {"variables": [*moved["variables"], {"key": "consumer_secret", "value": GOOD_SECRET}]}
        job = await _accepted(client, tenant, connector_id, given)
        assert (await poll_job(client, tenant, job["id"]))["status"] == "succeeded"
        assert [_basic_of(s) for s in second.seen] == [(GOOD_KEY, GOOD_SECRET)]
        assert len(fresh_provider.seen) == 1
    finally:
        stop()
