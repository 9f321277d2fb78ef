"""The audit log (contract §12): the tenant's events, newest first, filtered by connector or type."""

from __future__ import annotations

from typing import cast

from aiohttp import web

from api.auth import tenant
from api.path_ids import has_shape
from api.responses import page_params, paged
from api.typedefs import STORE
from tasks.errors import RequestInvalid
from tasks.model.audit import AUDIT_TYPES
from tasks.model.views import AuditType

FILTERS = ("connector_id", "type")
PARAMETERS = frozenset({*FILTERS, "page", "per_page"})


def _filters(request: web.Request) -> tuple[str | None, AuditType | None, int, int]:
    """The query's filters and page, every problem at once (422): an unknown parameter is refused,
    never ignored, so a misspelt filter cannot pass for an empty result."""
    errors: dict[str, list[str]] = {name: [f"{name} is not a filter of the audit log: use "
                                           f"{', '.join(FILTERS)}, page or per_page."]
                                    for name in request.query if name not in PARAMETERS}
    connector_id, type_ = request.query.get("connector_id"), request.query.get("type")
    if connector_id is not None and not has_shape("connector", connector_id):
        errors["connector_id"] = ["The connector id field must be a connector id (con_ and 32 hex digits)."]
    if type_ is not None and type_ not in AUDIT_TYPES:
        errors["type"] = [f"The type field must be one of {', '.join(AUDIT_TYPES)}."]
    try:
        page, per_page = page_params(request)
    except RequestInvalid as exc:
        errors.update(exc.errors)
        page, per_page = 1, 1
    if errors:
        raise RequestInvalid(errors)
    return connector_id, cast("AuditType | None", type_), page, per_page


async def index(request: web.Request) -> web.StreamResponse:
    connector_id, type_, page, per_page = _filters(request)
    items, total = await request.app[STORE].audit_events(tenant(request), page, per_page, connector_id, type_)
    kept = {name: value for name, value in (("connector_id", connector_id), ("type", type_)) if value is not None}
    return paged(request, [e.view() for e in items], total, page, per_page, kept)
