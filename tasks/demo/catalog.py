"""The four catalog entries ``AUTHQ_DEMO`` adds (contract §13), built from the public URL so
that the API and every worker of one deployment point them at the same origin."""

from __future__ import annotations

from typing import Any

from tasks.demo import facts
from tasks.errors import ConfigError
from tasks.model.catalog import Catalog, load_catalog
from tasks.settings import Settings

SYSTEM = "authq demo"
DEMO_IDS = ("demo-oauth2", "demo-client-credentials", "demo-basic", "demo-woo")
# Settings the connect page may offer: the demo counts nothing, but a newcomer sees a limit.
DEFAULTS = {"timezone": "UTC", "date_format": "Y-m-d", "rate_limit_unit": "second", "rate_limit_duration": 5}


def demo_entries(origin: str) -> list[dict[str, Any]]:
    """The entries, as a catalog file would hold them, for a demo served at ``origin``."""
    api = f"{origin}{facts.API_PATH}"
    check = {"method": "GET", "url": f"{api}/me"}
    # The demo's own client, filled in (and ``advanced``: a connect page need not ask for them).
    client = [
        {"key": "client_id", "label": "Client ID", "required": True, "advanced": True, "default": facts.CLIENT_ID},
        {"key": "client_secret", "label": "Client secret", "secret": True, "required": True, "advanced": True,
         "default": facts.CLIENT_SECRET},
    ]
    common = {"system": SYSTEM, "check": check, "base_url": api, "defaults": DEFAULTS}
    return [
        {"id": "demo-oauth2", "type": "oauth2_authorization_code", **common,
         "authorize_url": f"{origin}{facts.AUTHORIZE_PATH}", "token_url": f"{origin}{facts.TOKEN_PATH}",
         "issuer": f"{origin}{facts.ISSUER_PATH}", "scopes": list(facts.SCOPES), "pkce": True,
         "token_auth": "client_secret_basic", "variables": client},
        {"id": "demo-client-credentials", "type": "oauth2_client_credentials", **common,
         "token_url": f"{origin}{facts.TOKEN_PATH}", "scopes": ["read"], "token_auth": "client_secret_basic",
         "variables": client},
        {"id": "demo-basic", "type": "basic", **common,
         "variables": [{"key": "username", "label": "Username", "required": True, "configurable": True},
                       {"key": "password", "label": "Password", "secret": True, "required": True,
                        "configurable": True}]},
        {"id": "demo-woo", "type": "woocommerce_app", **common, "scope": "read_write",
         "username_variable": "consumer_key", "password_variable": "consumer_secret",
         "variables": [{"key": "store_url", "label": "Store URL", "required": True, "advanced": True,
                        "default": f"{origin}{facts.SHOP_PATH}"}]},
    ]


def with_demo(catalog: Catalog, origin: str) -> Catalog:
    """``catalog`` plus the demo's entries; an id the catalog already uses is a start-up error."""
    taken = sorted(set(DEMO_IDS) & {i.id for i in catalog.implementations})
    if taken:
        raise ConfigError(f"AUTHQ_DEMO adds the implementations {list(DEMO_IDS)}, but the catalog already has "
                          f"{taken}; rename them or run without the demo.")
    data = catalog.model_dump(mode="json", exclude_unset=True)
    data["implementations"] = [*data["implementations"], *demo_entries(origin)]
    return Catalog.model_validate(data)


def service_catalog(settings: Settings) -> Catalog:
    """The catalog a process of this deployment serves: the file's, plus the demo's with ``AUTHQ_DEMO``."""
    catalog = load_catalog(settings.catalog)
    return with_demo(catalog, settings.effective_public_url) if settings.demo else catalog
