"""Connect sessions: short-lived, for one end user."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from api.auth import tenant
from api.body import json_body
from api.path_ids import path_id
from api.responses import one
from api.typedefs import STORE
from tasks.errors import NotFound
from tasks.model.bodies import SessionIn
from tasks.model.records import Session, new_id, utcnow
from tasks.validation.field_errors import parse


async def create(request: web.Request) -> web.StreamResponse:
    body = parse(SessionIn, await json_body(request))
    now = utcnow()
    session = Session(id=new_id("ses"), tenant=tenant(request), end_user_id=body.end_user_id,
                      return_url=body.return_url, allowed_implementations=body.allowed_implementations,
                      expires_at=now + timedelta(seconds=body.ttl_seconds), created_at=now)
    await request.app[STORE].save_session(session, body.ttl_seconds)
    return one(session.view(), status=201, headers={"Location": f"/api/v1/sessions/{session.id}"})


async def show(request: web.Request) -> web.StreamResponse:
    session = await request.app[STORE].session(tenant(request), path_id(request, "session"))
    if session is None:
        raise NotFound("Session")
    return one(session.view())
