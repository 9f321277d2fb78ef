"""Which addresses authq may connect to (contract §8, §9): globally reachable unicast only, unless
private networks are allowed. An IPv6 address that carries an IPv4 one (IPv4-mapped, -compatible and
-translated, NAT64, 6to4, Teredo) is judged by the address it carries too: ``::127.0.0.1`` is
loopback however it is spelt.
"""

from __future__ import annotations

import ipaddress

import pytest

from tasks.errors import JobFailed
from tasks.provider.addresses import AddressPolicy, embedded_ipv4, is_public
from tasks.provider.transport import Outbound

# IPv6 spellings of loopback, link-local (169.254.169.254, the cloud metadata address) and private IPv4.
EMBEDDING_PRIVATE = [
    "::127.0.0.1",                      # IPv4-compatible (::/96)
    "::a9fe:a9fe",                      # IPv4-compatible 169.254.169.254
    "::ffff:127.0.0.1",                 # IPv4-mapped
    "::ffff:0:a9fe:a9fe",               # IPv4-translated (SIIT, ::ffff:0:0:0/96)
    "64:ff9b::a9fe:a9fe",               # NAT64 well-known prefix (RFC 6052)
    "64:ff9b::7f00:1",
    "64:ff9b::a00:1",                   # NAT64 of 10.0.0.1
    "64:ff9b:1::a9fe:a9fe",             # local-use NAT64 (RFC 8215)
    "64:ff9b:1:a9fe:a9:fe00::",         # ... with the /48 layout of RFC 6052 §2.2
    "2002:a9fe:a9fe::1",                # 6to4 of 169.254.169.254
    "2002:7f00:1::1",                   # 6to4 of 127.0.0.1
    "2002:c0a8:101::1",                 # 6to4 of 192.168.1.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1 (obfuscated)
    "2001:0:7f00:1:8000:63bf:3fff:fdd2",     # Teredo, server 127.0.0.1
]
# Local-use NAT64 is the operator's own translator: refused whatever it seems to carry.
EMBEDDING_PUBLIC = ["64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8", "::ffff:0:808:808"]
PLAIN_PRIVATE = ["127.0.0.1", "127.0.0.2", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
                 "0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "::1", "fe80::1", "fc00::1", "ff02::1",
                 "2001:db8::1", "64:ff9b:1::808:808"]
PLAIN_PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80e::200e"]


@pytest.mark.parametrize("address", EMBEDDING_PRIVATE)
def test_ipv6_forms_of_a_private_ipv4_address_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))
    assert not AddressPolicy(allow_private=False).permits(ipaddress.ip_address(address), 443)


@pytest.mark.parametrize("address", EMBEDDING_PUBLIC)
def test_ipv6_forms_of_a_public_ipv4_address_stay_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PLAIN_PRIVATE)
def test_private_loopback_link_local_and_special_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PLAIN_PUBLIC)
def test_global_unicast_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_the_embedded_addresses_are_read_where_each_form_puts_them() -> None:
    def embedded(address: str) -> list[str]:
        return [str(v4) for v4 in embedded_ipv4(ipaddress.IPv6Address(address))]

    assert embedded("::127.0.0.1") == ["127.0.0.1"]
    assert embedded("::ffff:10.1.2.3") == ["10.1.2.3"]
    assert embedded("::ffff:0:10.1.2.3") == ["10.1.2.3"]
    assert embedded("64:ff9b::a9fe:a9fe") == ["169.254.169.254"]
    assert embedded("2002:a9fe:a9fe::1") == ["169.254.169.254"]
    assert embedded("2001:0:4136:e378:8000:63bf:80ff:fffe") == ["65.54.227.120", "127.0.0.1"]
    assert embedded("2606:4700:4700::1111") == []


def test_allowing_private_networks_permits_every_address() -> None:
    policy = AddressPolicy(allow_private=True)
    for address in [*PLAIN_PRIVATE, *EMBEDDING_PRIVATE, *PLAIN_PUBLIC]:
        assert policy.permits(ipaddress.ip_address(address), 80)


def test_an_allow_rule_lets_through_exactly_what_it_names() -> None:
    """How a deployment (or a test) declares one non-public destination reachable: here 127.0.0.2:8443."""
    policy = AddressPolicy(allow=lambda ip, port: (str(ip), port) == ("127.0.0.2", 8443))
    assert policy.permits(ipaddress.ip_address("127.0.0.2"), 8443)
    assert not policy.permits(ipaddress.ip_address("127.0.0.2"), 8444)
    assert not policy.permits(ipaddress.ip_address("127.0.0.1"), 8443)
    assert policy.permits(ipaddress.ip_address("8.8.8.8"), 1)


@pytest.mark.parametrize("answer", ["::127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "::ffff:0:7f00:1"])
def test_a_name_answering_an_embedded_private_address_is_refused_before_any_connection(answer: str) -> None:
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return [answer]

    outbound = Outbound(5, allow_private=False, resolve=resolve)
    with pytest.raises(JobFailed) as refused:
        outbound.check("GET", "http://metadata.example.test/latest/meta-data/")
    assert refused.value.code == "url_not_allowed" and refused.value.retryable is False
    assert lookups == ["metadata.example.test"]
