"""The authorise and reauthorise bodies are checked against every rule of the contract
(§5, §6) before anything is queued.

Each rule gets a body that breaks it and must answer ``422 {"message", "errors"}`` with the
exact dotted path, a human sentence naming the field, and no job left behind in Redis.
Nothing here needs a worker: accepted jobs simply wait in the broker.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tasks.model.records import Connector
from tasks.storage import schema
from tests.support.helpers import Tenant, authorise_body, save_connector

AUTHORISE = "/api/v1/oauth/authorise"
MISSING = object()  # an override meaning "leave this field out"
TOO_LONG = "x" * 256


def jobs_of(redis_client, tenant: Tenant) -> list[bytes]:  # type: ignore[no-untyped-def]
    return list(redis_client.scan_iter(match=schema.job.pattern(tenant.name)))


def changed(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    for field, value in changes.items():
        if value is MISSING:
            body.pop(field, None)
        else:
            body[field] = value
    return body


def with_variable(index: int, **changes: Any) -> dict[str, Any]:
    """A valid authorise body whose ``variables[index]`` is changed."""
    body = authorise_body()
    changed(body["variables"][index], **changes)  # type: ignore[index]
    return body


def is_sentence(text: str) -> bool:
    return len(text) > 10 and text[0].isupper() and text.rstrip().endswith(".") and " " in text


async def assert_rejected(answer, redis_client, tenant: Tenant, path: str, *names: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """422 at ``path`` with human sentences naming the field (or ``names``), nothing queued."""
    assert answer.status == 422, await answer.text()
    payload = await answer.json()
    assert isinstance(payload.get("message"), str) and payload["message"], payload
    assert path in payload["errors"], payload
    messages = payload["errors"][path]
    assert messages and all(is_sentence(m) for m in messages), messages
    field = next(p for p in reversed(path.split(".")) if not p.isdigit())
    for name in names or (field,):
        assert any(name in m or name.replace("_", " ") in m for m in messages), (name, messages)
    assert jobs_of(redis_client, tenant) == []
    return payload


# -- authorise: one rule per row ---------------------------------------------------------

TOP_LEVEL_BREAKS = [
    ("name", TOO_LONG), ("name", 5),
    ("authentication_implementation_id", MISSING), ("authentication_implementation_id", 7),
    ("authentication_implementation_id", TOO_LONG), ("authentication_implementation_id", "no-such-implementation"),
    ("timezone", MISSING), ("timezone", "Mars/Olympus"), ("timezone", 0), ("timezone", ""),
    ("timezone", "posix/Europe/London"), ("timezone", "right/UTC"),
    ("date_format", MISSING), ("date_format", ""), ("date_format", "d" * 65), ("date_format", 12),
    ("rate_limit_unit", MISSING), ("rate_limit_unit", "week"), ("rate_limit_unit", 1), ("rate_limit_unit", "Minute"),
    ("rate_limit_duration", MISSING), ("rate_limit_duration", 0), ("rate_limit_duration", -1),
    ("rate_limit_duration", "5"), ("rate_limit_duration", 1.5), ("rate_limit_duration", True),
    ("connection_pool_id", 0), ("connection_pool_id", "1"), ("connection_pool_id", -3), ("connection_pool_id", 2.5),
    ("variables", "base_url=x"), ("variables", {"key": "base_url"}),
    ("variables", [{"key": f"k{i}", "value": "v"} for i in range(101)]),
    ("session_id", TOO_LONG), ("session_id", 1),
    ("platform_app_key", TOO_LONG), ("platform_app_key", False),
    ("certificate_id", TOO_LONG), ("certificate_id", ["crt"]),
]


@pytest.mark.parametrize(("field", "value"), TOP_LEVEL_BREAKS,
                         ids=[f"{f}={str(v)[:20]}" if v is not MISSING else f"{f}-missing"
                              for f, v in TOP_LEVEL_BREAKS])
async def test_a_broken_top_level_field_is_422_at_its_name(client, tenant, redis_client, field, value):
    """Each §5 rule on a top-level field: 422 at exactly that field, nothing queued."""
    answer = await client.post(AUTHORISE, json=changed(authorise_body(), **{field: value}), headers=tenant.headers)
    await assert_rejected(answer, redis_client, tenant, field)


VARIABLE_BREAKS = [
    (1, "key", MISSING, "variables.1.key"), (2, "key", "", "variables.2.key"),
    (0, "key", "k" * 256, "variables.0.key"), (2, "key", "bad key!", "variables.2.key"),
    (1, "key", 42, "variables.1.key"),
    (1, "value", "v" * 8193, "variables.1.value"), (0, "value", 8080, "variables.0.value"),
    (2, "label", "l" * 256, "variables.2.label"), (2, "label", 3, "variables.2.label"),
    (2, "secret", "true", "variables.2.secret"), (1, "secret", 1, "variables.1.secret"),
    (1, "locked", "yes", "variables.1.locked"), (1, "locked", 0, "variables.1.locked"),
    (0, "pivot", "alias", "variables.0.pivot"), (0, "pivot", [True], "variables.0.pivot"),
    (0, "pivot", {"alias": "a" * 256}, "variables.0.pivot.alias"),
    (0, "pivot", {"alias": 9}, "variables.0.pivot.alias"),
    (1, "pivot", {"configurable": "true"}, "variables.1.pivot.configurable"),
    (1, "pivot", {"required": 1}, "variables.1.pivot.required"),
    (2, "pivot", {"advanced": "no"}, "variables.2.pivot.advanced"),
]


@pytest.mark.parametrize(("index", "field", "value", "path"), VARIABLE_BREAKS,
                         ids=[b[3] + f"={str(b[2])[:12]}" for b in VARIABLE_BREAKS])
async def test_a_broken_variable_field_is_422_at_its_dotted_path(client, tenant, redis_client, index, field, value,
                                                                  path):
    """Rules on ``variables.<i>.*`` are reported with the item's index and nested path."""
    answer = await client.post(AUTHORISE, json=with_variable(index, **{field: value}), headers=tenant.headers)
    await assert_rejected(answer, redis_client, tenant, path)


async def test_a_variable_that_is_not_an_object_is_422_at_its_index(client, tenant, redis_client):
    body = authorise_body()
    body["variables"].append("region=eu")  # type: ignore[attr-defined]
    answer = await client.post(AUTHORISE, json=body, headers=tenant.headers)
    await assert_rejected(answer, redis_client, tenant, "variables.3", "variables")


@pytest.mark.parametrize("repeats", [1, 2])
async def test_a_duplicate_key_is_reported_at_each_later_duplicate(client, tenant, redis_client, repeats):
    """§6: the later duplicate's ``variables.<i>.key``, never the first occurrence."""
    body = authorise_body()
    body["variables"] += [{"key": "consumer_key", "value": f"ck_again_{n}"} for n in range(repeats)]  # type: ignore[operator]
    answer = await client.post(AUTHORISE, json=body, headers=tenant.headers)
    payload = await assert_rejected(answer, redis_client, tenant, "variables.3.key", "consumer_key")
    assert "variables.1.key" not in payload["errors"]
    assert ("variables.4.key" in payload["errors"]) == (repeats == 2)


@pytest.mark.parametrize(("drop", "unset", "named"), [
    (["consumer_key"], [], ["consumer_key"]),
    ([], ["consumer_secret"], ["consumer_secret"]),
    (["base_url", "consumer_key"], [], ["base_url", "consumer_key"]),
    (["base_url"], ["consumer_key", "consumer_secret"], ["base_url", "consumer_key", "consumer_secret"]),
])
async def test_a_required_variable_missing_is_422_at_variables(client, tenant, redis_client, drop, unset, named):
    """§6: left out (or sent without a value), reported at ``variables``, each message naming the key."""
    body = authorise_body()
    body["variables"] = [v for v in body["variables"] if v["key"] not in drop]  # type: ignore[attr-defined]
    for var in body["variables"]:  # type: ignore[attr-defined]
        if var["key"] in unset:
            var["value"] = None
    answer = await client.post(AUTHORISE, json=body, headers=tenant.headers)
    payload = await assert_rejected(answer, redis_client, tenant, "variables", *named)
    assert list(payload["errors"]) == ["variables"]


@pytest.mark.parametrize(("blank", "paths"), [
    (["consumer_key"], ["variables.1.value"]),
    (["consumer_secret"], ["variables.2.value"]),
    (["base_url", "consumer_key", "consumer_secret"], ["variables.0.value", "variables.1.value", "variables.2.value"]),
])
async def test_a_required_variable_sent_empty_is_422_at_its_value(client, tenant, redis_client, blank, paths):
    """§6: a required variable sent with an empty value is reported at ``variables.<i>.value``."""
    body = authorise_body()
    for var in body["variables"]:  # type: ignore[attr-defined]
        if var["key"] in blank:
            var["value"] = ""
    answer = await client.post(AUTHORISE, json=body, headers=tenant.headers)
    payload = await assert_rejected(answer, redis_client, tenant, paths[0], blank[0])
    assert sorted(payload["errors"]) == paths
    for path, key in zip(paths, blank, strict=True):
        assert any(key in message for message in payload["errors"][path])


async def test_empty_and_missing_required_variables_are_reported_together(client, tenant, redis_client):
    body = authorise_body()
    body["variables"] = [{"key": "consumer_key", "value": ""}, {"key": "base_url", "value": "http://127.0.0.1:9"}]
    answer = await client.post(AUTHORISE, json=body, headers=tenant.headers)
    payload = await assert_rejected(answer, redis_client, tenant, "variables.0.value", "consumer_key")
    assert sorted(payload["errors"]) == ["variables", "variables.0.value"]
    assert any("consumer_secret" in m for m in payload["errors"]["variables"])


KIB = 1024


@pytest.mark.parametrize("sizes", [[8192] * 8 + [1], [4000] * 17, [8192] * 7 + [7000, 1200]],
                         ids=["64KiB+1", "68000", "over-by-a-few"])
async def test_variables_over_64_kib_of_values_in_all_are_422_at_variables(client, tenant, redis_client, sizes):
    """§5: the variables of one request hold at most 64 KiB of values in all (each may hold 8192)."""
    body = authorise_body()
    body["variables"] += [{"key": f"extra_{i}", "value": "v" * size}  # type: ignore[operator]
                          for i, size in enumerate(sizes)]
    answer = await client.post(AUTHORISE, json=body, headers=tenant.headers)
    payload = await assert_rejected(answer, redis_client, tenant, "variables", "64 KiB")
    assert list(payload["errors"]) == ["variables"]


async def test_variables_of_64_kib_in_all_are_accepted(client, tenant):
    body = authorise_body()
    given = sum(len(v["value"].encode()) for v in body["variables"])  # type: ignore[attr-defined,index]
    body["variables"] += [{"key": f"extra_{i}", "value": "v" * 8192} for i in range(7)]  # type: ignore[operator]
    body["variables"].append({"key": "last", "value": "é" * ((8192 - given) // 2)})  # type: ignore[attr-defined]
    total = sum(len(v["value"].encode()) for v in body["variables"])  # type: ignore[attr-defined,index]
    assert 64 * KIB - 1 <= total <= 64 * KIB
    answer = await client.post(AUTHORISE, json=body, headers=tenant.headers)
    assert answer.status == 202, await answer.text()


async def test_the_64_kib_counts_bytes_not_characters(client, tenant, redis_client):
    body = authorise_body()
    body["variables"] += [{"key": f"extra_{i}", "value": "€" * 3000} for i in range(8)]  # type: ignore[operator]
    answer = await client.post(AUTHORISE, json=body, headers=tenant.headers)  # 24,000 characters, 72,000 bytes
    await assert_rejected(answer, redis_client, tenant, "variables", "64 KiB")


def oauth_body(**overrides: Any) -> dict[str, Any]:
    overrides.setdefault("variables", [{"key": "base_url", "value": "http://127.0.0.1:9"}])
    return authorise_body(authentication_implementation_id="test-oauth", **overrides)


async def test_without_a_platform_app_the_client_credentials_are_required(client, tenant, redis_client):
    answer = await client.post(AUTHORISE, json=oauth_body(), headers=tenant.headers)
    await assert_rejected(answer, redis_client, tenant, "variables", "client_id", "client_secret")


async def test_a_platform_app_supplies_the_client_credentials(client, tenant):
    """With ``platform_app_key`` the connector needs no client_id/client_secret of its own."""
    answer = await client.post(AUTHORISE, json=oauth_body(platform_app_key="test-app"), headers=tenant.headers)
    assert answer.status == 202, await answer.text()


async def test_a_platform_app_does_not_excuse_other_required_variables(client, tenant, redis_client):
    answer = await client.post(AUTHORISE, json=oauth_body(platform_app_key="test-app", variables=[]),
                               headers=tenant.headers)
    payload = await assert_rejected(answer, redis_client, tenant, "variables", "base_url")
    assert not any("client_id" in m for m in payload["errors"]["variables"])


@pytest.mark.parametrize("raw", ["[]", '[{"name": "x"}]', '"authorise"', "42", "null", "true"])
async def test_a_body_that_is_not_an_object_is_422_at_body(client, tenant, redis_client, raw):
    answer = await client.post(AUTHORISE, data=raw, headers={**tenant.headers, "Content-Type": "application/json"})
    await assert_rejected(answer, redis_client, tenant, "body")


async def test_every_broken_rule_is_reported_at_once(client, tenant, redis_client):
    body = with_variable(2, key="bad key!")
    changed(body, timezone="Mars/Olympus", rate_limit_unit="week", date_format=MISSING)
    answer = await client.post(AUTHORISE, json=body, headers=tenant.headers)
    payload = await assert_rejected(answer, redis_client, tenant, "timezone")
    assert {"timezone", "rate_limit_unit", "date_format", "variables.2.key"} <= set(payload["errors"])


async def test_a_valid_body_is_queued_as_a_job(client, tenant, redis_client):
    """202, ``Location: /api/v1/jobs/{id}``, ``Retry-After``, and a queued job that names its connector."""
    answer = await client.post(AUTHORISE, json=authorise_body(), headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    job = (await answer.json())["data"]
    assert answer.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert int(answer.headers["Retry-After"]) >= 1
    assert job["type"] == "authorise" and job["status"] == "queued" and job["error"] is None
    assert isinstance(job["connector_id"], str) and job["connector_id"]
    assert job["links"]["self"] == answer.headers["Location"]
    assert jobs_of(redis_client, tenant)
    again = await client.get(answer.headers["Location"], headers=tenant.headers)
    assert again.status == 200 and (await again.json())["data"]["connector_id"] == job["connector_id"]


async def test_values_at_the_limits_are_accepted(client, tenant):
    """The bounds are inclusive: 255-char name and key, 64-char date format, 8192-char value, 100 variables."""
    body = authorise_body(name="n" * 255, date_format="d" * 64, rate_limit_duration=1, connection_pool_id=1,
                          rate_limit_unit="day", timezone="UTC", session_id="s" * 255, certificate_id="c" * 255)
    body["variables"][1]["value"] = "v" * 8192  # type: ignore[index]
    body["variables"] += [{"key": "k" * 255, "value": "x", "label": "l" * 255, "secret": False, "locked": False,  # type: ignore[operator]
                           "pivot": {"alias": "a" * 255, "configurable": True, "required": False, "advanced": True}}]
    body["variables"] += [{"key": f"extra.{i}_-X"} for i in range(96)]  # type: ignore[operator]
    assert len(body["variables"]) == 100  # type: ignore[arg-type]
    answer = await client.post(AUTHORISE, json=body, headers=tenant.headers)
    assert answer.status == 202, await answer.text()


# -- reauthorise ----------------------------------------------------------------------------

@pytest.fixture
def connector(redis_client, secret_key, tenant) -> Connector:  # type: ignore[no-untyped-def]
    """A test-basic connector of ``tenant`` (with the catalog-locked ``region`` = "eu")."""
    record = save_connector(redis_client, secret_key, tenant)
    region = record.variable("region")
    assert region is not None and region.locked and region.value == "eu"
    return record


def reauthorise_url(connector_id: str) -> str:
    return f"/api/v1/oauth/{connector_id}/reauthorise"


def var_id(connector: Connector, key: str) -> str:
    found = connector.variable(key)
    assert found is not None
    return found.id


async def test_reauthorising_an_unknown_connector_is_404(client, tenant, connector):
    answer = await client.patch(reauthorise_url("con_" + "0" * 32), json={}, headers=tenant.headers)
    assert answer.status == 404
    assert (await answer.json())["message"]


async def test_another_tenants_connector_is_404_exactly_as_a_missing_one(client, tenants, connector, redis_client):
    other = tenants[1]
    theirs = await client.patch(reauthorise_url(connector.id), json={"name": "mine now"}, headers=other.headers)
    missing = await client.patch(reauthorise_url("con_" + "0" * 32), json={"name": "mine now"}, headers=other.headers)
    assert theirs.status == missing.status == 404
    assert await theirs.json() == await missing.json()
    assert jobs_of(redis_client, other) == []


@pytest.mark.parametrize("body", [[], "x", None])
async def test_a_reauthorise_body_that_is_not_an_object_is_422(client, tenant, connector, redis_client, body):
    answer = await client.patch(reauthorise_url(connector.id), data=json.dumps(body),
                                headers={**tenant.headers, "Content-Type": "application/json"})
    await assert_rejected(answer, redis_client, tenant, "body")


async def test_a_type_other_than_the_implementations_is_422(client, tenant, connector, redis_client):
    answer = await client.patch(reauthorise_url(connector.id), json={"type": "oauth2_authorization_code"},
                                headers=tenant.headers)
    await assert_rejected(answer, redis_client, tenant, "type")


async def test_an_unknown_variable_id_is_422_at_its_index(client, tenant, connector, redis_client):
    body = {"variables": [{"id": "var_nope", "value": "x"}]}
    answer = await client.patch(reauthorise_url(connector.id), json=body, headers=tenant.headers)
    await assert_rejected(answer, redis_client, tenant, "variables.0.id", "id")


@pytest.mark.parametrize("by", ["id", "key"])
async def test_changing_a_locked_value_is_422_at_its_value(client, tenant, connector, redis_client, by):
    """§6: a locked variable's change is reported at ``variables.<i>.value`` (the request's index)."""
    region = {"id": var_id(connector, "region")} if by == "id" else {"key": "region"}
    body = {"variables": [{"id": var_id(connector, "consumer_key"), "value": "ck_new"}, {**region, "value": "us"}]}
    answer = await client.patch(reauthorise_url(connector.id), json=body, headers=tenant.headers)
    await assert_rejected(answer, redis_client, tenant, "variables.1.value", "region")


@pytest.mark.parametrize(("change", "path"), [({"key": "area"}, "variables.0.key"),
                                              ({"locked": False}, "variables.0.locked")])
async def test_a_locked_variable_can_be_neither_renamed_nor_unlocked(client, tenant, connector, redis_client, change,
                                                                     path):
    """Renaming would remove the variable the platform needs; unlocking would free its value next time."""
    body = {"variables": [{"id": var_id(connector, "region"), **change}]}
    answer = await client.patch(reauthorise_url(connector.id), json=body, headers=tenant.headers)
    await assert_rejected(answer, redis_client, tenant, path, "region")


async def test_a_locked_variable_sent_with_its_same_value_is_accepted(client, tenant, connector):
    body = {"variables": [{"id": var_id(connector, "region"), "value": "eu"}, {"key": "consumer_key", "value": "ck_2"}]}
    answer = await client.patch(reauthorise_url(connector.id), json=body, headers=tenant.headers)
    assert answer.status == 202, await answer.text()


async def test_a_duplicate_by_id_and_key_is_422_at_the_later_one(client, tenant, connector, redis_client):
    body = {"variables": [{"key": "consumer_key", "value": "a"},
                          {"id": var_id(connector, "consumer_key"), "value": "b"}]}
    answer = await client.patch(reauthorise_url(connector.id), json=body, headers=tenant.headers)
    await assert_rejected(answer, redis_client, tenant, "variables.1.key", "consumer_key")


@pytest.mark.parametrize("by", ["id", "key"])
async def test_emptying_a_required_variable_is_422_at_its_value(client, tenant, connector, redis_client, by):
    """§6: the request's index, whether the variable is named by ``id`` or by ``key``."""
    target = {"id": var_id(connector, "consumer_key")} if by == "id" else {"key": "consumer_key"}
    body = {"variables": [{"key": "webhook_topic", "value": "orders"}, {**target, "value": ""}]}
    answer = await client.patch(reauthorise_url(connector.id), json=body, headers=tenant.headers)
    payload = await assert_rejected(answer, redis_client, tenant, "variables.1.value", "consumer_key")
    assert list(payload["errors"]) == ["variables.1.value"]


async def test_reauthorise_variables_over_64_kib_in_all_are_422(client, tenant, connector, redis_client):
    body = {"variables": [{"key": f"extra_{i}", "value": "v" * 8192} for i in range(8)] + [{"key": "x", "value": "y"}]}
    answer = await client.patch(reauthorise_url(connector.id), json=body, headers=tenant.headers)
    await assert_rejected(answer, redis_client, tenant, "variables", "64 KiB")


REAUTHORISE_BREAKS = [
    ({"rate_limit_unit": "week"}, "rate_limit_unit"), ({"rate_limit_duration": 0}, "rate_limit_duration"),
    ({"timezone": "Mars/Olympus"}, "timezone"), ({"date_format": ""}, "date_format"),
    ({"name": TOO_LONG}, "name"), ({"connection_pool_id": "1"}, "connection_pool_id"),
    ({"authentication_implementation_id": "no-such-implementation"}, "authentication_implementation_id"),
    ({"type": 5}, "type"), ({"session_id": TOO_LONG}, "session_id"),
    ({"variables": [{"key": "bad key!", "value": "x"}]}, "variables.0.key"),
    ({"variables": [{"value": "x"}]}, "variables.0.key"),
    ({"variables": [{"id": 7, "value": "x"}]}, "variables.0.id"),
    ({"variables": [{"key": "consumer_key", "pivot": {"alias": TOO_LONG}}]}, "variables.0.pivot.alias"),
]


@pytest.mark.parametrize(("body", "path"), REAUTHORISE_BREAKS, ids=[p for _, p in REAUTHORISE_BREAKS])
async def test_authorise_rules_apply_to_reauthorise(client, tenant, connector, redis_client, body, path):
    answer = await client.patch(reauthorise_url(connector.id), json=body, headers=tenant.headers)
    await assert_rejected(answer, redis_client, tenant, path)


@pytest.mark.parametrize("body", [
    {},
    {"rate_limit_duration": 30},
    {"type": "basic", "name": "Renamed", "variables": [{"key": "consumer_secret", "value": "cs_new", "secret": True}]},
    {"variables": [{"key": "webhook_topic", "value": "orders"}]},
])
async def test_a_valid_partial_body_queues_a_reauthorise_for_that_connector(client, tenant, connector, body):
    """202 + job; the job keeps the connector's id (§5: the connector keeps its id)."""
    answer = await client.patch(reauthorise_url(connector.id), json=body, headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    job = (await answer.json())["data"]
    assert answer.headers["Location"] == f"/api/v1/jobs/{job['id']}" and "Retry-After" in answer.headers
    assert job["type"] == "reauthorise" and job["status"] == "queued"
    assert job["connector_id"] == connector.id
