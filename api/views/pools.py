"""Connection pools: integer ids, per tenant."""

from __future__ import annotations

from aiohttp import web

from api.auth import tenant
from api.body import json_body
from api.path_ids import pool_id
from api.responses import one, page_params, paged
from api.typedefs import STORE
from tasks.errors import NotFound
from tasks.model.bodies import ConnectionPoolIn
from tasks.model.records import ConnectionPool, utcnow
from tasks.validation.field_errors import parse


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
    pool = await request.app[STORE].pool(tenant(request), pool_id(request))
    if pool is None:
        raise NotFound("Connection pool")
    return one(pool.view())


async def delete(request: web.Request) -> web.StreamResponse:
    if not await request.app[STORE].delete_pool(tenant(request), pool_id(request)):
        raise NotFound("Connection pool")
    return web.Response(status=204)
