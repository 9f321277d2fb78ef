"""The outbound guard for the API's own aiohttp client (the proxy, webhook deliveries): a name is
resolved once, every address of the answer is checked, and aiohttp connects to exactly those.

As in ``tests/unit/provider/test_pinned_address.py``, 127.0.0.2 is declared public by the policy's
``allow`` rule and 127.0.0.1 stays private; the test's resolver answers 127.0.0.2 first, then
127.0.0.1; a real ``aiohttp.ClientSession`` talks to real servers on both addresses, one port.
"""

from __future__ import annotations

import ipaddress
import socket

import aiohttp
import pytest

from api.outbound_resolver import GuardedResolver, guarded_session
from tasks.provider.addresses import AddressPolicy
from tasks.provider.failures import DestinationRefused
from tests.support.leakcheck import remember_secret
from tests.support.raw_servers import raw_server, server_pair

PUBLIC, PRIVATE = "127.0.0.2", "127.0.0.1"
NAME = "hooks.rebind.test"
SECRET = "whsec_rebind_probe_7781"
remember_secret(SECRET)


class Rebinding:
    def __init__(self, *answers: list[str] | BaseException) -> None:
        self.answers = list(answers)
        self.lookups: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append((host, port))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def loopback_public() -> AddressPolicy:
    return AddressPolicy(allow_private=False, allow=lambda ip, port: str(ip) == PUBLIC)


async def test_each_request_connects_to_the_address_its_lookup_checked() -> None:
    with server_pair(PUBLIC, PRIVATE) as (public, private):
        resolver = Rebinding([PUBLIC], [PRIVATE])
        async with guarded_session(loopback_public(), resolve=resolver) as session:
            async with session.post(f"{public.url(NAME)}/hook", data=SECRET) as answer:
                assert answer.status == 200
            with pytest.raises(DestinationRefused) as refused:
                await session.post(f"{public.url(NAME)}/hook", data=SECRET)
        assert refused.value.code == "url_not_allowed"
        assert resolver.lookups == [(NAME, public.port)] * 2, "one lookup per request"
        (seen,) = public.requests
        assert seen.header("Host") == f"{NAME}:{public.port}" and SECRET in seen.text
        assert private.requests == [], "the delivery reached the private address"


async def test_every_address_of_an_answer_is_checked() -> None:
    with server_pair(PUBLIC, PRIVATE) as (public, private):
        async with guarded_session(loopback_public(), resolve=Rebinding([PUBLIC, PRIVATE])) as session:
            with pytest.raises(DestinationRefused):
                await session.get(f"{public.url(NAME)}/hook")
        assert public.requests == [] and private.requests == []


async def test_an_address_literal_is_checked_although_aiohttp_skips_the_resolver() -> None:
    with server_pair(PUBLIC, PRIVATE) as (public, private):
        never = Rebinding(AssertionError("an address literal needs no lookup"))
        async with guarded_session(loopback_public(), resolve=never) as session:
            for _ in range(2):  # the guard remembers what passed, never what it refused
                async with session.get(f"{public.url()}/hook") as answer:
                    assert answer.status == 200
                with pytest.raises(DestinationRefused):
                    await session.get(f"{private.url()}/hook")
                for spelt in ("http://[::ffff:127.0.0.1]:1/hook", "http://[::127.0.0.1]:1/hook"):
                    with pytest.raises(DestinationRefused):
                        await session.get(spelt)
        assert len(public.requests) == 2 and private.requests == [] and never.lookups == []


async def test_a_redirect_to_a_private_address_is_refused_at_the_hop() -> None:
    with server_pair(PUBLIC, PRIVATE) as (public, private):
        public.status, public.headers = 307, {"Location": f"{private.url()}/stolen"}
        async with guarded_session(loopback_public(), resolve=Rebinding([PUBLIC])) as session:
            with pytest.raises(DestinationRefused):
                await session.get(f"{public.url(NAME)}/hook", allow_redirects=True)
        assert len(public.requests) == 1 and private.requests == []


async def test_private_networks_allowed_connects_to_loopback() -> None:
    with raw_server(PRIVATE) as server:
        resolver = Rebinding([PRIVATE])
        async with (guarded_session(AddressPolicy(allow_private=True), resolve=resolver) as session,
                    session.get(f"{server.url(NAME)}/hook") as answer):
            assert answer.status == 200
        assert len(server.requests) == 1 and resolver.lookups == [(NAME, server.port)]


async def test_a_name_that_does_not_resolve_is_a_connector_error() -> None:
    async with guarded_session(AddressPolicy(allow_private=False)) as session:
        with pytest.raises(aiohttp.ClientConnectorDNSError):
            await session.get("https://nonexistent.invalid/hook")


async def test_the_resolver_answers_only_checked_addresses_with_their_family() -> None:
    resolver = GuardedResolver(AddressPolicy(allow=lambda ip, port: ip.is_loopback),
                               resolve=Rebinding(["127.0.0.2", "::1"]))
    answers = await resolver.resolve(NAME, 443, family=socket.AF_UNSPEC)
    assert [(a["host"], a["port"], a["family"], a["hostname"]) for a in answers] == [
        ("127.0.0.2", 443, socket.AF_INET, NAME), ("::1", 443, socket.AF_INET6, NAME)]
    assert all(ipaddress.ip_address(a["host"]).is_loopback for a in answers)
    await resolver.close()


async def test_the_system_lookup_is_used_and_checked_by_default() -> None:
    resolver = GuardedResolver(AddressPolicy(allow_private=False))
    with pytest.raises(DestinationRefused):
        await resolver.resolve("localhost", 80)
    allowed = GuardedResolver(AddressPolicy(allow_private=True))
    assert {a["host"] for a in await allowed.resolve("localhost", 80)} <= {"127.0.0.1", "::1"}
