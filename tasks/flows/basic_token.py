"""Completing connectors whose credentials the user typed in: ``basic`` and ``token``.

The credentials are sealed onto the connector; the catalog's ``check`` request, when
there is one, must pass first.
"""

from __future__ import annotations

import httpx2

from tasks.errors import ErrorCode, JobFailed
from tasks.flows.outcome import Step
from tasks.jobs.context import JobContext
from tasks.model.catalog import Implementation
from tasks.model.records import Connector, Credentials
from tasks.provider.connection import http_options
from tasks.provider.guard import render_url
from tasks.validation.variables import plain_values


def _need(values: dict[str, str], key: str) -> str:
    value = values.get(key)
    if not value:
        raise JobFailed(ErrorCode.CREDENTIALS_REJECTED, f"The {key} variable has no value.", "variables")
    return value


def complete_basic_or_token(ctx: JobContext, connector: Connector, impl: Implementation,
                            step: Step) -> Connector:
    values = plain_values(connector.variables, ctx.box)
    auth: httpx2.Auth | None = None
    headers: dict[str, str] = {}
    if impl.type == "basic":
        username, password = _need(values, impl.username_variable), _need(values, impl.password_variable)
        auth = httpx2.BasicAuth(username, password)
        secret = {"username": username, "password": password}
        token_type = "basic"
    else:
        token = _need(values, impl.token_variable)
        if impl.token_header:
            headers[impl.token_header] = token
        else:
            headers["Authorization"] = f"Bearer {token}"
        secret = {"token": token}
        token_type = "bearer"
    if impl.check is not None:
        step("credential_check")
        url = render_url(impl.check.url, values)
        ctx.outbound.check(impl.check.method, url, auth=auth, headers=headers, options=http_options(ctx, connector))
    now = ctx.now()
    return connector.model_copy(update={
        "status": "authorised",
        "credentials": Credentials(token_type=token_type, scopes=list(impl.scopes), expires_at=None),
        "credentials_sealed": ctx.box.seal_json(secret),
        "credential_version": connector.credential_version + 1,
        "authorised_at": now,
        "updated_at": now,
    })
