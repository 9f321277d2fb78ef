"""Every call authq makes to a provider goes through here.

``Outbound.client()`` hands out an ``httpx2`` client (Authlib's ``OAuth2Client`` takes the same
options) whose transport, for every request:

- takes the connector's permit from the gate (pool slot + rate limit), held until the answer's
  body is closed;
- connects through ``network.PinnedNetwork``: the name resolved once, every address checked
  against the ``AddressPolicy``, the connection made to those addresses, TLS on the name;
- gives the whole request one deadline (``timeout``: connecting, sending and reading together)
  and reads at most 1 MiB of the answer (``answer_body``);
- raises its failures already told apart as before- or after-send (``failures``).

``Outbound.check()`` runs a credential check and keeps none of its answer's body.
``provider_errors()`` maps HTTP status errors (and anything httpx itself raises) onto the
contract's codes.
"""

from __future__ import annotations

import contextlib
import math
import ssl
import time
from collections.abc import Iterator
from datetime import UTC
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpcore2
import httpx2

from tasks.errors import ErrorCode, JobFailed, ProviderError, ProviderUnreachable
from tasks.model.records import Certificate
from tasks.provider.addresses import AddressPolicy, Allow, Resolve
from tasks.provider.answer_body import MAX_ANSWER_BYTES, AnswerTooLong, LimitedBody, decoding
from tasks.provider.failures import NotSent, ProviderDeclined
from tasks.provider.gate import RETRY_AFTER_AT_MOST, Gate, Limits
from tasks.provider.guard import require_http_url
from tasks.provider.network import PinnedNetwork, classified, request_deadline
from tasks.provider.tls import ssl_context
from tasks.security.sealing import SecretBox

__all__ = ["MAX_ANSWER_BYTES", "Outbound", "provider_errors", "raise_for_provider_status", "retry_after_seconds"]

USER_AGENT = "authq/0.1 (+connector authorisation)"


def retry_after_seconds(response: httpx2.Response) -> float | None:
    """``Retry-After`` in seconds from now (RFC 9110 §10.2.3), at most an hour (contract §8)."""
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
    return min(RETRY_AFTER_AT_MOST, max(0.0, seconds)) if math.isfinite(seconds) else None


def authority(url: httpx2.URL) -> str:
    """``host:port`` of a request (the port spelt out): what a provider's block names."""
    port = url.port or (443 if url.scheme == "https" else 80)
    return f"{url.host.lower()}:{port}"


class GuardedTransport(httpx2.BaseTransport):
    def __init__(self, context: ssl.SSLContext, policy: AddressPolicy, resolve: Resolve | None, deadline: float,
                 gate: Gate | None, limits: Limits | None) -> None:
        self.pool = httpcore2.ConnectionPool(ssl_context=context, network_backend=PinnedNetwork(policy, resolve))
        self.deadline = deadline
        self.gate = gate
        self.limits = limits

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        require_http_url(str(request.url))
        host = authority(request.url)
        owned = contextlib.ExitStack()  # what the answer's body holds until it is closed
        answer: httpcore2.Response | None = None
        try:
            if self.gate is not None and self.limits is not None:
                owned.enter_context(self.gate.permit(self.limits, host))
            deadline = time.monotonic() + self.deadline
            sent = httpcore2.Request(
                method=request.method,
                url=httpcore2.URL(scheme=request.url.raw_scheme, host=request.url.raw_host, port=request.url.port,
                                  target=request.url.raw_path),
                headers=request.headers.raw, content=request.stream, extensions=request.extensions)
            with request_deadline(deadline), classified():
                answer = self.pool.handle_request(sent)
            headers = httpx2.Headers(answer.headers)
            length = headers.get("Content-Length", "")
            if length.isdigit() and int(length) > MAX_ANSWER_BYTES:
                raise AnswerTooLong()
            body = LimitedBody(answer.stream, deadline, owned, decoding(headers))  # type: ignore[arg-type]
        except BaseException:
            if answer is not None:
                answer.close()
            owned.close()
            raise
        response = httpx2.Response(status_code=answer.status, headers=headers, stream=body,
                                   extensions=answer.extensions)
        if response.status_code == 429 and self.gate is not None and self.limits is not None:
            self.gate.block(self.limits, retry_after_seconds(response) or 1.0, host)
        return response

    def close(self) -> None:
        self.pool.close()


class Outbound:
    def __init__(self, timeout: float, allow_private: bool, ca_bundle: Path | None = None,
                 gate: Gate | None = None, *, allow: Allow | None = None, resolve: Resolve | None = None) -> None:
        """``timeout``: each request's deadline. ``allow``: destinations reachable although not
        public; ``resolve``: how names become addresses (the system's resolver by default)."""
        self.timeout = timeout
        self.policy = AddressPolicy(allow_private, allow)
        self.resolve = resolve
        self.ca_bundle = ca_bundle
        self.gate = gate

    def client_options(self, limits: Limits | None = None, certificate: Certificate | None = None,
                       box: SecretBox | None = None) -> dict[str, Any]:
        """Keyword arguments for ``httpx2.Client`` (or Authlib's ``OAuth2Client``, one of those)."""
        context = ssl_context(self.ca_bundle, certificate, box)
        transport = GuardedTransport(context, self.policy, self.resolve, self.timeout, self.gate, limits)
        # Redirects are not followed: a provider redirecting a token or check request is
        # answered as an error rather than chased to an address nobody chose. Answers come
        # unencoded when the provider listens (answer_body decodes gzip under the limit if not).
        return {"timeout": self.timeout, "transport": transport, "follow_redirects": False,
                "trust_env": False, "headers": {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}}

    def client(self, limits: Limits | None = None, certificate: Certificate | None = None,
               box: SecretBox | None = None) -> httpx2.Client:
        return httpx2.Client(**self.client_options(limits, certificate, box))

    def check(self, method: str, url: str, *, auth: httpx2.Auth | None = None,
              headers: dict[str, str] | None = None, options: dict[str, Any] | None = None) -> httpx2.Response:
        """Run a credential check: 2xx passes, 401/403 is ``credentials_rejected``.

        Only the status counts: the body is read to its end (at most 1 MiB, within the
        deadline) and dropped. ``options`` are a connector's client options
        (``connection.http_options``).
        """
        with (provider_errors("credential check"), httpx2.Client(**(options or self.client_options())) as client,
              client.stream(method, url, auth=auth, headers=headers) as response):
            for _ in response.iter_raw():
                pass
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
        raise ProviderDeclined(f"The provider is rate limiting the {what}.", code=ErrorCode.PROVIDER_RATE_LIMITED,
                               retry_after=retry_after_seconds(response))
    if status >= 500:
        raise ProviderDeclined(f"The provider answered the {what} with HTTP {status}.")
    if 300 <= status < 400:
        raise ProviderError(f"The provider redirected the {what} (HTTP {status}); redirects are not followed.",
                            error=f"http_{status}")
    raise ProviderError(f"The provider answered the {what} with HTTP {status}.", error=f"http_{status}")


@contextlib.contextmanager
def provider_errors(what: str) -> Iterator[None]:
    """Status errors by their code; a transport failure httpx raised itself as ``provider_unreachable``
    (the transport's own failures arrive already as authq's)."""
    try:
        yield
    except httpx2.HTTPStatusError as exc:
        raise_for_provider_status(exc.response, what)
        raise
    except (httpx2.UnsupportedProtocol, httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
        raise NotSent(f"Could not reach the provider for the {what} ({type(exc).__name__}).") from None
    except httpx2.TimeoutException:
        raise ProviderUnreachable(f"The provider did not answer the {what} in time.") from None
    except httpx2.TransportError as exc:
        raise ProviderUnreachable(f"Could not reach the provider for the {what} ({type(exc).__name__}).") from None
