"""The outbound guard's one exception with AUTHQ_DEMO: the demo's address and port, nothing else."""

from __future__ import annotations

import pytest

from tasks.demo.origin import demo_destination
from tasks.provider.addresses import AddressPolicy, parse
from tasks.provider.failures import DestinationRefused
from tasks.settings import Settings


def _policy(**fields: object) -> AddressPolicy:
    settings = Settings(_env_file=None, **fields)  # type: ignore[call-arg]
    return AddressPolicy(settings.allow_private_networks, demo_destination(settings))


def test_exactly_the_demos_origin_passes() -> None:
    policy = _policy(demo=True, public_url="http://127.0.0.1:8080")
    assert policy.check("127.0.0.1", 8080, ["127.0.0.1"]) == ["127.0.0.1"]
    for address, port in (("127.0.0.1", 8081), ("127.0.0.1", 6379), ("127.0.0.2", 8080), ("::1", 8080),
                          ("10.0.0.1", 8080), ("169.254.169.254", 80)):
        with pytest.raises(DestinationRefused):
            policy.check(address, port, [address])
    assert policy.permits(parse("93.184.215.14"), 443)   # public addresses as ever


def test_a_name_is_its_addresses_on_the_demos_port() -> None:
    policy = _policy(demo=True, public_url="http://localhost:8080")
    assert policy.permits(parse("127.0.0.1"), 8080)
    assert not policy.permits(parse("127.0.0.1"), 8079)


def test_the_bind_address_is_the_origin_without_a_public_url() -> None:
    policy = _policy(demo=True, host="127.0.0.1", port=9000)
    assert policy.permits(parse("127.0.0.1"), 9000) and not policy.permits(parse("127.0.0.1"), 8080)


def test_without_the_demo_loopback_is_refused() -> None:
    assert demo_destination(Settings(_env_file=None)) is None  # type: ignore[call-arg]
    policy = _policy(public_url="http://127.0.0.1:8080")
    with pytest.raises(DestinationRefused):
        policy.check("127.0.0.1", 8080, ["127.0.0.1"])
