"""Calls authq makes to providers for a connector (here: the catalog's credential check).

Every call goes through ``Outbound``: one place for timeouts, the destination guard and
the mapping of transport failures and status codes onto the contract's error codes.
"""

from __future__ import annotations

import httpx

from .errors import JobFailed, ProviderError, ProviderUnreachable
from .urls import guard_destination

USER_AGENT = "authq/0.1 (+connector authorisation)"


class Outbound:
    def __init__(self, timeout: float, allow_private: bool, verify: str | bool = True) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self.verify = verify

    def client(self) -> httpx.Client:
        # Redirects are not followed: a provider redirecting a credential check elsewhere
        # is answered as an error rather than followed to an address nobody checked.
        return httpx.Client(timeout=self.timeout, verify=self.verify, follow_redirects=False,
                            headers={"User-Agent": USER_AGENT})

    def check(self, method: str, url: str, *, auth: httpx.Auth | None = None,
              headers: dict[str, str] | None = None) -> httpx.Response:
        """Run a credential check: 2xx passes, 401/403 is ``credentials_rejected``."""
        guard_destination(url, self.allow_private)
        try:
            with self.client() as client:
                response = client.request(method, url, auth=auth, headers=headers)
        except httpx.TimeoutException:
            raise ProviderUnreachable("The provider did not answer the credential check in time.") from None
        except httpx.TransportError as exc:
            raise ProviderUnreachable(f"Could not reach the provider: {type(exc).__name__}.") from None
        if response.is_success:
            return response
        if response.status_code in (401, 403):
            raise JobFailed("credentials_rejected",
                            f"The provider rejected the credentials (HTTP {response.status_code}).", "variables")
        if response.status_code == 429:
            retry_after = response.headers.get("Retry-After")
            raise ProviderUnreachable("The provider is rate limiting requests.", code="provider_rate_limited",
                                      retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None)
        if response.status_code >= 500:
            raise ProviderUnreachable(f"The provider answered HTTP {response.status_code}.")
        raise ProviderError(f"The credential check answered HTTP {response.status_code}.",
                            error=f"http_{response.status_code}")
