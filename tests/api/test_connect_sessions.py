"""Sessions' connect-page fields (contract §5, §11): ``defaults`` validated by the authorise
rules, ``connector_id`` the tenant's own, and ``connect_url`` whose token is kept only hashed."""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.support.helpers import PUBLIC_URL, save_connector

SESSIONS = "/api/v1/sessions"
DEFAULTS = {"name": "Shop", "timezone": "Europe/London", "date_format": "Y-m-d", "rate_limit_unit": "minute",
            "rate_limit_duration": 60, "connection_pool_id": 3, "certificate_id": "crt_x"}


async def _create(client, tenant, body, status=201):  # type: ignore[no-untyped-def]
    answer = await client.post(SESSIONS, json=body, headers=tenant.headers)
    assert answer.status == status, await answer.text()
    return await answer.json()


async def test_connect_url_token_is_256_bits_kept_only_as_its_hash(client, tenant, redis_client) -> None:
    data = (await _create(client, tenant, {"defaults": DEFAULTS}))["data"]
    match = re.fullmatch(re.escape(PUBLIC_URL) + r"/connect/([A-Za-z0-9_-]{43})", data["connect_url"])
    assert match, data["connect_url"]
    token = match.group(1)
    assert data["defaults"] == DEFAULTS and data["connector_id"] is None
    stored = [(k, redis_client.get(k)) for k in redis_client.scan_iter(match="authq:*", count=1000)
              if redis_client.type(k) == b"string"]
    assert not [k for k, v in stored if token.encode() in k or (v and token.encode() in v)]
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert redis_client.get(f"authq:connect:{digest}") == f"{tenant.name}/{data['id']}".encode()
    # Another session gets another token.
    other = (await _create(client, tenant, {}))["data"]
    assert other["connect_url"] != data["connect_url"] and other["defaults"] is None


@pytest.mark.parametrize(("defaults", "path"), [
    ({"timezone": "Mars/Olympus"}, "defaults.timezone"),
    ({"date_format": ""}, "defaults.date_format"),
    ({"rate_limit_unit": "week"}, "defaults.rate_limit_unit"),
    ({"rate_limit_duration": 0}, "defaults.rate_limit_duration"),
    ({"rate_limit_duration": "5"}, "defaults.rate_limit_duration"),
    ({"connection_pool_id": 0}, "defaults.connection_pool_id"),
    ({"name": "n" * 256}, "defaults.name"),
    ({"certificate_id": 5}, "defaults.certificate_id"),
], ids=["zone", "date-format", "unit", "duration-0", "duration-string", "pool", "name", "certificate"])
async def test_defaults_follow_the_authorise_rules(client, tenant, defaults, path) -> None:
    payload = await _create(client, tenant, {"defaults": defaults}, status=422)
    assert list(payload["errors"]) == [path]


async def test_connector_id_must_be_the_tenants_own(client, tenants, redis_client, secret_key) -> None:
    owner, other = tenants
    mine = save_connector(redis_client, secret_key, owner)
    data = (await _create(client, owner, {"connector_id": mine.id}))["data"]
    assert data["connector_id"] == mine.id
    shown = await client.get(f"{SESSIONS}/{data['id']}", headers=owner.headers)
    assert (await shown.json())["data"]["connector_id"] == mine.id
    theirs = await _create(client, other, {"connector_id": mine.id}, status=422)
    missing = await _create(client, other, {"connector_id": f"con_{'0' * 32}"}, status=422)
    assert list(theirs["errors"]) == ["connector_id"] and theirs == missing


async def test_connector_id_outside_the_allowed_implementations_is_422(client, tenant, redis_client,
                                                                       secret_key) -> None:
    mine = save_connector(redis_client, secret_key, tenant)
    payload = await _create(client, tenant, {"connector_id": mine.id, "allowed_implementations": ["test-oauth"]},
                            status=422)
    assert list(payload["errors"]) == ["connector_id"]
