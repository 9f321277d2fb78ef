"""Filling catalog URL templates, and refusing destinations a connector may not reach.

``{{key}}`` is replaced by the variable's value, URL-encoded. A placeholder that *starts*
the template (``{{store_url}}/wp-json/...``) stands for a whole base URL: it must be an
absolute http(s) URL and is inserted as-is, without its trailing slash. (The contract's
WooCommerce template needs this; the decision is written down in the README.)
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import quote, urlsplit

from tasks.errors import ErrorCode, JobFailed
from tasks.model.catalog import PLACEHOLDER


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
        base = value(first.group(1)).strip().rstrip("/")
        parts = urlsplit(base)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise JobFailed(ErrorCode.URL_NOT_ALLOWED,
                            f"The variable {first.group(1)!r} must be an absolute http(s) URL.", field)
        head, rest = base, template[first.end():]
    return head + PLACEHOLDER.sub(lambda m: quote(value(m.group(1)), safe=""), rest)


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def guard_destination(url: str, allow_private: bool) -> None:
    """Refuse URLs that are not http(s), or whose host resolves to a non-public address."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise JobFailed(ErrorCode.URL_NOT_ALLOWED,
                        f"Only absolute http(s) URLs may be called, not {parts.scheme or 'this'!r}.")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise JobFailed(ErrorCode.PROVIDER_UNREACHABLE, f"The host {parts.hostname!r} does not resolve.",
                        retryable=True) from None
    for info in infos:
        if not _is_public(str(info[4][0])):
            raise JobFailed(
                ErrorCode.URL_NOT_ALLOWED,
                f"The host {parts.hostname!r} resolves to a private, loopback or link-local address; "
                "set AUTHQ_ALLOW_PRIVATE_NETWORKS=true to allow it (tests, on-prem).",
            )
