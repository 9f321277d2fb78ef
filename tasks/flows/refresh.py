"""The ``refresh`` job: a new access token, single-flight across every worker.

Refresh tokens are often rotated, and spending an old one twice can revoke the whole grant
(DOMAIN.md: Nango #1005/#2494, n8n #12742). So a refresh takes a per-connector lock,
re-reads the connector under it, and skips the request when somebody else refreshed since
the job began; the new credentials are written with a compare-and-swap on
``credential_version``. ``invalid_grant`` expires the connector only if, re-read, nobody
else refreshed it in the meantime.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tasks.errors import Deferred, ErrorCode, JobFailed, ProviderError
from tasks.flows.jwt_grants import jwt_bearer_token
from tasks.flows.oauth2 import client_credentials_token, refresh_token, sealed_tokens, with_tokens
from tasks.flows.outcome import Outcome, Step
from tasks.jobs.context import JobContext
from tasks.model.catalog import OAUTH2_TYPES
from tasks.model.records import Connector, Job
from tasks.storage import schema

LOCK_SECONDS = 60
LOCK_WAIT = 5.0

_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


@contextmanager
def refresh_lock(ctx: JobContext, tenant: str, connector_id: str) -> Iterator[None]:
    client = ctx.store.redis
    token = secrets.token_hex(16)
    deadline = time.monotonic() + LOCK_WAIT
    while not client.set(schema.refresh_lock(tenant, connector_id), token, nx=True, ex=LOCK_SECONDS):
        if time.monotonic() > deadline:
            raise Deferred(1.0, "refresh_lock")
        time.sleep(0.05)
    try:
        yield
    finally:
        client.eval(_RELEASE, 1, schema.refresh_lock(tenant, connector_id), token)


def _current(ctx: JobContext, job: Job) -> Connector:
    assert job.connector_id is not None
    connector = ctx.store.connector(job.tenant, job.connector_id)
    if connector is None:
        raise JobFailed(ErrorCode.CONNECTOR_NOT_FOUND, "The connector was deleted.")
    return connector


def refresh(ctx: JobContext, job: Job, body: dict[str, Any], step: Step) -> Outcome:
    before = _current(ctx, job)
    # The version this job set out to replace: fixed at its first start, so a redelivered
    # job still recognises a refresh made by its own earlier run.
    seen = int(body.get("credential_version", before.credential_version))
    impl = ctx.catalog.implementation(before.authentication_implementation_id)
    if impl is None or impl.type not in OAUTH2_TYPES:
        raise JobFailed(ErrorCode.NOT_SUPPORTED, "Only OAuth 2 connectors have tokens to refresh.")
    if before.never_authorised:  # (the API answers 409 for it; a job queued before can still meet it)
        raise JobFailed(ErrorCode.NOT_SUPPORTED, f"The connector has never been authorised (it is {before.status}), "
                                                 "so it has no token to refresh; authorise it first.")
    step("acquire_refresh_lock")
    with refresh_lock(ctx, job.tenant, before.id):
        connector = _current(ctx, job)
        if connector.credential_version != seen:
            step("refreshed_elsewhere")
            return Outcome({"connector": connector.view(), "next_action": None})
        tokens = sealed_tokens(ctx, connector)
        step("token_refresh")
        try:
            if tokens.get("refresh_token"):
                token = refresh_token(ctx, connector, impl, tokens["refresh_token"])
            elif impl.type == "oauth2_client_credentials":
                token = client_credentials_token(ctx, connector, impl)
            elif impl.type == "oauth2_jwt_bearer":  # no refresh token: a new assertion each time
                token = jwt_bearer_token(ctx, connector, impl)
            else:
                raise JobFailed(ErrorCode.CREDENTIALS_REJECTED,
                                "The connector has no refresh token; authorise it again.")
        except ProviderError as exc:
            if (exc.provider or {}).get("error") == "invalid_grant":
                expired = connector.model_copy(update={"status": "expired", "updated_at": ctx.now()})
                if not ctx.store.replace_connector_if(expired, expected_version=connector.credential_version):
                    latest = _current(ctx, job)  # somebody refreshed (or reauthorised) meanwhile: theirs stands
                    return Outcome({"connector": latest.view(), "next_action": None})
                exc.change = "connector.expired"   # audited with the job's end
            raise
        updated = with_tokens(ctx, connector, impl, token, previous=tokens)
        step("store_connector")
        if not ctx.store.replace_connector_if(updated, expected_version=connector.credential_version):
            _current(ctx, job)  # deleted meanwhile: connector_not_found
            raise JobFailed(ErrorCode.INTERNAL_ERROR,
                            "The connector changed during its refresh; nothing was overwritten.")
    return Outcome({"connector": updated.view(), "next_action": None}, change="connector.refreshed")
