"""Which addresses authq may connect to, and the one lookup each outbound request makes.

Public means globally reachable unicast. An IPv6 address that carries an IPv4 one is judged by
that address too, whatever the prefix says: IPv4-mapped (``::ffff:0:0/96``), -compatible
(``::/96``) and -translated (``::ffff:0:0:0/96``), NAT64 (``64:ff9b::/96``), 6to4 (``2002::/16``)
and Teredo (``2001::/32``, its server and its client). Local-use NAT64 (``64:ff9b:1::/48``) leads
to the operator's own translator, where the embedded address sits where the operator chose: it is
never public.

``checked_addresses`` is the single place a name becomes addresses: the sync transport
(``network.py``) and the API's aiohttp resolver (``api/outbound_resolver.py``) both connect to
exactly what it returned, so no second lookup can answer something else (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from tasks.provider.failures import DestinationRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the host's addresses, in the order to try them. Injected by tests and embedders.
Resolve = Callable[[str, int], Sequence[str]]
# (address, port) -> reachable although not public (a deployment's known destination).
Allow = Callable[[IPAddress, int], bool]

IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def parse(address: str) -> IPAddress:
    return ipaddress.ip_address(address.split("%", 1)[0])  # without an IPv6 zone (fe80::1%eth0)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, where its form puts them (none for most)."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in IPV4_COMPATIBLE or ip in IPV4_TRANSLATED or ip in NAT64:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    return []


def is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public(ip.ipv4_mapped)  # the same host, spelt in IPv6
        if ip in LOCAL_NAT64:
            return False
        if not all(is_public(carried) for carried in embedded_ipv4(ip)):
            return False
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses only, unless private networks are allowed; ``allow`` adds exceptions."""

    allow_private: bool = False
    allow: Allow | None = None

    def permits(self, ip: IPAddress, port: int) -> bool:
        return self.allow_private or is_public(ip) or (self.allow is not None and self.allow(ip, port))

    def check(self, host: str, port: int, addresses: Iterable[str]) -> list[str]:
        """The addresses, if every one of them is permitted; else ``DestinationRefused``."""
        checked = list(dict.fromkeys(addresses))  # in order, once each
        if not all(self.permits(parse(address), port) for address in checked):
            raise DestinationRefused(host)
        return checked


def address_literal(host: str) -> IPAddress | None:
    try:
        return parse(host)
    except ValueError:
        return None


def system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class LookupTimeout(OSError):
    """The resolver did not answer within the request's deadline."""


def resolve_within(resolve: Resolve, host: str, port: int, seconds: float | None) -> Sequence[str]:
    """``resolve(host, port)``, given up after ``seconds``: ``getaddrinfo`` takes no timeout, so it
    runs on a thread of its own that is left to finish while the request fails."""
    if seconds is None:
        return resolve(host, port)
    outcome: dict[str, object] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["addresses"] = resolve(host, port)
        except BaseException as exc:  # handed to the waiting request below
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="authq-lookup", daemon=True).start()
    if not done.wait(max(0.0, seconds)):
        raise LookupTimeout(f"looking up {host!r} took longer than the request's deadline")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["addresses"]  # type: ignore[return-value]


def checked_addresses(host: str, port: int, policy: AddressPolicy, resolve: Resolve = system_resolve,
                      within: float | None = None) -> list[str]:
    """Resolve ``host`` once and check every address: what the connection must go to.

    An address literal is checked as it is. Raises ``DestinationRefused``, or ``OSError`` (a
    ``socket.gaierror``, ``LookupTimeout``) when the name does not resolve.
    """
    literal = address_literal(host)
    if literal is not None:
        return policy.check(host, port, [host])
    addresses = resolve_within(resolve, host, port, within)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"{host!r} has no address")
    return policy.check(host, port, addresses)
