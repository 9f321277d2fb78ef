"""What a proxied request derives from its connector's stored record, worked out once per record.

Every proxied request needs its implementation, its base URL rendered from the catalog's
template (variables opened, placeholders filled, the result checked) and its credentials made
ready to inject. All of it follows from the record alone, and the API keeps each parsed record
as one shared, frozen object for as long as its stored JSON stays the same
(``api/parsed_records.py``). So it is worked out for the first request that brings a record
and kept beside it; a changed connector is a new record with a plan of its own. Working it out
on every request was about a twentieth of a proxied request's cost.

What depends on the moment (a token about to expire, the rate limit, the pool) is not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.parsed_records import keep
from tasks.errors import JobFailed
from tasks.flows.credentials_for_use import CredentialsForUseView, credentials_for_use
from tasks.model.catalog import PLACEHOLDER, Catalog, Implementation
from tasks.model.records import Connector
from tasks.provider.guard import render_url
from tasks.security.sealing import SecretBox
from tasks.validation.variables import plain_values

KEPT = 2048  # plans (as many as the parsed records kept)


@dataclass(frozen=True, slots=True)
class ProxyPlan:
    impl: Implementation | None       # None: the catalog no longer has the connector's implementation
    base: str | None                  # the rendered base URL; None without one (or when it cannot be rendered)
    base_refused: str | None          # why it cannot be rendered (a 403 ``url_not_allowed``)
    usable: CredentialsForUseView | None  # None: the stored credentials are not of the type's shape


def plan_for(connector: Connector, impl: Implementation | None, box: SecretBox) -> ProxyPlan:
    if impl is None:
        return ProxyPlan(None, None, None, None)
    base = refused = None
    if impl.base_url is not None:
        # Only the variables the template names are opened (a sealed one costs a decryption).
        named = set(PLACEHOLDER.findall(impl.base_url))
        try:
            base = render_url(impl.base_url, plain_values([v for v in connector.variables if v.key in named], box))
        except JobFailed as exc:
            refused = exc.message
    return ProxyPlan(impl, base, refused, credentials_for_use(connector, impl, box))


class ProxyPlans:
    """Plans by record (the very object; a record is kept here while its plan is, so its
    identity cannot pass to another). The oldest is forgotten first."""

    def __init__(self, catalog: Catalog, box: SecretBox, kept: int = KEPT) -> None:
        self._catalog = catalog
        self._box = box
        self._kept = kept
        self._by_record: dict[int, tuple[Connector, ProxyPlan]] = {}

    def of(self, connector: Connector) -> ProxyPlan:
        found = self._by_record.get(id(connector))
        if found is not None and found[0] is connector:
            return found[1]
        plan = plan_for(connector, self._catalog.implementation(connector.authentication_implementation_id),
                        self._box)
        keep(self._by_record, id(connector), (connector, plan), self._kept)
        return plan
