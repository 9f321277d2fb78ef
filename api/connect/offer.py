"""What a connect page offers: which implementations, with which settings, asking which variables.

An implementation is offered when the session allows it and its connector settings are complete
from the session's ``defaults`` and then the catalog's (contract §11). The end user is asked for
the variables they supply: not ``advanced``, not ``locked``, and either ``configurable`` or
required without a value already (a catalog ``default``, such as a platform's own client id).
"""

from __future__ import annotations

from typing import Any

from tasks.model.catalog import Catalog, CatalogVariable, Implementation
from tasks.model.records import Session

# The authorise fields an authorise cannot do without, which defaults must supply.
REQUIRED_SETTINGS = ("timezone", "date_format", "rate_limit_unit", "rate_limit_duration")


def settings_for(session: Session, impl: Implementation) -> dict[str, Any] | None:
    """The authorise fields for ``impl`` (session defaults over catalog defaults), or None when
    one that an authorise requires is in neither."""
    catalog_defaults = impl.defaults.model_dump(exclude_none=True) if impl.defaults else {}
    merged = {**catalog_defaults, **(session.defaults or {})}
    if any(merged.get(name) is None for name in REQUIRED_SETTINGS):
        return None
    return merged


def offered(session: Session, catalog: Catalog) -> list[Implementation]:
    """The implementations the page lists, in the session's order (or the catalog's)."""
    if session.allowed_implementations is None:
        candidates = list(catalog.implementations)
    else:
        candidates = [impl for impl_id in session.allowed_implementations
                      if (impl := catalog.implementation(impl_id)) is not None]
    return [impl for impl in candidates if settings_for(session, impl) is not None]


def asked(impl: Implementation) -> list[CatalogVariable]:
    """The variables the end user types in."""
    return [v for v in impl.variables
            if not v.advanced and not v.locked and (v.configurable or (v.required and v.default is None))]
