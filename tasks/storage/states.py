"""Single-use authorization states (OAuth ``state``, WooCommerce ``user_id``).

A state is 256 random bits, stored only as its SHA-256, bound to one tenant, connector and
authorise job, and expiring (10 minutes for OAuth). It is *claimed* once, atomically
(``SET NX``), by the callback that uses it; the claim names the job that consumes it, so a
replayed callback finds it used, and a redelivered job still recognises its own claim.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any, Literal

import redis

from tasks.model.records import Record, utcnow
from tasks.storage.schema import PREFIX

OAUTH_STATE_TTL = 600
WOO_STATE_TTL = 1800   # a store owner may first have to log in to WordPress


class AuthState(Record):
    kind: Literal["oauth", "woo"]
    tenant: str
    connector_id: str
    job_id: str
    implementation_id: str
    code_verifier_sealed: str | None = None
    redirect_uri: str | None = None
    issuer: str | None = None
    return_url: str | None = None
    # A reauthorise's new connector (JSON), applied only when the callback succeeds.
    candidate: dict[str, Any] | None = None
    # The connector's credential version when the state was issued: a callback's job that
    # finds a newer one knows an earlier run of itself already stored the tokens.
    credential_version: int = 0
    created_at: datetime
    expires_at: datetime


def state_key(raw: str) -> str:
    return f"{PREFIX}:state:{hashlib.sha256(raw.encode()).hexdigest()}"


def claim_key(raw: str) -> str:
    return state_key(raw) + ":claim"


def exchange_key(raw: str) -> str:
    """Set (NX) before a code is sent to the token endpoint: a code is spent at most once."""
    return state_key(raw) + ":exchange"


def new_state() -> str:
    return secrets.token_urlsafe(32)


def make_state(kind: Literal["oauth", "woo"], **fields: object) -> AuthState:
    now = utcnow()
    ttl = OAUTH_STATE_TTL if kind == "oauth" else WOO_STATE_TTL
    return AuthState(kind=kind, created_at=now, expires_at=now + timedelta(seconds=ttl), **fields)  # type: ignore[arg-type]


def ttl_of(state: AuthState) -> int:
    return OAUTH_STATE_TTL if state.kind == "oauth" else WOO_STATE_TTL


def issue(client: redis.Redis, raw: str, state: AuthState) -> None:
    client.set(state_key(raw), state.model_dump_json(), ex=ttl_of(state))


def load(client: redis.Redis, raw: str) -> AuthState | None:
    data = client.get(state_key(raw))
    if data is None:
        return None
    state = AuthState.model_validate_json(data)
    return None if state.expires_at <= utcnow() else state


def claimed_by(client: redis.Redis, raw: str) -> str | None:
    value = client.get(claim_key(raw))
    return value.decode() if isinstance(value, bytes) else value


def claim(client: redis.Redis, raw: str, job_id: str, ttl: int) -> bool:
    return bool(client.set(claim_key(raw), job_id, nx=True, ex=ttl + 86400))
