"""The network under every outbound request: one lookup, checked, connected to; one deadline.

``PinnedNetwork`` is the ``httpcore2`` network backend of authq's transport. httpcore asks it to
``connect_tcp`` to the URL's host; it resolves the name once (``addresses.checked_addresses``),
refuses the request unless every address is permitted, and connects to those addresses only. The
TLS upgrade that follows is done by httpcore on that connection with ``server_hostname`` set to the
URL's host, so SNI and certificate verification stay on the name, as ``Host`` does.

Deadline: the transport sets when its request must be over (``request_deadline``) around every
step httpcore takes for it (sending, then each read of the answer); the lookup, the connection and
every read and write of the stream get at most what is left, and none once it has passed. A
provider trickling a byte at a time is stopped at the deadline, not after it.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import httpcore2

from tasks.errors import ProviderUnreachable
from tasks.provider.addresses import AddressPolicy, LookupTimeout, Resolve, checked_addresses, system_resolve
from tasks.provider.failures import NotSent

_deadline: ContextVar[float | None] = ContextVar("authq_outbound_deadline", default=None)


@contextlib.contextmanager
def request_deadline(at: float) -> Iterator[None]:
    """Until the block ends, network operations end by ``at`` (``time.monotonic()``)."""
    token = _deadline.set(at)
    try:
        yield
    finally:
        _deadline.reset(token)


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


@contextlib.contextmanager
def classified() -> Iterator[None]:
    """httpcore's failures as authq's, told once by whether the request can have been sent."""
    try:
        yield
    except (httpcore2.ConnectError, httpcore2.ConnectTimeout, httpcore2.PoolTimeout) as exc:
        # Connecting, or the TLS handshake (httpcore reports both as connect errors): nothing sent.
        raise NotSent(f"Could not connect to the provider ({_reason(exc)}).") from None
    except (httpcore2.UnsupportedProtocol, httpcore2.LocalProtocolError) as exc:
        raise NotSent(f"The request could not be sent ({_reason(exc)}).") from None
    except httpcore2.TimeoutException:
        raise ProviderUnreachable("The provider did not answer within the request's deadline.") from None
    except (httpcore2.NetworkError, httpcore2.ProtocolError) as exc:
        # Writing or reading: some of the request may have reached the provider.
        raise ProviderUnreachable(f"The connection to the provider failed ({_reason(exc)}).") from None


def _left(timeout: float | None, expired: type[Exception]) -> float | None:
    at = _deadline.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise expired("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore2.NetworkStream):
    def __init__(self, inner: httpcore2.NetworkStream) -> None:
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, _left(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, _left(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore2.NetworkStream:
        # CPython bounds a whole handshake (all its reads) by the socket timeout it starts with.
        upgraded = self.inner.start_tls(ssl_context, server_hostname, _left(timeout, httpcore2.ConnectTimeout))
        return DeadlineStream(upgraded)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class PinnedNetwork(httpcore2.NetworkBackend):
    def __init__(self, policy: AddressPolicy, resolve: Resolve | None = None) -> None:
        self.policy = policy
        self.resolve = resolve or system_resolve
        self.inner = httpcore2.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore2.NetworkStream:
        try:
            addresses = checked_addresses(host, port, self.policy, self.resolve,
                                          within=_left(timeout, httpcore2.ConnectTimeout))
        except LookupTimeout:
            raise NotSent(f"The host {host!r} did not resolve in time.") from None
        except OSError:
            raise NotSent(f"The host {host!r} does not resolve.") from None
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = self.inner.connect_tcp(address, port, _left(timeout, httpcore2.ConnectTimeout),
                                                local_address, socket_options)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc  # the next address, if the name has several
                continue
            return DeadlineStream(stream)
        assert failure is not None
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore2.NetworkStream:
        raise NotSent("Providers are reached over TCP only.")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

