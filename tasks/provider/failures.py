"""What can go wrong on the way to a provider, told apart once, where it happens: did anything of
the request leave authq?

    JobFailed
    ├── DestinationRefused      url_not_allowed: not http(s), or an address     before-send
    │                           that is not permitted
    └── ProviderUnreachable     provider_unreachable (retryable): no usable     after-send
        │                       answer (none in time, cut off, too long)
        ├── NotSent             the name did not resolve, connecting or the     before-send
        │                       TLS handshake failed
        └── ProviderDeclined    the provider answered 5xx or 429                after-send

A permit the gate could not grant yet (``Deferred``) is before-send too. ``reached_provider`` is
the one question callers ask; the code exchange asks it to know whether its code is spent.
"""

from __future__ import annotations

from tasks.errors import Deferred, ErrorCode, JobFailed, ProviderUnreachable


class DestinationRefused(JobFailed):
    """Not a destination authq may reach: not an http(s) URL, or an address (every address a
    name resolved to is checked) that is not public."""

    def __init__(self, host: str, message: str | None = None) -> None:
        super().__init__(ErrorCode.URL_NOT_ALLOWED, message or (
            f"The host {host!r} is, or resolves to, a private, loopback or link-local address; "
            "set AUTHQ_ALLOW_PRIVATE_NETWORKS=true to allow it (tests, on-prem)."))


class NotSent(ProviderUnreachable):
    """Nothing of the request left authq: the provider cannot have seen it."""


class ProviderDeclined(ProviderUnreachable):
    """The provider answered, with a 5xx or a 429: worth trying again later."""


def reached_provider(failure: BaseException) -> bool:
    """False when the failure happened before any byte of the request was sent."""
    return not isinstance(failure, (NotSent, DestinationRefused, Deferred))
