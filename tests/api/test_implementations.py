"""The catalog as a client sees it (contract §5, ``GET /implementations``), through the real app
factory: every field of the contract, every entry of the shipped catalog rendered and valid against
the published schema, nothing of a platform app and no secret default, 404 for an unknown id,
an API key required (scope ``manage``, as every endpoint of §5), and the operations in the
OpenAPI document with answers that match it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr, TypeAdapter

from api import schemas
from api.app import create_app
from tasks.model.catalog import load_catalog
from tasks.settings import Settings
from tests.api.test_openapi import assert_documented
from tests.support.leakcheck import remember_secret
from worker.queues import make_job_queue

V1 = "/api/v1"
VARIABLE_FIELDS = {"key", "label", "alias", "required", "secret", "configurable", "advanced", "default"}
PLATFORM_SECRET = "platform-app-secret-7f3c2e91a4"
SECRET_DEFAULT = "sealed-default-5b8d0c"
CATALOG = f"""
implementations:
  - id: acme-oauth2
    system: Acme
    type: oauth2_authorization_code
    authorize_url: "https://auth.acme.test/oauth/authorize"
    token_url: "https://auth.acme.test/oauth/token"
    base_url: "https://{{{{shop}}}}.acme.test/api"
    scopes: [read_orders, write_orders]
    defaults: {{timezone: UTC, date_format: Y-m-d, rate_limit_unit: second, rate_limit_duration: 2}}
    variables:
      - {{key: client_id, label: Client ID, required: true}}
      - {{key: client_secret, label: Client secret, required: true}}
      - {{key: webhook_secret, label: Webhook secret, secret: true, default: "{SECRET_DEFAULT}"}}
      - {{key: shop, label: Shop, alias: shop_name, required: true, configurable: true}}
      - {{key: api_version, label: API version, advanced: true, configurable: true, default: "2025-10"}}
  - id: acme-basic
    system: Acme
    type: basic
    variables:
      - {{key: username, required: true}}
      - {{key: password, required: true}}
platform_apps:
  - key: acme-public-app
    implementation_id: acme-oauth2
    client_id: "platform-client-id-91e2"
    client_secret_env: ACME_APP_SECRET_ENV
"""


@pytest.fixture
async def acme(aiohttp_client, settings: Settings, tmp_path: Path,  # type: ignore[no-untyped-def]
               monkeypatch: pytest.MonkeyPatch) -> TestClient:  # type: ignore[type-arg]
    monkeypatch.setenv("ACME_APP_SECRET_ENV", PLATFORM_SECRET)  # as a deployment sets it
    remember_secret(PLATFORM_SECRET)
    remember_secret(SECRET_DEFAULT)
    path = tmp_path / "catalog.yaml"
    path.write_text(CATALOG, encoding="utf-8")
    configured = settings.model_copy(update={"catalog": path})
    return await aiohttp_client(create_app(configured, make_job_queue(configured)))


@pytest.fixture
async def shipped(aiohttp_client, settings: Settings) -> TestClient:  # type: ignore[no-untyped-def,type-arg]
    configured = settings.model_copy(update={"catalog": None})
    return await aiohttp_client(create_app(configured, make_job_queue(configured)))


async def test_an_implementation_shows_what_a_client_needs(acme, tenant) -> None:  # type: ignore[no-untyped-def]
    answer = await acme.get(f"{V1}/implementations/acme-oauth2", headers=tenant.headers)
    assert answer.status == 200, await answer.text()
    view = (await answer.json())["data"]
    assert view == {
        "id": "acme-oauth2", "system": "Acme", "type": "oauth2_authorization_code",
        "scopes": ["read_orders", "write_orders"], "proxy": True,
        "defaults": {"timezone": "UTC", "date_format": "Y-m-d", "rate_limit_unit": "second",
                     "rate_limit_duration": 2},
        "variables": [
            {"key": "client_id", "label": "Client ID", "alias": None, "required": True, "secret": False,
             "configurable": False, "advanced": False, "default": None},
            # client_secret is always secret, whatever the catalog says
            {"key": "client_secret", "label": "Client secret", "alias": None, "required": True, "secret": True,
             "configurable": False, "advanced": False, "default": None},
            {"key": "webhook_secret", "label": "Webhook secret", "alias": None, "required": False, "secret": True,
             "configurable": False, "advanced": False, "default": None},  # a secret's default is never shown
            {"key": "shop", "label": "Shop", "alias": "shop_name", "required": True, "secret": False,
             "configurable": True, "advanced": False, "default": None},
            {"key": "api_version", "label": "API version", "alias": None, "required": False, "secret": False,
             "configurable": True, "advanced": True, "default": "2025-10"},
        ]}
    basic = (await (await acme.get(f"{V1}/implementations/acme-basic", headers=tenant.headers)).json())["data"]
    assert basic["proxy"] is False and basic["defaults"] is None and basic["scopes"] == []
    assert [v["secret"] for v in basic["variables"]] == [False, True]


async def test_the_list_is_the_catalog_in_its_order_paged(acme, tenant) -> None:  # type: ignore[no-untyped-def]
    answer = await acme.get(f"{V1}/implementations", headers=tenant.headers)
    assert answer.status == 200
    body = await answer.json()
    assert [v["id"] for v in body["data"]] == ["acme-oauth2", "acme-basic"]
    assert body["meta"]["total"] == 2
    second = await (await acme.get(f"{V1}/implementations?per_page=1&page=2", headers=tenant.headers)).json()
    assert [v["id"] for v in second["data"]] == ["acme-basic"] and second["links"]["prev"] is not None
    assert (await acme.get(f"{V1}/implementations?per_page=101", headers=tenant.headers)).status == 422


async def test_nothing_of_a_platform_app_and_no_secret_default_is_shown(acme, tenant) -> None:  # type: ignore[no-untyped-def]
    texts = [await (await acme.get(f"{V1}/implementations", headers=tenant.headers)).text()]
    for implementation_id in ("acme-oauth2", "acme-basic"):
        texts.append(await (await acme.get(f"{V1}/implementations/{implementation_id}", headers=tenant.headers)).text())
    texts.append(await (await acme.get("/api/openapi.json")).text())
    for text in texts:
        for hidden in (PLATFORM_SECRET, SECRET_DEFAULT, "ACME_APP_SECRET_ENV", "platform-client-id-91e2",
                       "acme-public-app", "auth.acme.test"):
            assert hidden not in text


async def test_every_shipped_implementation_renders_and_matches_the_schema(shipped, tenant) -> None:  # type: ignore[no-untyped-def]
    catalog = load_catalog(None)
    answer = await shipped.get(f"{V1}/implementations?per_page=100", headers=tenant.headers)
    assert answer.status == 200
    page = await answer.json()
    TypeAdapter(schemas.ImplementationPage).validate_python(page, strict=True)
    assert [v["id"] for v in page["data"]] == [i.id for i in catalog.implementations]
    for impl, view in zip(catalog.implementations, page["data"], strict=True):
        one = await shipped.get(f"{V1}/implementations/{impl.id}", headers=tenant.headers)
        assert one.status == 200 and (await one.json())["data"] == view
        assert view["system"] == impl.system and view["type"] == impl.type and view["proxy"] is bool(impl.base_url)
        assert [v["key"] for v in view["variables"]] == [v.key for v in impl.variables]
        for variable in view["variables"]:
            assert set(variable) == VARIABLE_FIELDS
            if variable["secret"]:
                assert variable["default"] is None
    assert "woocommerce-app" in {v["id"] for v in page["data"]}


async def test_an_unknown_implementation_is_a_404(acme, tenant) -> None:  # type: ignore[no-untyped-def]
    for unknown in ("nope", "acme-oauth2x", "ACME-OAUTH2", "acme-oauth2%20"):
        answer = await acme.get(f"{V1}/implementations/{unknown}", headers=tenant.headers)
        assert answer.status == 404
        assert await answer.json() == {"message": "Implementation not found."}


async def test_an_api_key_with_the_manage_scope_is_needed(aiohttp_client, settings, tenant) -> None:  # type: ignore[no-untyped-def]
    proxy_only = "key-proxy-only-5e1d7a0b3c9f"
    remember_secret(proxy_only)
    keys = f"{settings.api_keys.get_secret_value()},{tenant.name}:{proxy_only}:proxy"
    configured = settings.model_copy(update={"api_keys": SecretStr(keys)})
    client = await aiohttp_client(create_app(configured, make_job_queue(configured)))
    for path in (f"{V1}/implementations", f"{V1}/implementations/test-basic", f"{V1}/implementations/nope"):
        missing = await client.get(path)
        assert missing.status == 401 and await missing.json() == {"message": "Unauthenticated."}
        wrong = await client.get(path, headers={"Authorization": "Bearer not-a-key"})
        assert wrong.status == 401
        lacking = await client.get(path, headers={"Authorization": proxy_only})
        assert lacking.status == 403  # before the id is looked up: the same for an unknown one
        assert await lacking.json() == {"message": "This API key lacks the manage scope."}
    assert (await client.get(f"{V1}/implementations", headers={"Authorization": f"Bearer {tenant.key}"})).status == 200


async def test_the_openapi_document_lists_them_and_the_answers_match(acme, tenant) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(await (await acme.get("/api/openapi.json")).text())
    listing, single = f"{V1}/implementations", f"{V1}/implementations/{{implementation}}"
    assert doc["paths"][listing]["get"]["x-authq-scope"] == "manage"
    assert "ImplementationView" in doc["components"]["schemas"]
    await assert_documented(doc, "GET", listing, await acme.get(listing, headers=tenant.headers))
    await assert_documented(doc, "GET", single, await acme.get(f"{listing}/acme-oauth2", headers=tenant.headers))
    await assert_documented(doc, "GET", single, await acme.get(f"{listing}/nope", headers=tenant.headers))
    await assert_documented(doc, "GET", listing, await acme.get(f"{listing}?page=0", headers=tenant.headers))
