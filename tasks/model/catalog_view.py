"""The catalog as a client needs it (contract §5, ``GET /implementations``): each
implementation's id, system, type, scopes, variables, whether the proxy can reach it and the
settings it suggests.

What a client never sees: the URLs and token settings (authq's business, not the client's), a
secret variable's default, and anything of the platform apps (their client ids and the names of
the environment variables that hold their secrets). The views are built once, when the catalog
is loaded (``CatalogViews``): the catalog never changes while a process runs.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

from tasks.model.catalog import AuthType, Catalog, Implementation
from tasks.model.views import RateLimitUnit

EXACT = ConfigDict(extra="forbid")


@with_config(EXACT)
class ImplementationVariableView(TypedDict):
    key: str
    label: str | None
    alias: str | None
    required: bool
    secret: bool
    configurable: bool
    advanced: bool
    default: Annotated[str | None, Field(description="The value used when none is given; always null for a "
                                                     "secret variable.")]


@with_config(EXACT)
class ImplementationDefaultsView(TypedDict):
    timezone: str | None
    date_format: str | None
    rate_limit_unit: RateLimitUnit | None
    rate_limit_duration: int | None


@with_config(EXACT)
class ImplementationView(TypedDict):
    id: str
    system: str
    type: AuthType
    scopes: list[str]
    variables: list[ImplementationVariableView]
    proxy: Annotated[bool, Field(description="Whether the implementation has a `base_url`: the proxy "
                                             "(`/connectors/{connector}/proxy/{path}`) can reach its provider.")]
    defaults: Annotated[ImplementationDefaultsView | None,
                        Field(description="Connector settings the provider documents (its rate limit, "
                                          "time zone, date format), for a client to offer; null when none.")]


def implementation_view(impl: Implementation) -> ImplementationView:
    variables: list[ImplementationVariableView] = [
        {"key": v.key, "label": v.label, "alias": v.alias, "required": v.required, "secret": v.is_secret,
         "configurable": v.configurable, "advanced": v.advanced, "default": None if v.is_secret else v.default}
        for v in impl.variables]
    defaults: ImplementationDefaultsView | None = None
    if impl.defaults is not None:
        defaults = {"timezone": impl.defaults.timezone, "date_format": impl.defaults.date_format,
                    "rate_limit_unit": impl.defaults.rate_limit_unit,
                    "rate_limit_duration": impl.defaults.rate_limit_duration}
    return {"id": impl.id, "system": impl.system, "type": impl.type, "scopes": list(impl.scopes),
            "variables": variables, "proxy": impl.base_url is not None, "defaults": defaults}


class CatalogViews:
    """Every implementation's view, in the catalog's order and by id, built once."""

    def __init__(self, catalog: Catalog) -> None:
        self.ordered: tuple[ImplementationView, ...] = tuple(implementation_view(i) for i in catalog.implementations)
        self.by_id: dict[str, ImplementationView] = {view["id"]: view for view in self.ordered}

    def get(self, implementation_id: str) -> ImplementationView | None:
        return self.by_id.get(implementation_id)
