"""The address authq connects to is the one it checked (contract §8): a name is resolved once per
request, every address of the answer is checked, and the connection goes to exactly those
addresses, with ``Host`` and TLS (SNI, the certificate's name) still on the name.

A "public" address on loopback: the policy's ``allow`` rule declares 127.0.0.2 reachable, while
127.0.0.1 stays private. The resolver is the test's own, a rebinding DNS with a TTL of zero: it
answers 127.0.0.2 to the first lookup and 127.0.0.1 to the next. Both addresses run a server on
the same port, so what each one sees says where the request went.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
import trustme
from authlib.integrations.httpx_client import OAuth2Client

from tasks.errors import JobFailed, ProviderUnreachable
from tasks.provider.transport import Outbound
from tests.support.leakcheck import remember_secret
from tests.support.raw_servers import raw_server, server_pair, tls_context

PUBLIC, PRIVATE = "127.0.0.2", "127.0.0.1"
NAME = "shop.rebind.test"
KEY, SECRET = "ck_rebind_probe", "cs_rebind_secret_4417"
CLIENT_SECRET = "rebind-client-secret-9031"
remember_secret(SECRET)
remember_secret(CLIENT_SECRET)


class Rebinding:
    """A resolver whose answer changes from one lookup to the next (the last one then stays)."""

    def __init__(self, *answers: list[str] | BaseException) -> None:
        self.answers = list(answers)
        self.lookups: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append((host, port))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def only_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
    return str(ip) == PUBLIC


def outbound(resolve: Callable[[str, int], list[str]], ca_bundle: Path | None = None) -> Outbound:
    return Outbound(5, allow_private=False, ca_bundle=ca_bundle, allow=only_public, resolve=resolve)


def basic() -> httpx2.BasicAuth:
    return httpx2.BasicAuth(KEY, SECRET)


def test_a_rebinding_name_is_connected_to_the_address_that_was_checked() -> None:
    with server_pair(PUBLIC, PRIVATE) as (public, private):
        resolver = Rebinding([PUBLIC], [PRIVATE])
        answer = outbound(resolver).check("GET", f"{public.url(NAME)}/wp-json/wc/v3/system_status", auth=basic())
        assert answer.status_code == 200
        assert resolver.lookups == [(NAME, public.port)], "one lookup per request"
        (seen,) = public.requests
        assert seen.header("Host") == f"{NAME}:{public.port}"
        assert seen.header("Authorization") == "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
        assert private.requests == [], "the credentials reached the private address"


def test_the_next_request_looks_up_again_and_is_refused_at_a_private_answer() -> None:
    with server_pair(PUBLIC, PRIVATE) as (public, private):
        resolver = Rebinding([PUBLIC], [PRIVATE])
        client = outbound(resolver)
        client.check("GET", f"{public.url(NAME)}/check", auth=basic())
        with pytest.raises(JobFailed) as refused:
            client.check("GET", f"{public.url(NAME)}/check", auth=basic())
        assert refused.value.code == "url_not_allowed"
        assert len(resolver.lookups) == 2 and len(public.requests) == 1
        assert private.requests == []


def test_every_address_of_an_answer_is_checked() -> None:
    with server_pair(PUBLIC, PRIVATE) as (public, private):
        resolver = Rebinding([PUBLIC, PRIVATE])
        with pytest.raises(JobFailed) as refused:
            outbound(resolver).check("GET", f"{public.url(NAME)}/check", auth=basic())
        assert refused.value.code == "url_not_allowed"
        assert public.requests == [] and private.requests == []


def test_an_address_literal_is_checked_like_an_answer() -> None:
    with server_pair(PUBLIC, PRIVATE) as (public, private):
        never = Rebinding(AssertionError("an address literal needs no lookup"))
        assert outbound(never).check("GET", f"{public.url()}/check").status_code == 200
        with pytest.raises(JobFailed) as refused:
            outbound(never).check("GET", f"{private.url()}/check", auth=basic())
        assert refused.value.code == "url_not_allowed"
        assert len(public.requests) == 1 and private.requests == []
        assert never.lookups == []


def test_a_token_request_made_by_authlib_goes_to_the_checked_address() -> None:
    with server_pair(PUBLIC, PRIVATE, body=b'{"access_token": "at-rebind", "token_type": "bearer"}') as (
            public, private):
        resolver = Rebinding([PUBLIC], [PRIVATE])
        options = outbound(resolver).client_options()
        with OAuth2Client(client_id="rebind-client", client_secret=CLIENT_SECRET,
                          token_endpoint_auth_method="client_secret_post", **options) as client:
            token = client.fetch_token(f"{public.url(NAME)}/token", grant_type="client_credentials")
        assert token["access_token"] == "at-rebind"
        (seen,) = public.requests
        assert CLIENT_SECRET in seen.text and seen.header("Host") == f"{NAME}:{public.port}"
        assert private.requests == []
        assert resolver.lookups == [(NAME, public.port)]


@pytest.fixture(scope="module")
def rebind_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("rebind-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


def test_tls_names_and_verifies_the_host_not_the_address(rebind_ca: tuple[trustme.CA, Path]) -> None:
    ca, bundle = rebind_ca
    with raw_server(PUBLIC, tls=tls_context(ca, NAME)) as server:
        resolver = Rebinding([PUBLIC])
        answer = outbound(resolver, bundle).check("GET", f"{server.url(NAME)}/check", auth=basic())
        assert answer.status_code == 200
        assert server.sni_names == [NAME], "the TLS handshake must ask for the name, not the address"
        assert server.requests[0].header("Host") == f"{NAME}:{server.port}"


def test_a_certificate_for_another_name_fails_before_anything_is_sent(rebind_ca: tuple[trustme.CA, Path]) -> None:
    ca, bundle = rebind_ca
    with raw_server(PUBLIC, tls=tls_context(ca, "other.test", PUBLIC)) as server:
        with pytest.raises(ProviderUnreachable) as failed:
            outbound(Rebinding([PUBLIC]), bundle).check("GET", f"{server.url(NAME)}/check", auth=basic())
        assert failed.value.code == "provider_unreachable" and failed.value.retryable
        assert server.requests == [], "a request went out over a connection whose certificate was wrong"


def test_a_name_that_does_not_resolve_is_looked_up_once() -> None:
    resolver = Rebinding(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    with pytest.raises(ProviderUnreachable) as failed:
        outbound(resolver).check("GET", f"http://{NAME}:8080/check", auth=basic())
    assert "resolve" in failed.value.message
    assert resolver.lookups == [(NAME, 8080)]
