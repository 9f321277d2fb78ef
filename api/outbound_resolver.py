"""The outbound guard for the API's own HTTP client (aiohttp): the proxy and webhook deliveries.

``GuardedResolver`` is an ``aiohttp.abc.AbstractResolver``: it resolves a name once (the system's
resolver through the loop, or an injected one), checks every address with the same
``AddressPolicy`` the workers use (``tasks/provider/addresses.py``) and answers those addresses
only. aiohttp connects to exactly what its resolver answered, and keeps ``Host`` and TLS (SNI,
the certificate's name) on the URL's host. aiohttp never asks the resolver about an address
literal, so ``literal_guard``, a client middleware (run for every request and every redirect
hop), checks those. ``guarded_session`` wires both, with no DNS cache: one lookup per request.

Refusals raise ``DestinationRefused`` (``url_not_allowed``); a name that does not resolve is
aiohttp's ``ClientConnectorDNSError``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_middlewares import ClientHandlerType, ClientMiddlewareType

from tasks.provider.addresses import AddressPolicy, address_literal

# (host, port) -> the host's addresses, in the order to try them.
AsyncResolve = Callable[[str, int], Awaitable[Sequence[str]]]
DEFAULT_PORTS = {"http": 80, "https": 443}


def _family(address: str) -> socket.AddressFamily:
    literal = address_literal(address)
    return socket.AF_INET6 if literal is not None and literal.version == 6 else socket.AF_INET


class GuardedResolver(AbstractResolver):
    def __init__(self, policy: AddressPolicy, resolve: AsyncResolve | None = None) -> None:
        self.policy = policy
        self._resolve = resolve

    async def _system(self, host: str, port: int, family: int) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        return [str(info[4][0]) for info in infos]

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if address_literal(host) is not None:
            addresses: Sequence[str] = [host]
        elif self._resolve is not None:
            addresses = await self._resolve(host, port)
        else:
            addresses = await self._system(host, port, family)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{host!r} has no address")
        numeric = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
        return [ResolveResult(hostname=host, host=address, port=port, family=_family(address), proto=0, flags=numeric)
                for address in self.policy.check(host, port, addresses)]

    async def close(self) -> None:
        return None


KNOWN_HOSTS = 4096  # (host, port) pairs the guard remembers as passed, before it starts afresh


def literal_guard(policy: AddressPolicy) -> ClientMiddlewareType:
    """A client middleware refusing a request whose URL names a non-permitted address literal.

    It runs for every proxied request: a (host, port) that passed (a name, which the resolver
    checks, or a permitted literal) is remembered, since parsing it again each time was a
    measurable share of a proxied request. A refused one is checked, and refused, every time."""
    passed: set[tuple[str, int]] = set()

    async def guard(request: aiohttp.ClientRequest, handler: ClientHandlerType) -> aiohttp.ClientResponse:
        host = request.url.raw_host or ""
        port = request.url.port or DEFAULT_PORTS.get(request.url.scheme, 0)
        if (host, port) not in passed:
            if address_literal(host) is not None:
                policy.check(host, port, [host])
            if len(passed) >= KNOWN_HOSTS:
                passed.clear()
            passed.add((host, port))
        return await handler(request)

    return guard


def guarded_session(policy: AddressPolicy, resolve: AsyncResolve | None = None, *,
                    connector_options: dict[str, Any] | None = None, **session_options: Any) -> aiohttp.ClientSession:
    """An ``aiohttp.ClientSession`` that reaches only what ``policy`` permits (call it on a running loop)."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy, resolve), use_dns_cache=False,
                                     **(connector_options or {}))
    middlewares = (literal_guard(policy), *session_options.pop("middlewares", ()))
    return aiohttp.ClientSession(connector=connector, middlewares=middlewares, trust_env=False, **session_options)
