"""Who a request to the demo API is, from its credentials: a bearer token the demo's OAuth
server issued, HTTP Basic ``demo``/``demo``, or HTTP Basic with consumer keys the demo store
issued. Anything else is nobody (``None``: the API answers 401)."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from api.demo.store import DemoStore, digest
from tasks.demo import facts


def _basic(header: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon else None


async def identify(store: DemoStore, authorization: str | None) -> dict[str, Any] | None:
    if not authorization:
        return None
    scheme = authorization[:7].lower()
    if scheme == "bearer ":
        grant = await store.access(authorization[7:].strip())
        if grant is None:
            return None
        return {"user": grant["user"], "name": facts.USER_NAME if grant["user"] else None,
                "auth": "oauth2", "grant": grant["grant"], "client_id": grant["client_id"],
                "scopes": grant["scope"]}
    if scheme[:6] != "basic ":
        return None
    pair = _basic(authorization)
    if pair is None:
        return None
    username, password = pair
    if username.startswith("ck_"):
        key = await store.woo_key(username)
        if key is None or not hmac.compare_digest(digest(password), key["secret_sha256"]):
            return None
        return {"user": facts.USERNAME, "name": facts.USER_NAME, "auth": "woocommerce_keys",
                "key_id": key["key_id"], "app_name": key["app_name"], "permissions": key["permissions"]}
    right = (hmac.compare_digest(username.encode(), facts.USERNAME.encode())
             & hmac.compare_digest(password.encode(), facts.PASSWORD.encode()))
    if not right:
        return None
    return {"user": facts.USERNAME, "name": facts.USER_NAME, "auth": "basic"}
