"""Connection pools and connect sessions (contract §5 "Records the lookups need", §3).

Proven here, over the real app on the test session's Redis:

- Connection pools: create answers 201 + ``Location`` with an integer id that counts
  1, 2, 3 … per tenant; the body rules (``name`` ≤ 255 required, ``limit`` integer ≥ 1
  required and strict, ``timeout`` integer ≥ 1 optional) answer 422 at the field's path;
  the list pages (``data``/``meta``/``links``); show; delete (204, then 404); an id that is
  not an integer is simply not found; another tenant sees 404.
- Sessions: create answers 201 + ``Location`` with the defaults (``ttl_seconds`` 1800, so
  ``expires_at`` 30 minutes ahead, in UTC with ``Z``) or with the given end user, return
  URL and allowed implementations; ``ttl_seconds`` outside 60–86400 and a return URL that
  is not an absolute http(s) URL answer 422 at their field; show; another tenant sees 404.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

POOLS = "/api/v1/connection-pools"
SESSIONS = "/api/v1/sessions"
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def _utc(value: str) -> datetime:
    assert ISO_Z.match(value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _post(client, tenant, url: str, body: dict, status: int = 201) -> dict:
    answer = await client.post(url, json=body, headers=tenant.headers)
    text = await answer.text()
    assert answer.status == status, text
    payload = await answer.json()
    if status == 201:
        assert answer.headers["Location"] == f"{url}/{payload['data']['id']}"
    return payload


# --- connection pools ----------------------------------------------------------------

async def test_pool_create_answers_201_with_an_integer_id(client, tenant) -> None:
    before = datetime.now(UTC)
    data = (await _post(client, tenant, POOLS, {"name": "Shopify pool", "limit": 5, "timeout": 30}))["data"]
    assert data["id"] == 1 and isinstance(data["id"], int)
    assert data["name"] == "Shopify pool" and data["limit"] == 5 and data["timeout"] == 30
    assert before - timedelta(seconds=1) <= _utc(data["created_at"]) <= datetime.now(UTC)


async def test_pool_ids_count_per_tenant(client, tenants) -> None:
    first, second = tenants
    ids = [(await _post(client, first, POOLS, {"name": f"p{i}", "limit": 1}))["data"]["id"] for i in range(3)]
    assert ids == [1, 2, 3]
    # The other tenant's count is its own.
    assert (await _post(client, second, POOLS, {"name": "q", "limit": 1}))["data"]["id"] == 1
    # A deleted id is not handed out again.
    assert (await client.delete(f"{POOLS}/3", headers=first.headers)).status == 204
    assert (await _post(client, first, POOLS, {"name": "p3", "limit": 1}))["data"]["id"] == 4


async def test_pool_timeout_is_optional(client, tenant) -> None:
    data = (await _post(client, tenant, POOLS, {"name": "no timeout", "limit": 2}))["data"]
    assert data["timeout"] is None


@pytest.mark.parametrize(("body", "path"), [
    ({"limit": 1}, "name"),
    ({"name": "x" * 256, "limit": 1}, "name"),
    ({"name": 7, "limit": 1}, "name"),
    ({"name": "p"}, "limit"),
    ({"name": "p", "limit": 0}, "limit"),
    ({"name": "p", "limit": -1}, "limit"),
    ({"name": "p", "limit": "3"}, "limit"),
    ({"name": "p", "limit": 1.5}, "limit"),
    ({"name": "p", "limit": True}, "limit"),
    ({"name": "p", "limit": 1, "timeout": 0}, "timeout"),
    ({"name": "p", "limit": 1, "timeout": "30"}, "timeout"),
], ids=["name-missing", "name-256", "name-number", "limit-missing", "limit-0", "limit-negative", "limit-string",
        "limit-float", "limit-bool", "timeout-0", "timeout-string"])
async def test_pool_validation_is_422_at_the_field(client, tenant, body: dict, path: str) -> None:
    payload = await _post(client, tenant, POOLS, body, status=422)
    assert list(payload["errors"]) == [path]
    assert payload["message"] == payload["errors"][path][0]
    # Nothing was created.
    listed = await (await client.get(POOLS, headers=tenant.headers)).json()
    assert listed["meta"]["total"] == 0


async def test_pool_name_of_255_chars_is_allowed(client, tenant) -> None:
    data = (await _post(client, tenant, POOLS, {"name": "x" * 255, "limit": 1}))["data"]
    assert len(data["name"]) == 255


async def test_pool_errors_are_reported_together(client, tenant) -> None:
    payload = await _post(client, tenant, POOLS, {"limit": 0, "timeout": 0}, status=422)
    assert set(payload["errors"]) == {"name", "limit", "timeout"}


async def test_pool_list_pages(client, tenant) -> None:
    for i in range(3):
        await _post(client, tenant, POOLS, {"name": f"pool {i + 1}", "limit": i + 1})
    answer = await client.get(POOLS, params={"per_page": 2}, headers=tenant.headers)
    assert answer.status == 200
    first = await answer.json()
    assert [p["id"] for p in first["data"]] == [1, 2]
    assert first["meta"]["current_page"] == 1 and first["meta"]["per_page"] == 2
    assert first["meta"]["total"] == 3 and first["meta"]["last_page"] == 2
    assert first["links"]["prev"] is None
    assert first["links"]["next"].endswith("page=2&per_page=2")

    answer = await client.get(first["links"]["next"], headers=tenant.headers)
    assert answer.status == 200
    second = await answer.json()
    assert [p["id"] for p in second["data"]] == [3]
    assert second["data"][0] == {**second["data"][0], "name": "pool 3", "limit": 3}
    assert second["meta"]["current_page"] == 2 and second["meta"]["total"] == 3
    assert second["links"]["next"] is None
    assert second["links"]["prev"].endswith("page=1&per_page=2")

    # Past the end: an empty page, not an error.
    for page in (3, 10**19):  # the second is past what a Redis index can hold
        answer = await client.get(POOLS, params={"page": page, "per_page": 2}, headers=tenant.headers)
        assert answer.status == 200, await answer.text()
        beyond = await answer.json()
        assert beyond["data"] == [] and beyond["meta"]["total"] == 3 and beyond["meta"]["current_page"] == page


@pytest.mark.parametrize("per_page", ["0", "101", "two"])
async def test_pool_list_per_page_outside_1_to_100_is_422(client, tenant, per_page: str) -> None:
    answer = await client.get(POOLS, params={"per_page": per_page}, headers=tenant.headers)
    assert answer.status == 422
    assert list((await answer.json())["errors"]) == ["per_page"]


async def test_pool_show(client, tenant) -> None:
    made = (await _post(client, tenant, POOLS, {"name": "shown", "limit": 4, "timeout": 9}))["data"]
    answer = await client.get(f"{POOLS}/{made['id']}", headers=tenant.headers)
    assert answer.status == 200
    assert (await answer.json())["data"] == made


async def test_pool_delete_then_404(client, tenant) -> None:
    made = (await _post(client, tenant, POOLS, {"name": "doomed", "limit": 1}))["data"]
    answer = await client.delete(f"{POOLS}/{made['id']}", headers=tenant.headers)
    assert answer.status == 204
    assert (await client.get(f"{POOLS}/{made['id']}", headers=tenant.headers)).status == 404
    assert (await client.delete(f"{POOLS}/{made['id']}", headers=tenant.headers)).status == 404
    listed = await (await client.get(POOLS, headers=tenant.headers)).json()
    assert listed["data"] == [] and listed["meta"]["total"] == 0


@pytest.mark.parametrize("raw", ["abc", "1.0", "-1", "0", "%C2%B2", "%D9%A1", "1" * 5000],
                         ids=["letters", "decimal", "negative", "zero", "superscript-two", "arabic-indic-one",
                              "5000-digits"])
async def test_pool_id_that_is_not_an_integer_is_404(client, tenant, raw: str) -> None:
    # A pool 1 exists, so an id that merely *looks* like 1 must not reach it either.
    await _post(client, tenant, POOLS, {"name": "one", "limit": 1})
    for method in (client.get, client.delete):
        answer = await method(f"{POOLS}/{raw}", headers=tenant.headers)
        assert answer.status == 404, await answer.text()
        assert (await answer.json())["message"]
    assert (await client.get(f"{POOLS}/1", headers=tenant.headers)).status == 200


async def test_pool_of_another_tenant_is_404(client, tenants) -> None:
    owner, other = tenants
    made = (await _post(client, owner, POOLS, {"name": "mine", "limit": 1}))["data"]
    shown = await client.get(f"{POOLS}/{made['id']}", headers=other.headers)
    assert shown.status == 404
    missing = await client.get(f"{POOLS}/999", headers=other.headers)
    assert await shown.json() == await missing.json()
    assert (await client.delete(f"{POOLS}/{made['id']}", headers=other.headers)).status == 404
    assert (await client.get(f"{POOLS}/{made['id']}", headers=owner.headers)).status == 200


async def test_pools_need_an_api_key(client) -> None:
    answer = await client.post(POOLS, json={"name": "p", "limit": 1})
    assert answer.status == 401
    assert await answer.json() == {"message": "Unauthenticated."}


# --- sessions ------------------------------------------------------------------------

async def test_session_create_with_defaults(client, tenant) -> None:
    before = datetime.now(UTC)
    data = (await _post(client, tenant, SESSIONS, {}))["data"]
    after = datetime.now(UTC)
    assert isinstance(data["id"], str) and data["id"]
    assert data["end_user_id"] is None and data["return_url"] is None
    assert data["allowed_implementations"] is None
    assert data["expired"] is False
    created, expires = _utc(data["created_at"]), _utc(data["expires_at"])
    assert expires - created == timedelta(seconds=1800)
    assert before + timedelta(seconds=1800) - timedelta(seconds=1) <= expires <= after + timedelta(seconds=1800)


async def test_session_create_with_fields(client, tenant) -> None:
    body = {"end_user_id": "user-42", "return_url": "https://app.example.test/connected?x=1",
            "allowed_implementations": ["test-basic", "test-oauth"], "ttl_seconds": 60}
    data = (await _post(client, tenant, SESSIONS, body))["data"]
    assert data["end_user_id"] == "user-42"
    assert data["return_url"] == body["return_url"]
    assert data["allowed_implementations"] == ["test-basic", "test-oauth"]
    assert _utc(data["expires_at"]) - _utc(data["created_at"]) == timedelta(seconds=60)


@pytest.mark.parametrize("ttl", [60, 86400])
async def test_session_ttl_bounds_are_allowed(client, tenant, ttl: int) -> None:
    data = (await _post(client, tenant, SESSIONS, {"ttl_seconds": ttl}))["data"]
    assert _utc(data["expires_at"]) - _utc(data["created_at"]) == timedelta(seconds=ttl)


@pytest.mark.parametrize("ttl", [59, 86401, 0, "1800", 90.5], ids=["59", "86401", "0", "string", "float"])
async def test_session_ttl_outside_60_to_86400_is_422(client, tenant, ttl) -> None:
    payload = await _post(client, tenant, SESSIONS, {"ttl_seconds": ttl}, status=422)
    assert list(payload["errors"]) == ["ttl_seconds"]


@pytest.mark.parametrize("url", ["not a url", "ftp://x", "/relative/path", "https://", "javascript:alert(1)"])
async def test_session_return_url_must_be_absolute_http(client, tenant, url: str) -> None:
    payload = await _post(client, tenant, SESSIONS, {"return_url": url}, status=422)
    assert list(payload["errors"]) == ["return_url"]


@pytest.mark.parametrize(("body", "path"), [
    ({"end_user_id": "u" * 256}, "end_user_id"),
    ({"allowed_implementations": "test-basic"}, "allowed_implementations"),
    ({"allowed_implementations": ["ok", 5]}, "allowed_implementations.1"),
], ids=["end-user-256", "implementations-not-a-list", "implementation-not-a-string"])
async def test_session_field_rules(client, tenant, body: dict, path: str) -> None:
    payload = await _post(client, tenant, SESSIONS, body, status=422)
    assert list(payload["errors"]) == [path]


async def test_session_show(client, tenant) -> None:
    made = (await _post(client, tenant, SESSIONS, {"end_user_id": "user-7",
                                                   "return_url": "http://localhost:3000/done"}))["data"]
    answer = await client.get(f"{SESSIONS}/{made['id']}", headers=tenant.headers)
    assert answer.status == 200
    # The same session, less its connect_url: only the creation shows the page's token.
    assert made["connect_url"] is not None
    assert (await answer.json())["data"] == {**made, "connect_url": None}


async def test_session_of_another_tenant_is_404(client, tenants) -> None:
    owner, other = tenants
    made = (await _post(client, owner, SESSIONS, {"end_user_id": "user-1"}))["data"]
    shown = await client.get(f"{SESSIONS}/{made['id']}", headers=other.headers)
    assert shown.status == 404
    missing = await client.get(f"{SESSIONS}/ses_{'0' * 32}", headers=other.headers)
    assert missing.status == 404
    assert await shown.json() == await missing.json()
    assert (await client.get(f"{SESSIONS}/{made['id']}", headers=owner.headers)).status == 200
