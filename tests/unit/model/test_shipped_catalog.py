"""The catalog authq ships (contract §4): at least 20 real systems, every entry beside the
provider's documentation page, and every URL of every entry rendered with sample variables
(and the entry's defaults) to the scheme, host and path the provider documents."""

from __future__ import annotations

import re
from importlib import resources
from urllib.parse import urlsplit

from tasks.model.catalog import load_catalog
from tasks.provider.guard import render_realm, render_url

SAMPLE = {"shop": "acme", "store_url": "https://shop.example.com", "store_hash": "abc123",
          "account_id": "1234567_SB1", "my_domain": "acme--uat.sandbox.my.salesforce.com",
          "tenant": "contoso.onmicrosoft.com", "region": "eu", "subdomain": "acme", "datacentre": "euw1",
          "account": "acme"}
# Each entry's URLs as its provider documents them, for the sample values above.
DOCUMENTED = {
    "shopify-admin-token": {
        "base_url": "https://acme.myshopify.com/admin/api/2025-10",
        "check.url": "https://acme.myshopify.com/admin/api/2025-10/shop.json",
    },
    "shopify-oauth2": {
        "authorize_url": "https://acme.myshopify.com/admin/oauth/authorize",
        "token_url": "https://acme.myshopify.com/admin/oauth/access_token",
        "base_url": "https://acme.myshopify.com/admin/api/2025-10",
    },
    "woocommerce-basic": {
        "base_url": "https://shop.example.com/wp-json/wc/v3",
        "check.url": "https://shop.example.com/wp-json/wc/v3/system_status",
    },
    "woocommerce-app": {
        "base_url": "https://shop.example.com/wp-json/wc/v3",
        "check.url": "https://shop.example.com/wp-json/wc/v3/system_status",
    },
    "bigcommerce-token": {
        "base_url": "https://api.bigcommerce.com/stores/abc123",
        "check.url": "https://api.bigcommerce.com/stores/abc123/v2/store",
    },
    "magento2-integration": {
        "base_url": "https://shop.example.com/rest",
        "check.url": "https://shop.example.com/rest/V1/store/storeConfigs",
    },
    "netsuite-tba": {
        "base_url": "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest",
        "check.url": "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/record/v1/metadata-catalog",
    },
    "netsuite-client-credentials": {
        "token_url": "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/token",
        "base_url": "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest",
    },
    "netsuite-oauth2": {
        "authorize_url": "https://1234567-sb1.app.netsuite.com/app/login/oauth2/authorize.nl",
        "token_url": "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/token",
        "base_url": "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest",
    },
    "xero-oauth2": {
        "authorize_url": "https://login.xero.com/identity/connect/authorize",
        "token_url": "https://identity.xero.com/connect/token",
        "base_url": "https://api.xero.com",
    },
    "xero-custom-connection": {
        "token_url": "https://identity.xero.com/connect/token",
        "base_url": "https://api.xero.com",
    },
    "hubspot-oauth2": {
        "authorize_url": "https://app.hubspot.com/oauth/authorize",
        "token_url": "https://api.hubapi.com/oauth/v1/token",
        "base_url": "https://api.hubapi.com",
    },
    "hubspot-private-app": {
        "base_url": "https://api.hubapi.com",
        "check.url": "https://api.hubapi.com/account-info/v3/details",
    },
    "salesforce-oauth2": {
        "authorize_url": "https://acme--uat.sandbox.my.salesforce.com/services/oauth2/authorize",
        "token_url": "https://acme--uat.sandbox.my.salesforce.com/services/oauth2/token",
        "base_url": "https://acme--uat.sandbox.my.salesforce.com/services/data/v62.0",
    },
    "salesforce-client-credentials": {
        "token_url": "https://acme--uat.sandbox.my.salesforce.com/services/oauth2/token",
        "base_url": "https://acme--uat.sandbox.my.salesforce.com/services/data/v62.0",
    },
    "microsoft-graph-oauth2": {
        "authorize_url": "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize",
        "token_url": "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
        "base_url": "https://graph.microsoft.com/v1.0",
    },
    "microsoft-graph-client-credentials": {
        "token_url": "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
        "base_url": "https://graph.microsoft.com/v1.0",
    },
    "google-service-account": {
        "token_url": "https://oauth2.googleapis.com/token",
        "base_url": "https://sheets.googleapis.com/v4",
    },
    "google-oauth2": {
        "authorize_url": "https://accounts.google.com/o/oauth2/v2/auth",
        "token_url": "https://oauth2.googleapis.com/token",
        "base_url": "https://sheets.googleapis.com/v4",
    },
    "amazon-sp-api": {
        "token_url": "https://api.amazon.com/auth/o2/token",
        "base_url": "https://sellingpartnerapi-eu.amazon.com",
    },
    "amazon-sp-api-grantless": {
        "token_url": "https://api.amazon.com/auth/o2/token",
        "base_url": "https://sellingpartnerapi-eu.amazon.com",
    },
    "zendesk-oauth2": {
        "authorize_url": "https://acme.zendesk.com/oauth/authorizations/new",
        "token_url": "https://acme.zendesk.com/oauth/tokens",
        "base_url": "https://acme.zendesk.com/api/v2",
    },
    "zendesk-api-token": {
        "base_url": "https://acme.zendesk.com/api/v2",
        "check.url": "https://acme.zendesk.com/api/v2/users/me.json",
    },
    "sage-accounting-oauth2": {
        "authorize_url": "https://www.sageone.com/oauth2/auth/central?filter=apiv3.1",
        "token_url": "https://oauth.accounting.sage.com/token",
        "base_url": "https://api.accounting.sage.com/v3.1",
    },
    "brightpearl-oauth2": {
        "authorize_url": "https://oauth.brightpearl.com/authorize/acme",
        "token_url": "https://euw1.brightpearlconnect.com/acme/oauth/token",
        "base_url": "https://euw1.brightpearlconnect.com/public-api/acme",
    },
}
SYSTEMS = {"Shopify", "WooCommerce", "BigCommerce", "Magento 2 / Adobe Commerce", "NetSuite", "Xero", "HubSpot",
           "Salesforce", "Microsoft Graph", "Google Sheets", "Amazon Selling Partner API", "Zendesk",
           "Sage Accounting", "Brightpearl"}


def _values(impl) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {**{v.key: v.default for v in impl.variables if v.default}, **SAMPLE}


def test_every_url_of_every_entry_renders_to_the_documented_scheme_host_and_path():
    catalog = load_catalog(None)
    assert len(catalog.implementations) >= 20
    assert {impl.system for impl in catalog.implementations} == SYSTEMS
    assert {impl.id for impl in catalog.implementations} == set(DOCUMENTED)
    for impl in catalog.implementations:
        rendered = {field: urlsplit(render_url(template, _values(impl))) for field, template in impl.urls().items()}
        assert set(rendered) == set(DOCUMENTED[impl.id]), impl.id
        for field, parts in rendered.items():
            documented = urlsplit(DOCUMENTED[impl.id][field])
            assert parts.scheme == "https", (impl.id, field)
            assert (parts.hostname, parts.path, parts.query) == (documented.hostname, documented.path,
                                                                 documented.query), (impl.id, field)


def test_netsuite_entries_take_host_and_realm_from_one_account_id():
    catalog = load_catalog(None)
    tba = catalog.implementation("netsuite-tba")
    assert tba is not None and tba.realm is not None
    assert render_realm(tba.realm, {"account_id": "1234567_SB1"}) == "1234567_SB1"
    assert render_realm(tba.realm, {"account_id": "1234567_sb1"}) == "1234567_SB1"
    assert tba.oauth1_signature_method == "HMAC-SHA256"
    m2m = catalog.implementation("netsuite-client-credentials")
    assert m2m is not None and m2m.token_auth == "private_key_jwt" and m2m.jwt_alg in ("PS256", "ES256")
    assert m2m.variable("client_secret") is None  # the certificate's key authenticates, not a secret


def test_every_entry_cites_its_providers_documentation():
    text = resources.files("tasks.model").joinpath("catalog.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    cited = {}
    for number, line in enumerate(lines):
        found = re.match(r"  - id: (\S+)", line)
        if found:
            above = number - 1
            while above >= 0 and lines[above].startswith("  #"):
                above -= 1
            cited[found.group(1)] = any("https://" in comment for comment in lines[above + 1:number])
    assert set(cited) == set(DOCUMENTED) and all(cited.values()), [k for k, v in cited.items() if not v]
