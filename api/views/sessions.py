"""Connect sessions: short-lived, for one end user; each opens a hosted connect page (§11)."""

from __future__ import annotations

import secrets
from datetime import timedelta

from aiohttp import web

from api.auth import tenant
from api.body import json_body
from api.path_ids import path_id
from api.responses import one
from api.typedefs import SETTINGS, STORE
from tasks.errors import NotFound, RequestInvalid
from tasks.model.bodies import SessionIn
from tasks.model.records import Session, new_id, utcnow
from tasks.storage.schema import sha256
from tasks.validation.field_errors import parse

CONNECT_PATH = "/connect/"


def connect_url(public_url: str, token: str) -> str:
    return f"{public_url}{CONNECT_PATH}{token}"


async def _connector_errors(request: web.Request, owner: str, body: SessionIn) -> dict[str, list[str]]:
    """The connector a session re-authorises must be the tenant's own (another tenant's reads as
    missing, as everywhere) and one the session allows."""
    if body.connector_id is None:
        return {}
    connector = await request.app[STORE].connector(owner, body.connector_id)
    if connector is None:
        return {"connector_id": ["The selected connector id is invalid: no such connector exists."]}
    allowed = body.allowed_implementations
    if allowed is not None and connector.authentication_implementation_id not in allowed:
        return {"connector_id": [f"The connector's implementation {connector.authentication_implementation_id!r} "
                                 "is not among the session's allowed implementations."]}
    return {}


async def create(request: web.Request) -> web.StreamResponse:
    body = parse(SessionIn, await json_body(request))
    owner = tenant(request)
    problems = await _connector_errors(request, owner, body)
    if problems:
        raise RequestInvalid(problems)
    now = utcnow()
    # 256 random bits: the connect page's only credential, kept as its hash alone.
    token = secrets.token_urlsafe(32)
    session = Session(id=new_id("ses"), tenant=owner, end_user_id=body.end_user_id,
                      return_url=body.return_url, allowed_implementations=body.allowed_implementations,
                      defaults=body.defaults.model_dump(exclude_none=True) if body.defaults else None,
                      connector_id=body.connector_id, connect_token_sha256=sha256(token),
                      expires_at=now + timedelta(seconds=body.ttl_seconds), created_at=now)
    await request.app[STORE].save_session(session, body.ttl_seconds, connect_token=token)
    url = connect_url(request.app[SETTINGS].effective_public_url, token)
    return one(session.view(connect_url=url), status=201, headers={"Location": f"/api/v1/sessions/{session.id}"})


async def show(request: web.Request) -> web.StreamResponse:
    session = await request.app[STORE].session(tenant(request), path_id(request, "session"))
    if session is None:
        raise NotFound("Session")
    return one(session.view())
