"""The connect page's answers: HTML with the page's headers, and the form built for an
implementation from what the user typed, the connector being reconnected and the errors."""

from __future__ import annotations

from aiohttp import web

from api.connect import templates
from api.connect.offer import asked
from api.connect.security import with_headers
from tasks.model.catalog import CatalogVariable, Implementation
from tasks.model.records import Connector

KINDS = {
    "oauth2_authorization_code": "Sign in with the provider",
    "oauth1": "Sign in with the provider",
    "woocommerce_app": "Approve in your store",
    "basic": "Username and password",
    "token": "Access token",
    "oauth2_client_credentials": "Client credentials",
    "oauth2_jwt_bearer": "Service account",
    "oauth1_token": "Token-based authentication",
}


def html(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return with_headers(web.Response(status=status, text=text, content_type="text/html", headers=headers))


def not_found() -> web.Response:
    return html(404, templates.message_page(
        "This link is not valid", "The connect link is unknown or has expired. Ask the application you came "
        "from for a new one."))


def _label(spec: CatalogVariable) -> str:
    return spec.label or spec.key.replace("_", " ").capitalize()


def fields(impl: Implementation, typed: dict[str, str], connector: Connector | None) -> list[templates.Field]:
    """The form's inputs: what the user typed (never a secret), else the connector's current
    value (a reconnect), else the catalog's default."""
    out = []
    for spec in asked(impl):
        current = connector.variable(spec.key) if connector else None
        if spec.is_secret:
            value = ""
        elif spec.key in typed:
            value = typed[spec.key]
        elif current is not None and current.value is not None:
            value = current.value
        else:
            value = spec.default or ""
        out.append(templates.Field(key=spec.key, label=_label(spec), required=spec.required, secret=spec.is_secret,
                                   value=value, alias=spec.alias,
                                   keeps_current=bool(spec.is_secret and current is not None and current.has_value)))
    return out
