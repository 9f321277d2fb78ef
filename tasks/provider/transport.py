"""Every call authq makes to a provider goes through here.

``Outbound.client()`` hands out an ``httpx2`` client whose transport, for *every* request
(redirect hops included), checks the destination and takes the connector's permit from
the gate (pool slot + rate limit), and whose TLS presents the connector's client
certificate. ``provider_errors()`` maps what can go wrong onto the contract's codes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx2

from tasks.errors import ErrorCode, JobFailed, ProviderError, ProviderUnreachable
from tasks.model.records import Certificate
from tasks.provider.gate import Gate, Limits
from tasks.provider.guard import guard_destination
from tasks.provider.tls import ssl_context
from tasks.security.sealing import SecretBox

USER_AGENT = "authq/0.1 (+connector authorisation)"


def retry_after_seconds(response: httpx2.Response) -> float | None:
    """``Retry-After`` in seconds from now: delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None  # unreadable: the backoff applies instead
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class GuardedTransport(httpx2.BaseTransport):
    def __init__(self, inner: httpx2.BaseTransport, allow_private: bool, gate: Gate | None,
                 limits: Limits | None) -> None:
        self.inner = inner
        self.allow_private = allow_private
        self.gate = gate
        self.limits = limits

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        guard_destination(str(request.url), self.allow_private)
        if self.gate is None or self.limits is None:
            return self.inner.handle_request(request)
        with self.gate.permit(self.limits):
            response = self.inner.handle_request(request)
            response.read()  # the pool slot covers the whole exchange, body included
        if response.status_code == 429:
            self.gate.block(self.limits, retry_after_seconds(response) or 1.0)
        return response

    def close(self) -> None:
        self.inner.close()


class Outbound:
    def __init__(self, timeout: float, allow_private: bool, ca_bundle: Path | None = None,
                 gate: Gate | None = None) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self.ca_bundle = ca_bundle
        self.gate = gate

    def client_options(self, limits: Limits | None = None, certificate: Certificate | None = None,
                       box: SecretBox | None = None) -> dict[str, Any]:
        """Keyword arguments for ``httpx2.Client`` (or Authlib's ``OAuth2Client``, one of those)."""
        context = ssl_context(self.ca_bundle, certificate, box)
        transport = GuardedTransport(httpx2.HTTPTransport(verify=context, trust_env=False),
                                     self.allow_private, self.gate, limits)
        # Redirects are not followed: a provider redirecting a token or check request is
        # answered as an error rather than chased to an address nobody chose.
        return {"timeout": self.timeout, "transport": transport, "follow_redirects": False,
                "trust_env": False, "headers": {"User-Agent": USER_AGENT}}

    def client(self, limits: Limits | None = None, certificate: Certificate | None = None,
               box: SecretBox | None = None) -> httpx2.Client:
        return httpx2.Client(**self.client_options(limits, certificate, box))

    def check(self, method: str, url: str, *, auth: httpx2.Auth | None = None,
              headers: dict[str, str] | None = None, options: dict[str, Any] | None = None) -> httpx2.Response:
        """Run a credential check: 2xx passes, 401/403 is ``credentials_rejected``.

        ``options`` are a connector's client options (``connection.http_options``).
        """
        with provider_errors("credential check"), httpx2.Client(**(options or self.client_options())) as client:
            response = client.request(method, url, auth=auth, headers=headers)
        if response.status_code in (401, 403):
            raise JobFailed(ErrorCode.CREDENTIALS_REJECTED,
                            f"The provider rejected the credentials (HTTP {response.status_code}).", "variables")
        raise_for_provider_status(response, "credential check")
        return response


def raise_for_provider_status(response: httpx2.Response, what: str) -> None:
    if response.is_success:
        return
    status = response.status_code
    if status == 429:
        raise ProviderUnreachable(f"The provider is rate limiting the {what}.", code=ErrorCode.PROVIDER_RATE_LIMITED,
                                  retry_after=retry_after_seconds(response))
    if status >= 500:
        raise ProviderUnreachable(f"The provider answered the {what} with HTTP {status}.")
    if 300 <= status < 400:
        raise ProviderError(f"The provider redirected the {what} (HTTP {status}); redirects are not followed.",
                            error=f"http_{status}")
    raise ProviderError(f"The provider answered the {what} with HTTP {status}.", error=f"http_{status}")


@contextmanager
def provider_errors(what: str) -> Iterator[None]:
    """Transport failures as retryable ``provider_unreachable``; status errors by their code."""
    try:
        yield
    except httpx2.HTTPStatusError as exc:
        raise_for_provider_status(exc.response, what)
        raise
    except httpx2.TimeoutException:
        raise ProviderUnreachable(f"The provider did not answer the {what} in time.") from None
    except httpx2.TransportError as exc:
        raise ProviderUnreachable(f"Could not reach the provider for the {what} ({type(exc).__name__}).") from None
