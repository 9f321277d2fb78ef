"""One deadline per outbound request and at most 1 MiB of any answer (contract §8).

The deadline covers connecting, sending and reading together: a provider that trickles a byte
every half second never trips a per-read timeout, yet the request ends at the deadline. An answer
longer than 1 MiB is ``provider_unreachable`` once 1 MiB has been read; a credential check's body
is not kept at all. Real servers on loopback (``tests/support/raw_servers.py``) misbehave here.
"""

from __future__ import annotations

import gzip
import time
import tracemalloc
from pathlib import Path

import httpx2
import pytest
import trustme

from tasks.errors import ProviderUnreachable
from tasks.provider.failures import reached_provider
from tasks.provider.transport import MAX_ANSWER_BYTES, Outbound
from tests.support.raw_servers import raw_server, slow_relay, tls_context

DEADLINE = 2.0
SLACK = 1.5
MIB = 1024 * 1024


def outbound() -> Outbound:
    return Outbound(DEADLINE, allow_private=True)


@pytest.mark.parametrize("behaviour", ["trickle_head", "trickle_body"])
def test_a_trickling_check_ends_at_the_deadline(behaviour: str) -> None:
    with raw_server(behaviour=behaviour, interval=0.5) as server:
        started = time.monotonic()
        with pytest.raises(ProviderUnreachable) as failed:
            outbound().check("GET", f"{server.url()}/check")
        took = time.monotonic() - started
    assert failed.value.code == "provider_unreachable" and failed.value.retryable
    assert DEADLINE - 0.1 <= took <= DEADLINE + SLACK, f"the request ended after {took:.2f}s"
    assert len(server.requests) == 1


def test_a_trickling_token_answer_ends_at_the_deadline() -> None:
    with raw_server(behaviour="trickle_body", interval=0.5) as server, outbound().client() as client:
        started = time.monotonic()
        with pytest.raises(ProviderUnreachable):
            client.post(f"{server.url()}/token", data={"grant_type": "client_credentials"})
        assert time.monotonic() - started <= DEADLINE + SLACK


def test_the_deadline_counts_from_the_start_of_the_request_not_per_read() -> None:
    """Each read answers within 0.3 s (far below the deadline) and still the whole ends at it."""
    with raw_server(behaviour="trickle_body", interval=0.3) as server:
        started = time.monotonic()
        with pytest.raises(ProviderUnreachable):
            Outbound(1.0, allow_private=True).check("GET", f"{server.url()}/check")
        assert time.monotonic() - started <= 1.0 + SLACK


def test_a_flooding_check_is_cut_at_one_mib_and_its_body_not_kept() -> None:
    with raw_server(behaviour="flood", flood_bytes=64 * MIB) as server:
        tracemalloc.start()
        try:
            started = time.monotonic()
            with pytest.raises(ProviderUnreachable) as failed:
                outbound().check("GET", f"{server.url()}/check")
            took = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert failed.value.code == "provider_unreachable" and "1 MiB" in failed.value.message
    assert peak < 2 * MIB, f"the check held {peak / MIB:.1f} MiB"
    assert took < DEADLINE, "the answer was read past its first MiB"


def test_a_flooding_token_answer_is_cut_at_one_mib() -> None:
    with raw_server(behaviour="flood", flood_bytes=64 * MIB) as server, outbound().client() as client:
        tracemalloc.start()
        try:
            with pytest.raises(ProviderUnreachable):
                client.post(f"{server.url()}/token", data={"grant_type": "client_credentials"})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 4 * MIB, f"the token request held {peak / MIB:.1f} MiB"


def test_an_answer_of_exactly_one_mib_is_read_whole() -> None:
    assert MAX_ANSWER_BYTES == MIB
    with raw_server(behaviour="flood", flood_bytes=MIB) as server, outbound().client() as client:
        assert len(client.get(f"{server.url()}/token").content) == MIB


def test_a_passing_check_keeps_no_body() -> None:
    with raw_server(body=b'{"environment": {"version": "9.0"}, "padding": "' + b"p" * 50_000 + b'"}') as server:
        answer = outbound().check("GET", f"{server.url()}/check")
    assert answer.status_code == 200
    with pytest.raises(httpx2.ResponseNotRead):
        answer.content  # noqa: B018 - read and dropped: nothing of it is kept


def test_a_trickled_tls_handshake_ends_at_the_deadline(tmp_path: Path) -> None:
    """The handshake is many reads httpcore makes in one call: the deadline still ends it."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with raw_server(tls=tls_context(ca, "127.0.0.1")) as server, slow_relay(server, interval=0.05) as relay:
        started = time.monotonic()
        with pytest.raises(ProviderUnreachable) as failed:
            Outbound(DEADLINE, allow_private=True, ca_bundle=tmp_path / "ca.pem").check("GET", f"{relay.url()}/check")
        took = time.monotonic() - started
    assert took <= DEADLINE + SLACK, f"the handshake went on for {took:.1f}s"
    assert not reached_provider(failed.value), "nothing was sent before the handshake ended"
    assert server.requests == []


def test_a_compressed_answer_is_limited_by_what_it_decodes_to() -> None:
    """authq asks for no encoding; 50 KiB of gzip that would decode to 64 MiB is still cut at 1 MiB."""
    bomb = gzip.compress(b"\0" * (64 * MIB))
    assert len(bomb) < MIB
    with raw_server(body=bomb, headers={"Content-Encoding": "gzip"}) as server, outbound().client() as client:
        tracemalloc.start()
        try:
            with pytest.raises(ProviderUnreachable) as failed:
                client.get(f"{server.url()}/token")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert "1 MiB" in failed.value.message and peak < 4 * MIB
    assert server.requests[0].header("Accept-Encoding") == "identity"


def test_a_small_compressed_answer_is_decoded() -> None:
    body = b'{"access_token": "at-gzip", "token_type": "bearer"}'
    with (raw_server(body=gzip.compress(body), headers={"Content-Encoding": "gzip"}) as server,
          outbound().client() as client):
        answer = client.get(f"{server.url()}/token")
    assert answer.content == body and "Content-Encoding" not in answer.headers


def test_an_unknown_encoding_is_refused() -> None:
    with (raw_server(headers={"Content-Encoding": "br"}) as server, outbound().client() as client,
          pytest.raises(ProviderUnreachable)):
        client.get(f"{server.url()}/token")
