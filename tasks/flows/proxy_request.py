"""What the proxy (contract §9) sends where: the provider URL a proxied path maps to, and which
headers pass each way. No I/O: ``api/views/proxy.py`` sends.

The path can never leave the implementation's ``base_url``: a dot segment (``..``, ``.``, also
percent-encoded), an encoded slash or backslash, a backslash or an empty segment (``//host``)
is refused, and the URL built is checked to have the base's scheme, host, port and path prefix.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from urllib.parse import unquote

from yarl import URL

from tasks.errors import PathRefused

# RFC 9110 §7.6.1, and the older names proxies still see.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                        "upgrade", "proxy-authenticate", "proxy-authorization"})
# Never passed on to the provider: the platform's own credentials to authq, its cookies, and the
# host it called (the provider's is the base URL's).
NOT_SENT = frozenset({"host", "authorization", "cookie"})
OWN_PREFIX = "x-authq-"


def provider_url(base: str, raw_path: str, raw_query: str) -> URL:
    """``base`` (an absolute http(s) URL, rendered) + ``/`` + ``raw_path`` (still percent-encoded,
    as the client sent it), with the client's query string."""
    lowered = raw_path.lower()
    if "%2f" in lowered or "%5c" in lowered or "\\" in raw_path:
        raise PathRefused("The path may not contain an encoded slash or a backslash.")
    segments = raw_path.split("/")
    if any(unquote(segment) in (".", "..") for segment in segments):
        raise PathRefused("The path may not contain a '.' or '..' segment.")
    if any(segment == "" for segment in segments[:-1]):
        raise PathRefused("The path may not contain an empty segment ('//').")
    root = _root(base)
    try:
        target = URL(f"{root}/{raw_path}" + (f"?{raw_query}" if raw_query else ""), encoded=True)
    except ValueError:
        raise PathRefused("The path is not a valid URL path.") from None
    if (target.scheme, target.raw_host, target.port) != (root.scheme, root.raw_host, root.port) or \
            not target.raw_path.startswith(root.raw_path.rstrip("/") + "/"):
        raise PathRefused("The path leaves the implementation's base URL.")
    return target


@functools.lru_cache(maxsize=1024)
def _root(base: str) -> URL:
    """The base URL, parsed once per distinct base (a connector's is the same on every request)."""
    return URL(base.rstrip("/"))


NOT_PASSED_ON = HOP_BY_HOP | NOT_SENT


def _dropped(items: list[tuple[str, str]], always: frozenset[str]) -> frozenset[str]:
    """``always``, and the headers a ``Connection`` header names (hop-by-hop too, RFC 9110 §7.6.1)."""
    named = {token.strip().lower() for name, value in items if name.lower() == "connection"
             for token in value.split(",") if token.strip()}
    return always | named if named else always


def headers_to_send(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The client's headers the provider gets: all but hop-by-hop ones (and those ``Connection``
    names), ``Host``, ``Authorization``, ``Cookie`` and authq's own ``X-Authq-*``."""
    items = list(headers)
    dropped = _dropped(items, NOT_PASSED_ON)
    return [(k, v) for k, v in items if (name := k.lower()) not in dropped and not name.startswith(OWN_PREFIX)]


def headers_to_return(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The provider's answer headers the client gets: all but hop-by-hop ones."""
    items = list(headers)
    dropped = _dropped(items, HOP_BY_HOP)
    return [(k, v) for k, v in items if k.lower() not in dropped]
