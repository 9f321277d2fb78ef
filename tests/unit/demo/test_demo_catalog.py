"""The demo's catalog entries (contract §13): there only with AUTHQ_DEMO, built from the public
URL (or the bind address), each with a base_url; an id the catalog already uses stops start-up."""

from __future__ import annotations

import pytest

from tasks.demo.catalog import DEMO_IDS, service_catalog, with_demo
from tasks.errors import ConfigError
from tasks.model.catalog import parse_catalog
from tasks.settings import Settings
from tests.support.helpers import TEST_CATALOG


def _settings(**fields: object) -> Settings:
    return Settings(catalog=TEST_CATALOG, _env_file=None, **fields)  # type: ignore[call-arg]


def test_without_the_demo_the_catalog_is_the_files() -> None:
    ids = {i.id for i in service_catalog(_settings()).implementations}
    assert ids and not ids & set(DEMO_IDS)


def test_the_demo_adds_four_entries_at_the_public_url() -> None:
    catalog = service_catalog(_settings(demo=True, public_url="https://authq.example.com/"))
    entries = {i.id: i for i in catalog.implementations if i.id in DEMO_IDS}
    assert set(entries) == set(DEMO_IDS)
    assert {i.type for i in entries.values()} == {"oauth2_authorization_code", "oauth2_client_credentials", "basic",
                                                  "woocommerce_app"}
    for entry in entries.values():
        assert entry.base_url == "https://authq.example.com/demo/api"
        assert entry.check is not None and entry.check.url == "https://authq.example.com/demo/api/me"
    code = entries["demo-oauth2"]
    assert code.pkce and code.authorize_url == "https://authq.example.com/demo/oauth/authorize"
    assert code.token_url == "https://authq.example.com/demo/oauth/token"
    store = entries["demo-woo"].variable("store_url")
    assert store is not None and store.default == "https://authq.example.com/demo/shop" and store.advanced
    client = code.variable("client_secret")
    assert client is not None and client.is_secret and client.advanced and client.default == "demo-secret"
    basic = entries["demo-basic"]
    assert [(v.key, v.required, v.advanced, v.default) for v in basic.variables] == [
        ("username", True, False, None), ("password", True, False, None)]


def test_without_a_public_url_the_entries_follow_the_bind_address() -> None:
    catalog = service_catalog(_settings(demo=True, host="127.0.0.1", port=9191))
    basic = catalog.implementation("demo-basic")
    assert basic is not None and basic.base_url == "http://127.0.0.1:9191/demo/api"


def test_an_id_the_catalog_already_uses_is_a_start_up_error() -> None:
    catalog = parse_catalog("implementations:\n  - {id: demo-basic, system: Mine, type: basic}\n", "mine.yaml")
    with pytest.raises(ConfigError, match="demo-basic"):
        with_demo(catalog, "http://127.0.0.1:8080")
