"""Connection pools: integer ids, per tenant."""

from __future__ import annotations

import re

from aiohttp import web

from api.auth import tenant
from api.body import json_body
from api.responses import one, page_params, paged
from api.typedefs import STORE
from tasks.errors import NotFound
from tasks.model.bodies import ConnectionPoolIn
from tasks.model.records import ConnectionPool, utcnow
from tasks.validation.field_errors import parse

# ASCII digits only, and few enough for int(): str.isdigit() also accepts "²" (which int()
# rejects: a 500) and "١" (which int() reads as 1: an alias of pool 1).
POOL_ID = re.compile(r"[0-9]{1,19}")


def _pool_id(request: web.Request) -> int:
    raw = request.match_info["pool"]
    if not POOL_ID.fullmatch(raw):
        raise NotFound("Connection pool")
    return int(raw)


async def create(request: web.Request) -> web.StreamResponse:
    body = parse(ConnectionPoolIn, await json_body(request))
    owner = tenant(request)
    store = request.app[STORE]
    pool = ConnectionPool(id=await store.next_pool_id(owner), tenant=owner, name=body.name, limit=body.limit,
                          timeout=body.timeout, created_at=utcnow())
    await store.save_pool(pool)
    return one(pool.view(), status=201, headers={"Location": f"/api/v1/connection-pools/{pool.id}"})


async def index(request: web.Request) -> web.StreamResponse:
    page, per_page = page_params(request)
    items, total = await request.app[STORE].pools(tenant(request), page, per_page)
    return paged(request, [p.view() for p in items], total, page, per_page)


async def show(request: web.Request) -> web.StreamResponse:
    pool = await request.app[STORE].pool(tenant(request), _pool_id(request))
    if pool is None:
        raise NotFound("Connection pool")
    return one(pool.view())


async def delete(request: web.Request) -> web.StreamResponse:
    if not await request.app[STORE].delete_pool(tenant(request), _pool_id(request)):
        raise NotFound("Connection pool")
    return web.Response(status=204)
