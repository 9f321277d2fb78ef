"""What the platform's own flows get to call the provider with a connector (contract §9,
``GET /connectors/{id}/credentials``): the headers and query a request must carry, and the
type's usable parts.

The headers are built as authq's own requests build them (``basic_token.py``, ``oauth2.py``,
``callbacks.py``), so what the platform sends is what authq's check proved works. A refresh
token, an OAuth client's secret, a private key or a passphrase is never among them: the
platform gets what a request needs, never what would let it mint more.
"""

from __future__ import annotations

import base64
from typing import Any

from pydantic import with_config
from typing_extensions import TypedDict

from tasks.model.catalog import OAUTH1_TYPES, OAUTH2_TYPES, Implementation
from tasks.model.records import Connector, iso
from tasks.model.views import EXACT, Timestamp
from tasks.security.sealing import SecretBox

MIN_TTL_DEFAULT = 60
MIN_TTL_MAX = 3600
OAUTH2 = OAUTH2_TYPES


@with_config(EXACT)
class CredentialsForUseView(TypedDict):
    connector_id: str
    type: str
    expires_at: Timestamp | None
    headers: dict[str, str]
    query: dict[str, str]
    values: dict[str, str]


def _basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def _bearer(token_type: str) -> str:
    # RFC 6750 names the scheme "Bearer"; providers answer "bearer" or "Bearer" alike.
    return "Bearer" if token_type.lower() == "bearer" else token_type


def credentials_for_use(connector: Connector, impl: Implementation, box: SecretBox) -> CredentialsForUseView | None:
    """The connector's credentials, ready to use; None when what it stores is not what its type
    stores (an implementation whose type changed since it was authorised): nothing to hand out."""
    sealed: dict[str, Any] = box.open_json(connector.credentials_sealed) if connector.credentials_sealed else {}
    headers: dict[str, str]
    values: dict[str, str]
    if impl.type in OAUTH2 and sealed.get("access_token"):
        token_type = str(sealed.get("token_type") or "bearer")
        # A provider that reads the token from a header of its own (Amazon SP-API's
        # x-amz-access-token) names it in token_header, as a token implementation does.
        headers = ({impl.token_header: str(sealed["access_token"])} if impl.token_header
                   else {"Authorization": f"{_bearer(token_type)} {sealed['access_token']}"})
        values = {"access_token": str(sealed["access_token"]), "token_type": token_type.lower()}
    elif impl.type == "basic" and "username" in sealed:
        headers = _basic(str(sealed["username"]), str(sealed["password"]))
        values = {"username": str(sealed["username"]), "password": str(sealed["password"])}
    elif impl.type == "woocommerce_app" and "username" in sealed:
        headers = _basic(str(sealed["username"]), str(sealed["password"]))
        values = {"consumer_key": str(sealed["username"]), "consumer_secret": str(sealed["password"])}
    elif impl.type == "token" and "token" in sealed:
        token = str(sealed["token"])
        headers = {impl.token_header: token} if impl.token_header else {"Authorization": f"Bearer {token}"}
        values = {"token": token}
    elif impl.type in OAUTH1_TYPES and "token_secret" in sealed:
        # An OAuth 1.0a signature covers each request's method, URL and form body: there is no
        # header to hand out, only what a signer needs (contract §9). The proxy signs with these.
        headers = {}
        values = {key: str(sealed[key]) for key in ("consumer_key", "consumer_secret", "token", "token_secret")}
        values["signature_method"] = impl.oauth1_signature_method
        values["realm"] = str(sealed.get("realm") or "")
    else:
        return None
    return {"connector_id": connector.id, "type": impl.type, "expires_at": iso(connector.credentials.expires_at),
            "headers": headers, "query": {}, "values": values}
