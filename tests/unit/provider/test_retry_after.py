"""A provider's ``Retry-After`` is honoured, but counts at most an hour (contract §8): a 429 saying
``Retry-After: 999999999`` must not block a connector for 31 years.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import urlsplit

import httpx2
import pytest
import redis

from tasks.errors import Deferred, ProviderUnreachable
from tasks.provider.gate import RETRY_AFTER_AT_MOST, Gate, Limits
from tasks.provider.transport import Outbound, retry_after_seconds
from tests.support.raw_servers import raw_server

HOUR = 3600.0


def answer(value: str) -> httpx2.Response:
    return httpx2.Response(429, headers={"Retry-After": value})


def in_days(days: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(days=days), usegmt=True)


def limits() -> Limits:
    return Limits("t-retry-after", f"con_{secrets.token_hex(4)}", rate_limit=10, window_seconds=60.0)


def test_the_cap_is_an_hour() -> None:
    assert RETRY_AFTER_AT_MOST == HOUR


@pytest.mark.parametrize("value", ["999999999", "3601", "1e300", in_days(365 * 31), in_days(2)])
def test_a_retry_after_longer_than_an_hour_counts_as_an_hour(value: str) -> None:
    assert retry_after_seconds(answer(value)) == HOUR


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("2", 2.0), ("3600", HOUR), ("-5", 0.0)])
def test_a_retry_after_within_the_hour_is_kept(value: str, seconds: float) -> None:
    assert retry_after_seconds(answer(value)) == seconds


@pytest.mark.parametrize("value", ["", "soon", "inf", "nan"])
def test_an_unreadable_retry_after_is_ignored(value: str) -> None:
    assert retry_after_seconds(answer(value)) is None


def test_the_gate_blocks_for_at_most_an_hour(redis_client: redis.Redis) -> None:
    gate, governed = Gate(redis_client), limits()
    gate.block(governed, 999_999_999, "provider.example:443")
    ttl = redis_client.pttl(governed.blocked_key) / 1000
    assert HOUR - 5 < ttl <= HOUR


def test_a_429_with_a_31_year_retry_after_blocks_the_connector_for_an_hour(redis_client: redis.Redis) -> None:
    gate, governed = Gate(redis_client), limits()
    with raw_server(status=429, headers={"Retry-After": "999999999"}) as server:
        outbound = Outbound(5, allow_private=True, gate=gate)
        with pytest.raises(ProviderUnreachable) as limited:
            outbound.check("GET", f"{server.url()}/check", options=outbound.client_options(governed))
    assert limited.value.code == "provider_rate_limited" and limited.value.retry_after == HOUR
    ttl = redis_client.pttl(governed.blocked_key) / 1000
    assert HOUR - 5 < ttl <= HOUR, f"the connector is blocked for {ttl:.0f}s"


def test_a_block_holds_the_host_that_sent_it_and_no_other(redis_client: redis.Redis) -> None:
    """The 429 came from one host: a connector moved elsewhere is not held up by it, and the
    old host stays blocked for as long as it asked."""
    gate, governed = Gate(redis_client), limits()
    outbound = Outbound(5, allow_private=True, gate=gate)
    with raw_server(status=429, headers={"Retry-After": "600"}) as limiting, raw_server() as other:
        with pytest.raises(ProviderUnreachable):
            outbound.check("GET", f"{limiting.url()}/check", options=outbound.client_options(governed))
        assert redis_client.get(governed.blocked_key) == urlsplit(limiting.url()).netloc.encode()
        outbound.check("GET", f"{other.url()}/check", options=outbound.client_options(governed))
        assert len(other.requests) == 1
        with pytest.raises(Deferred):
            outbound.check("GET", f"{limiting.url()}/again", options=outbound.client_options(governed))
        assert len(limiting.requests) == 1
