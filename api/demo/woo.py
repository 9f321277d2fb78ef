"""The demo store's app authentication, as WooCommerce does it (``class-wc-auth.php``), without
HTTP: what ``/wc-auth/v1/authorize`` accepts, the keys an approval makes, where the browser goes.

The keys are posted to the ``callback_url`` server to server, and kept only if it answers 200
(WooCommerce deletes them on any other answer). The demo posts keys only to authq's own callback
(``{public URL}/api/v1/oauth/woo-app-auth``): a demo that posted to any URL asked of it would let
anyone make this server send requests wherever they like.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from api.demo.oauth import redirect_with
from tasks.errors import DemoRefused

SCOPES = {"read": "Read", "write": "Write", "read_write": "Read/Write"}
CALLBACK_PATH = "/api/v1/oauth/woo-app-auth"


@dataclass(frozen=True)
class AppRequest:
    app_name: str
    scope: str
    user_id: str
    return_url: str
    callback_url: str

    def record(self) -> dict[str, Any]:
        return asdict(self)


def parse_request(query: Mapping[str, str], public_url: str) -> AppRequest:
    """The store's authorize request, or ``DemoRefused`` (WooCommerce ``wp_die``s with a message)."""
    for name in ("app_name", "scope", "user_id", "return_url", "callback_url"):
        if not query.get(name):
            raise DemoRefused("", f"Missing parameter {name}.")
    if query["scope"] not in SCOPES:
        raise DemoRefused("", "Invalid scope: it must be read, write or read_write.")
    if query["callback_url"] != public_url + CALLBACK_PATH:
        raise DemoRefused("", f"The demo store sends keys only to authq's own callback, {public_url}{CALLBACK_PATH}.")
    parts = urlsplit(query["return_url"])
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DemoRefused("", "The return_url must be an absolute http(s) URL.")
    return AppRequest(query["app_name"][:200], query["scope"], query["user_id"], query["return_url"],
                      query["callback_url"])


@dataclass(frozen=True)
class Keys:
    key_id: int
    consumer_key: str
    consumer_secret: str

    def payload(self, request: AppRequest) -> dict[str, Any]:
        """What WooCommerce posts (``post_consumer_data``)."""
        return {"key_id": self.key_id, "user_id": request.user_id, "consumer_key": self.consumer_key,
                "consumer_secret": self.consumer_secret, "key_permissions": request.scope}


def new_keys() -> Keys:
    # WooCommerce's keys: "ck_"/"cs_" and 40 hex digits (wc_rand_hash).
    return Keys(secrets.randbelow(2**31 - 1) + 1, "ck_" + secrets.token_hex(20), "cs_" + secrets.token_hex(20))


def returned(request: AppRequest, success: bool) -> str:
    """Where the browser goes afterwards: ``return_url?success=1|0&user_id=…``."""
    return redirect_with(request.return_url, {"success": "1" if success else "0", "user_id": request.user_id})
