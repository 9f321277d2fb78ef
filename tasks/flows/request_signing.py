"""The credentials one proxied request carries (contract §9): the connector's fixed headers, or,
for OAuth 1.0a, an ``Authorization`` header signed for this very request.

An OAuth 1.0a signature covers the method, the URL with its query and, when the body is
form-encoded, the body's parameters (RFC 5849 §3.4.1.3). A streamed body (over the 1 MiB the
proxy keeps) is not read to sign it: its parameters are left out of the signature, as for any
body that is not form-encoded.
"""

from __future__ import annotations

from typing import Any

from yarl import URL

from tasks.flows.credentials_for_use import CredentialsForUseView
from tasks.flows.oauth1 import authorization_header
from tasks.model.catalog import OAUTH1_TYPES


def request_headers(usable: CredentialsForUseView, method: str, url: str | URL, content_type: str | None,
                    body: Any) -> dict[str, str]:
    if usable["type"] not in OAUTH1_TYPES:
        return usable["headers"]
    form = body if isinstance(body, bytes) else None
    # (the URL as text only here: rendering it on every proxied request cost a little for nothing)
    return {"Authorization": authorization_header(usable["values"], method, str(url), content_type, form)}
