"""``tasks.model.catalog``: which variables decide where a URL template points, and the
``authq catalog check`` refusal of a platform app whose token URL host a connector chooses."""

from __future__ import annotations

from pathlib import Path

import pytest

from authq.cli import main
from tasks.model.catalog import authority_variables, load_catalog, parse_catalog, platform_app_problems
from tests.support.helpers import TEST_CATALOG


@pytest.mark.parametrize(("template", "expected"), [
    ("{{store_url}}/wp-json/wc/v3/system_status", {"store_url"}),            # a whole base URL
    ("{{ base_url }}/token?x={{client_id}}", {"base_url"}),
    ("{{base_url}}:{{port}}/token", {"base_url", "port"}),
    ("https://{{shop}}.myshopify.com/admin/oauth/access_token", {"shop"}),  # in the host
    ("https://api.example.com:{{port}}/v1", {"port"}),                      # in the port
    ("{{scheme}}://api.example.com/v1", {"scheme"}),                        # in the scheme
    ("https://{{account_id}}.suitetalk.api.netsuite.com/services/{{version}}/token", {"account_id"}),
    ("https://api.bigcommerce.com/stores/{{store_hash}}/v2/store", set()),  # only in the path
    ("https://api.example.com?tenant={{tenant}}", set()),                   # only in the query
    ("https://api.example.com#{{anchor}}", set()),
    ("https://login.xero.com/identity/connect/authorize", set()),
    ("api.example.com/{{path}}", {"path"}),                                 # not absolute: not pinned anywhere
])
def test_authority_variables(template, expected):
    assert authority_variables(template) == expected


def test_an_implementations_authority_variables_cover_all_its_urls():
    catalog = load_catalog(None)
    assert catalog.implementation("woocommerce-basic").authority_variables() == {"store_url"}  # type: ignore[union-attr]
    assert catalog.implementation("shopify-oauth2").authority_variables() == {"shop"}  # type: ignore[union-attr]
    assert catalog.implementation("bigcommerce-token").authority_variables() == set()  # type: ignore[union-attr]
    assert catalog.implementation("xero-oauth2").authority_variables() == set()  # type: ignore[union-attr]


UNSAFE = """
implementations:
  - id: per-shop
    system: Shop
    type: oauth2_authorization_code
    authorize_url: "https://login.example.com/authorize"
    token_url: "https://{{shop}}.example.com/token"
    variables: [{key: shop, required: true}, {key: client_id}, {key: client_secret}]
  - id: fixed
    system: Fixed
    type: oauth2_authorization_code
    authorize_url: "https://{{region}}.login.example.com/authorize"
    token_url: "https://auth.example.com/token"
    variables: [{key: region}, {key: client_id}, {key: client_secret}]
platform_apps:
  - {key: shop-app, implementation_id: per-shop, client_id: app, client_secret_env: SHOP_APP_SECRET}
  - {key: fixed-app, implementation_id: fixed, client_id: app, client_secret_env: FIXED_APP_SECRET}
"""


def test_a_platform_app_on_a_token_url_whose_host_is_a_variable_is_a_problem():
    problems = platform_app_problems(parse_catalog(UNSAFE, "unsafe.yaml"))
    assert len(problems) == 1
    assert "shop-app" in problems[0] and "shop" in problems[0]
    assert platform_app_problems(load_catalog(None)) == []


def test_authq_catalog_check_refuses_it(tmp_path: Path, capsys):
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text(UNSAFE)
    assert main(["catalog", "check", str(unsafe)]) == 2
    err = capsys.readouterr().err
    assert "shop-app" in err and "fixed-app" not in err
    safe = tmp_path / "safe.yaml"
    safe.write_text(UNSAFE.replace("  - {key: shop-app, implementation_id: per-shop, client_id: app, "
                                   "client_secret_env: SHOP_APP_SECRET}\n", ""))
    assert main(["catalog", "check", str(safe)]) == 0
    assert "OK (2 implementations, 1 platform apps)" in capsys.readouterr().out
    # The test session's own catalog points its platform app at a loopback server by variable:
    # loadable for the tests, and exactly what the check refuses.
    assert main(["catalog", "check", str(TEST_CATALOG)]) == 2


def test_a_catalog_file_that_cannot_be_read_names_both_ways_it_was_given(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`authq catalog check FILE` reads a file given on the command line, not AUTHQ_CATALOG: the
    message must not send the user to a setting they never set."""
    missing = tmp_path / "nowhere.yaml"
    assert main(["catalog", "check", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"cannot read catalog {missing}" in err and "authq catalog check" in err and "AUTHQ_CATALOG" in err
