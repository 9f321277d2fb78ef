"""Every outbound failure is told, once, as before-send (nothing reached the provider) or after-send
(the request may have reached it): the code exchange relies on it to know whether a code is spent.

Before-send: the name did not resolve, the guard refused the address, the connection or the TLS
handshake failed, the permit was not granted. After-send: no answer in time, a connection cut
mid-answer, an answer too long, or the provider's own 5xx / 429 answer (which says it did not
serve the request).
"""

from __future__ import annotations

import secrets
import socket
from urllib.parse import urlsplit

import pytest
import redis
import trustme

from tasks.errors import Deferred, JobFailed
from tasks.provider.failures import ProviderDeclined, reached_provider
from tasks.provider.gate import Gate, Limits
from tasks.provider.transport import Outbound
from tests.support.raw_servers import raw_server, tls_context


def failure_of(outbound: Outbound, url: str) -> BaseException:
    with pytest.raises((JobFailed, Deferred)) as failed:
        outbound.check("GET", url)
    return failed.value


@pytest.mark.parametrize("allow_private", [False, True])
def test_a_name_that_does_not_resolve_is_before_send(allow_private: bool) -> None:
    failure = failure_of(Outbound(5, allow_private=allow_private), "https://nonexistent.invalid/token")
    assert isinstance(failure, JobFailed) and failure.code == "provider_unreachable" and failure.retryable
    assert "does not resolve" in failure.message
    assert not reached_provider(failure)


def test_a_refused_address_is_before_send() -> None:
    failure = failure_of(Outbound(5, allow_private=False), "http://127.0.0.1:9/check")
    assert isinstance(failure, JobFailed) and failure.code == "url_not_allowed" and not failure.retryable
    assert not reached_provider(failure)


def test_a_refused_connection_is_before_send() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: the connection is refused
        failure = failure_of(Outbound(5, allow_private=True), f"http://127.0.0.1:{port}/check")
    assert isinstance(failure, JobFailed) and failure.code == "provider_unreachable"
    assert not reached_provider(failure)


def test_a_failed_tls_handshake_is_before_send() -> None:
    with raw_server(tls=tls_context(trustme.CA(), "127.0.0.1")) as server:  # a CA authq does not trust
        failure = failure_of(Outbound(5, allow_private=True), f"{server.url()}/check")
    assert isinstance(failure, JobFailed) and failure.code == "provider_unreachable"
    assert not reached_provider(failure)
    assert server.requests == []


def test_a_permit_not_granted_is_before_send(redis_client: redis.Redis) -> None:
    gate = Gate(redis_client)
    limits = Limits("t-kinds", f"con_{secrets.token_hex(4)}", rate_limit=1, window_seconds=60.0)
    with raw_server() as server, Outbound(5, allow_private=True, gate=gate).client(limits) as client:
        gate.block(limits, 30, urlsplit(server.url()).netloc)  # as its 429 with Retry-After: 30 would
        with pytest.raises(Deferred) as deferred:
            client.get(f"{server.url()}/check")
        assert server.requests == []
    assert not reached_provider(deferred.value)


def test_no_answer_in_time_is_after_send() -> None:
    with raw_server(behaviour="trickle_head", interval=0.5) as server:
        failure = failure_of(Outbound(1, allow_private=True), f"{server.url()}/check")
    assert isinstance(failure, JobFailed) and failure.code == "provider_unreachable"
    assert reached_provider(failure)


def test_an_answer_too_long_is_after_send() -> None:
    with raw_server(behaviour="flood", flood_bytes=2 * 1024 * 1024) as server:
        failure = failure_of(Outbound(5, allow_private=True), f"{server.url()}/check")
    assert reached_provider(failure) and not isinstance(failure, ProviderDeclined)


@pytest.mark.parametrize(("status", "code"), [(503, "provider_unreachable"), (429, "provider_rate_limited")])
def test_a_5xx_or_429_answer_is_after_send_and_declined(status: int, code: str) -> None:
    with raw_server(status=status) as server:
        failure = failure_of(Outbound(5, allow_private=True), f"{server.url()}/check")
    assert isinstance(failure, ProviderDeclined) and failure.code == code
    assert reached_provider(failure)
