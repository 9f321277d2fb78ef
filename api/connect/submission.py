"""A posted connect form, submitted as the JSON API submits: the same validation
(``tasks.validation.submission``) and the same accepting (``api.submit.accept``).

The form gives the variables' values; the session gives its id and the connector settings
(``offer.settings_for``). A reconnect session's form re-authorises its connector: a secret left
empty keeps its current value (the reauthorise rules decide whether it may).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api.connect.offer import asked, settings_for
from api.submit import accept
from api.typedefs import BOX, CATALOG, SETTINGS, STORE
from tasks.model.catalog import Implementation
from tasks.model.records import Connector, Job, Session, new_id
from tasks.validation.submission import validate_authorise, validate_reauthorise

FIELD_PREFIX = "var."


@dataclass(frozen=True)
class Request:
    """What one post asks for: the JSON API's body, and which variable it sent at each index."""

    body: dict[str, Any]
    sent: list[str]


def typed(form: dict[str, str], impl: Implementation) -> dict[str, str]:
    """The asked variables' values as posted (absent ones as empty)."""
    return {v.key: form.get(FIELD_PREFIX + v.key, "") for v in asked(impl)}


def build(session: Session, impl: Implementation, values: dict[str, str], connector: Connector | None) -> Request:
    variables = []
    for spec in asked(impl):
        value = values.get(spec.key, "")
        kept = spec.default is not None or (connector is not None and spec.is_secret)
        if value == "" and (not spec.required or kept):
            continue  # nothing typed: the catalog's default, or on a reconnect the current value
        variables.append({"key": spec.key, "value": value})
    body: dict[str, Any] = {"session_id": session.id, "variables": variables}
    if connector is None:
        body.update(settings_for(session, impl) or {}, authentication_implementation_id=impl.id)
    else:
        body.update(session.defaults or {})
    return Request(body, [v["key"] for v in variables])


async def submit(request: web.Request, session: Session, asked_for: Request,
                 connector: Connector | None) -> tuple[Job, str]:
    """Validate and queue the authorise (or, for a reconnect, the reauthorise) ``build`` made;
    raises ``RequestInvalid`` as the API's 422 would, ``QueueUnavailable`` / ``TenantFull`` as its
    503 / 429."""
    app = request.app
    cap = app[SETTINGS].max_queued_per_tenant
    if connector is None:
        body = validate_authorise(asked_for.body, app[CATALOG], app[BOX])
        job, job_json = await accept(request, session.tenant, "authorise", new_id("con"),
                                     body.model_dump(exclude_unset=True), cap=cap)
    else:
        again, _ = validate_reauthorise(asked_for.body, connector, app[CATALOG], app[BOX])
        job, job_json = await accept(request, session.tenant, "reauthorise", connector.id,
                                     again.model_dump(exclude_unset=True), cap=cap)
    return job, job_json


async def connector_of(request: web.Request, session: Session) -> Connector | None:
    """The connector a reconnect session re-authorises (None: not one, or it was deleted)."""
    if session.connector_id is None:
        return None
    return await request.app[STORE].connector(session.tenant, session.connector_id)
