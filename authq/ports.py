"""Whether the API can listen where it is told to, asked before anything is started.

``authq up`` checks its API's address before it starts Redis, the workers or the API: on a
port another program holds, it stops there with one line naming ``--port`` rather than
starting everything and then losing the API. The probe binds as the API's server will
(``SO_REUSEADDR``, as asyncio's ``create_server`` sets it on Unix, so a connection of an
earlier run still in ``TIME_WAIT`` does not count; IPv6 sockets IPv6-only, as asyncio makes
them), on every address the host resolves to, and listens on none. The port can still be
taken between the check and the API's own bind: then the API exits with the same line
(``authq api`` turns the bind error into it), and ``up`` reports it.
"""

from __future__ import annotations

import errno
import socket

from tasks.errors import ConfigError


def in_use(host: str, port: int) -> ConfigError:
    return ConfigError(f"port {port} is in use on {host} (another program listens there); "
                       "choose another with --port.")


def unusable(host: str, port: int, reason: str) -> ConfigError:
    return ConfigError(f"cannot listen on {host}:{port} ({reason}); choose another address with --host or --port.")


def check_can_listen(host: str, port: int) -> None:
    """Raise ``ConfigError`` if a server could not listen on ``host``:``port`` now."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise unusable(host, port, exc.strerror or "the name does not resolve") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise in_use(host, port) from None
                raise unusable(host, port, exc.strerror or str(exc)) from None


BIND_ERRORS = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)


def bind_error(exc: OSError, host: str, port: int) -> ConfigError | None:
    """The API server's own bind failure in the same words as the check; None for any other error."""
    if exc.errno not in BIND_ERRORS:
        return None
    return in_use(host, port) if exc.errno == errno.EADDRINUSE else unusable(host, port, exc.strerror or str(exc))
