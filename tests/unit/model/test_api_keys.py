"""API key scopes (contract §3): how ``--scopes`` and ``AUTHQ_API_KEYS`` name them, and the
stable ids of static keys."""

from __future__ import annotations

import pytest

from tasks.model.api_keys import DEFAULT_SCOPES, SCOPES, ApiKey, parse_scopes, parse_static_keys, static_key_id
from tasks.settings import Settings


def test_scopes_are_read_in_the_contracts_order_each_once() -> None:
    assert parse_scopes("credentials,manage", ",") == ["manage", "credentials"]
    assert parse_scopes(" proxy + proxy ", "+") == ["proxy"]
    assert parse_scopes("manage,proxy,credentials", ",") == list(SCOPES)


@pytest.mark.parametrize("text", ["", " , ", "manage,admin", "Manage", "manage+proxy"])
def test_an_unknown_or_missing_scope_is_refused_naming_the_scopes(text: str) -> None:
    with pytest.raises(ValueError, match="scope") as raised:
        parse_scopes(text, ",")
    if "admin" in text:
        assert "'admin'" in str(raised.value) and "manage, proxy, credentials" in str(raised.value)


def test_static_keys_without_scopes_have_manage_and_proxy() -> None:
    keys = parse_static_keys(" acme:k-one , beta:k-two:credentials+manage,gamma:k-three:proxy")
    assert {raw: (k.tenant, k.scopes) for raw, k in keys.items()} == {
        "k-one": ("acme", ["manage", "proxy"]), "k-two": ("beta", ["manage", "credentials"]),
        "k-three": ("gamma", ["proxy"])}
    assert list(DEFAULT_SCOPES) == ["manage", "proxy"]
    assert all(k.static and k.created_at is None for k in keys.values())


@pytest.mark.parametrize("text", ["acme", "acme:", ":key", "acme:key:", "acme:key:root", "acme:key:manage,proxy"])
def test_a_malformed_entry_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="AUTHQ_API_KEYS"):
        parse_static_keys(text)


def test_a_static_keys_id_is_stable_its_own_and_tells_nothing_of_the_key() -> None:
    first = static_key_id("aq_secret-one")
    assert first == static_key_id("aq_secret-one") != static_key_id("aq_secret-two")
    assert first.startswith("key_") and len(first) == 36 and int(first[4:], 16) >= 0
    assert "secret" not in first
    from tasks.storage.schema import hash_api_key
    assert first[4:] not in hash_api_key("aq_secret-one")   # not the hash the key is looked up by
    # Settings read the same entries, so every process (API, CLI) derives the same ids.
    settings = Settings(api_keys="acme:aq_secret-one:proxy", _env_file=None)  # type: ignore[call-arg]
    assert settings.static_api_keys() == {"aq_secret-one": ApiKey(id=first, tenant="acme", scopes=["proxy"],
                                                                  static=True)}


def test_a_record_stored_before_scopes_reads_back_with_the_default_ones() -> None:
    old = ApiKey.model_validate_json('{"id": "key_1", "tenant": "acme", "created_at": "2026-01-01T00:00:00Z"}')
    assert old.scopes == ["manage", "proxy"] and old.allows("proxy") and not old.allows("credentials")
