"""The catalog's implementations, as a client needs them (contract §5): read-only, the same for
every tenant, built once when the app is (``tasks/model/catalog_view.py``)."""

from __future__ import annotations

from aiohttp import web

from api.responses import one, page_params, paged
from api.typedefs import CATALOG_VIEWS
from tasks.errors import NotFound


async def index(request: web.Request) -> web.StreamResponse:
    page, per_page = page_params(request)
    views = request.app[CATALOG_VIEWS].ordered
    return paged(request, views[(page - 1) * per_page:page * per_page], len(views), page, per_page)


async def show(request: web.Request) -> web.StreamResponse:
    view = request.app[CATALOG_VIEWS].get(request.match_info["implementation"])
    if view is None:
        raise NotFound("Implementation")
    return one(view)
