"""``merge_variables`` with the shipped catalog's URL shapes: a change of where the URLs point
(a host label, a whole base URL, another implementation) needs every stored secret again."""

from __future__ import annotations

import pytest

from tasks.errors import RequestInvalid
from tasks.model.bodies import ReauthoriseVariableIn, VariableIn
from tasks.model.catalog import load_catalog
from tasks.security.sealing import SecretBox, generate_key
from tasks.validation.variables import build_variables, merge_variables

CATALOG = load_catalog(None)
BOX = SecretBox(generate_key())


def _stored(implementation_id: str, values: dict[str, str]):  # type: ignore[no-untyped-def]
    impl = CATALOG.implementation(implementation_id)
    assert impl is not None
    return impl, build_variables([VariableIn(key=k, value=v) for k, v in values.items()], impl, BOX,
                                 platform_app=False)


def _merge(impl, current, changes: dict[str, str], given_for=None):  # type: ignore[no-untyped-def]
    items = [ReauthoriseVariableIn(key=k, value=v) for k, v in changes.items()]
    return merge_variables(current, items, impl, BOX, platform_app=False, given_for=given_for or impl)


@pytest.mark.parametrize(("implementation_id", "values", "change", "secret"), [
    ("shopify-admin-token", {"shop": "acme", "access_token": "shpat_1"}, {"shop": "evil"}, "access_token"),
    ("shopify-oauth2", {"shop": "acme", "client_id": "c", "client_secret": "s1"}, {"shop": "evil"}, "client_secret"),
    ("netsuite-oauth2", {"account_id": "123", "client_id": "c", "client_secret": "s1"},
     {"account_id": "666"}, "client_secret"),
    ("woocommerce-basic", {"store_url": "https://shop.example", "consumer_key": "ck", "consumer_secret": "cs1"},
     {"store_url": "https://shop.example.evil.test"}, "consumer_secret"),
    ("woocommerce-basic", {"store_url": "https://shop.example", "consumer_key": "ck", "consumer_secret": "cs1"},
     {"store_url": "https://shop.example:8443"}, "consumer_secret"),
])
def test_a_move_without_the_secret_is_refused_naming_it(implementation_id, values, change, secret):
    impl, current = _stored(implementation_id, values)
    with pytest.raises(RequestInvalid) as refused:
        _merge(impl, current, change)
    assert list(refused.value.errors) == ["variables"]
    assert any(secret in m and next(iter(change)) in m for m in refused.value.errors["variables"])
    merged = _merge(impl, current, {**change, secret: "given-again"})  # given again: fine
    assert {v.key: v.clear_value(BOX) for v in merged}[secret] == "given-again"


@pytest.mark.parametrize(("implementation_id", "values", "change"), [
    ("bigcommerce-token", {"store_hash": "abc", "access_token": "t1"}, {"store_hash": "def"}),  # in the path only
    ("woocommerce-basic", {"store_url": "https://shop.example", "consumer_key": "ck", "consumer_secret": "cs1"},
     {"store_url": "https://SHOP.example:443/sub/dir/"}),                                       # the same origin
    ("shopify-admin-token", {"shop": "acme", "access_token": "shpat_1", "api_version": "2025-10"}, {"shop": "acme"}),
    ("xero-oauth2", {"client_id": "c", "client_secret": "s1"}, {"client_id": "c2"}),
])
def test_no_move_keeps_the_stored_secret(implementation_id, values, change):
    impl, current = _stored(implementation_id, values)
    merged = _merge(impl, current, change)
    assert {v.key: v.clear_value(BOX) for v in merged} == {**values, **change}


def test_another_implementation_is_a_move():
    old, current = _stored("shopify-admin-token", {"shop": "acme", "access_token": "shpat_1"})
    new = CATALOG.implementation("bigcommerce-token")
    with pytest.raises(RequestInvalid) as refused:
        _merge(new, current, {"store_hash": "abc"}, given_for=old)
    assert any("access_token" in m and "implementation" in m for m in refused.value.errors["variables"])
    with pytest.raises(RequestInvalid):  # an implementation gone from the catalog: the same
        merge_variables(current, [ReauthoriseVariableIn(key="store_hash", value="abc")], new, BOX,  # type: ignore[arg-type]
                        platform_app=False, given_for=None)
