"""The one exception the demo makes to the outbound guard (contract §13): the demo's own origin.

Loopback and private addresses stay refused (unless ``AUTHQ_ALLOW_PRIVATE_NETWORKS``), except
the address and port the demo is served on: the host of the public URL (``AUTHQ_PUBLIC_URL``, or
the bind address) and its port. Another port on loopback, or another loopback address, is still
refused. The check runs on the address actually connected to, as every guard check does.
"""

from __future__ import annotations

import functools
import socket
from urllib.parse import urlsplit

from tasks.provider.addresses import Allow, IPAddress, address_literal, parse
from tasks.settings import Settings

DEFAULT_PORTS = {"http": 80, "https": 443}


def demo_destination(settings: Settings) -> Allow | None:
    """The guard's exception for the demo's origin, or None without ``AUTHQ_DEMO``."""
    if not settings.demo:
        return None
    parts = urlsplit(settings.effective_public_url)
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    return DemoOrigin(host, port)


class DemoOrigin:
    """``(address, port)`` → whether it is the demo's. A name (``localhost``, a public URL's
    host) is resolved once, on first use, not at start-up: the guard's own lookup of each
    request still decides where that request goes."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    @functools.cached_property
    def addresses(self) -> frozenset[IPAddress]:
        literal = address_literal(self.host)
        if literal is not None:
            return frozenset({literal})
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except OSError:
            return frozenset()
        return frozenset(parse(str(info[4][0])) for info in infos)

    def __call__(self, ip: IPAddress, port: int) -> bool:
        return port == self.port and ip in self.addresses
