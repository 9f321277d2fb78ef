"""Single-use authorization states (OAuth ``state``, WooCommerce ``user_id``, and the OAuth 1.0a
request token, which plays the state's part: the provider chose it, authq keys it the same way).

A state is 256 random bits, stored only as its SHA-256, bound to one tenant, connector and
authorise job, and expiring (10 minutes for OAuth). It is *claimed* once, atomically
(``SET NX``), by the callback that uses it; the claim names the job that consumes it, so a
replayed callback finds it used, and a redelivered job still recognises its own claim.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any, Literal

import redis

from tasks.model.records import Record, utcnow
from tasks.storage import schema
from tasks.storage.steps import Op
from tasks.storage.store import run

OAUTH_STATE_TTL = 600
WOO_STATE_TTL = 1800   # a store owner may first have to log in to WordPress
CLAIM_KEPT_SECONDS = 86400   # past the state's life: a replayed callback still finds it used


StateKind = Literal["oauth", "woo", "oauth1"]


class AuthState(Record):
    kind: StateKind
    tenant: str
    connector_id: str
    job_id: str
    implementation_id: str
    code_verifier_sealed: str | None = None
    # OAuth 1.0a: the request token's secret, which signs the access-token request.
    request_token_secret_sealed: str | None = None
    redirect_uri: str | None = None
    issuer: str | None = None
    return_url: str | None = None
    # The session the connector was authorised with: a connect page's browser coming back is
    # sent to its page only when its own session issued the state (``api/connect/returning.py``).
    session_id: str | None = None
    # A reauthorise's new connector (JSON), applied only when the callback succeeds.
    candidate: dict[str, Any] | None = None
    # The connector's credential version when the state was issued: a callback's job that
    # finds a newer one knows an earlier run of itself already stored the tokens.
    credential_version: int = 0
    created_at: datetime
    expires_at: datetime


def new_state() -> str:
    return secrets.token_urlsafe(32)


def _ttl(kind: StateKind) -> int:
    return WOO_STATE_TTL if kind == "woo" else OAUTH_STATE_TTL


def make_state(kind: StateKind, **fields: object) -> AuthState:
    now = utcnow()
    return AuthState(kind=kind, created_at=now, expires_at=now + timedelta(seconds=_ttl(kind)), **fields)  # type: ignore[arg-type]


def ttl_of(state: AuthState) -> int:
    return _ttl(state.kind)


def exchange_key(raw: str) -> str:
    """Set (NX) before a code is sent to the token endpoint: a code is spent at most once."""
    return schema.auth_state_exchange(raw)


# --- the operations (steps.py): the API sends them (api/store.py), the flows through the functions below

def issue_state(raw: str, state: AuthState) -> Op[None]:
    yield ("SET", schema.auth_state(raw), state.model_dump_json(), "EX", ttl_of(state))


def auth_state(raw: str) -> Op[AuthState | None]:
    """The state, unless it expired (or never was)."""
    data = yield ("GET", schema.auth_state(raw))
    if data is None:
        return None
    state = AuthState.model_validate_json(data)
    return None if state.expires_at <= utcnow() else state


def claim_state(raw: str, state: AuthState, job_id: str) -> Op[bool]:
    """Atomically make ``job_id`` the one user of the state; False when it was used."""
    return bool((yield ("SET", schema.auth_state_claim(raw), job_id, "NX", "EX", ttl_of(state) + CLAIM_KEPT_SECONDS)))


def state_claimed_by(raw: str) -> Op[str | None]:
    """The job that claimed the state, if one did."""
    value = yield ("GET", schema.auth_state_claim(raw))
    return None if value is None else value.decode() if isinstance(value, bytes) else str(value)


def release_state_claim(raw: str) -> Op[None]:
    yield ("DEL", schema.auth_state_claim(raw))


# What the flows call, with the worker's client (sync).
def issue(client: redis.Redis, raw: str, state: AuthState) -> None:
    run(client, issue_state(raw, state))


def load(client: redis.Redis, raw: str) -> AuthState | None:
    return run(client, auth_state(raw))


def claimed_by(client: redis.Redis, raw: str) -> str | None:
    return run(client, state_claimed_by(raw))


def release(client: redis.Redis, raw: str) -> None:
    run(client, release_state_claim(raw))
