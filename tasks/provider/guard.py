"""Filling catalog URL templates, and refusing URLs that are not http(s).

``{{key}}`` is replaced by the variable's value, URL-encoded. A placeholder that *starts*
the template (``{{store_url}}/wp-json/...``) stands for a whole base URL: it must be an
absolute http(s) URL and is inserted as-is, without its trailing slash. (The contract's
WooCommerce template needs this; the decision is written down in the README.)
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tasks.errors import ErrorCode, JobFailed
from tasks.model.templates import PLACEHOLDER, apply_filters, filters_of, render_encoded, render_text
from tasks.provider.failures import DestinationRefused


def render_url(template: str, values: dict[str, str], field: str = "variables") -> str:
    def value(name: str) -> str:
        if name not in values or values[name] == "":
            raise JobFailed(ErrorCode.URL_NOT_ALLOWED, f"The URL needs the variable {name!r}, which has no value.",
                            field)
        return values[name]

    first = PLACEHOLDER.match(template)
    head = ""
    rest = template
    if first:
        base = apply_filters(value(first.group(1)), filters_of(first.group(0))).strip().rstrip("/")
        parts = urlsplit(base)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise JobFailed(ErrorCode.URL_NOT_ALLOWED,
                            f"The variable {first.group(1)!r} must be an absolute http(s) URL.", field)
        head, rest = base, template[first.end():]
    return head + render_encoded(rest, value)


def render_realm(template: str, values: dict[str, str]) -> str:
    """An OAuth 1.0a realm from its template: the filtered values as they are (the Authorization
    header quotes the realm; it is not a URL)."""
    def value(name: str) -> str:
        if not values.get(name):
            raise JobFailed(ErrorCode.CREDENTIALS_REJECTED, f"The realm needs the variable {name!r}, which has no "
                            "value.", "variables")
        return values[name]
    return render_text(template, values, value)


def require_http_url(url: str) -> None:
    """Refuse URLs that are not absolute http(s). (Where they lead is checked on connecting:
    ``addresses.checked_addresses``, on the addresses the name resolves to.)"""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise DestinationRefused(parts.hostname or "", f"Only absolute http(s) URLs may be called, not "
                                 f"{parts.scheme or 'this'!r}.")
