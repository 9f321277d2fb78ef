"""The lookups a job makes before it touches a provider (contract §6 error codes).

Each returns the record or raises ``JobFailed`` with the code and the offending ``field``.
"""

from __future__ import annotations

from tasks.errors import ErrorCode, JobFailed
from tasks.jobs.context import JobContext
from tasks.model.catalog import Implementation, PlatformApp
from tasks.model.records import Certificate, ConnectionPool, Session


def session(ctx: JobContext, tenant: str, session_id: str, impl: Implementation) -> Session:
    found = ctx.store.session(tenant, session_id)
    if found is None:
        raise JobFailed(ErrorCode.SESSION_NOT_FOUND, f"No session {session_id!r} exists.", "session_id")
    if found.expired(ctx.now()):
        raise JobFailed(ErrorCode.SESSION_EXPIRED, "The session has expired; create a new one.", "session_id")
    if found.allowed_implementations is not None and impl.id not in found.allowed_implementations:
        raise JobFailed(ErrorCode.SESSION_FORBIDDEN,
                        f"The session does not allow the implementation {impl.id!r}.", "session_id")
    return found


def certificate(ctx: JobContext, tenant: str, certificate_id: str) -> Certificate:
    found = ctx.store.certificate(tenant, certificate_id)
    if found is None:
        raise JobFailed(ErrorCode.CERTIFICATE_NOT_FOUND, f"No certificate {certificate_id!r} exists.", "certificate_id")
    now = ctx.now()
    if found.not_after <= now:
        raise JobFailed(ErrorCode.CERTIFICATE_EXPIRED, "The certificate expired; upload a current one.",
                        "certificate_id")
    if found.not_before > now:
        raise JobFailed(ErrorCode.CERTIFICATE_INVALID, "The certificate is not valid yet.", "certificate_id")
    return found


def connection_pool(ctx: JobContext, tenant: str, pool_id: int) -> ConnectionPool:
    found = ctx.store.pool(tenant, pool_id)
    if found is None:
        raise JobFailed(ErrorCode.CONNECTION_POOL_NOT_FOUND, f"No connection pool {pool_id} exists.",
                        "connection_pool_id")
    return found


def platform_app(ctx: JobContext, key: str, impl: Implementation) -> PlatformApp:
    app = ctx.catalog.platform_app(key)
    if app is None:
        raise JobFailed(ErrorCode.PLATFORM_APP_NOT_FOUND, f"No platform app {key!r} is in the catalog.",
                        "platform_app_key")
    if app.implementation_id != impl.id:
        raise JobFailed(ErrorCode.PLATFORM_APP_NOT_FOUND,
                        f"The platform app {key!r} is registered for {app.implementation_id!r}, not {impl.id!r}.",
                        "platform_app_key")
    if app.client_secret_env and app.client_secret_env not in ctx.platform_secrets:
        raise JobFailed(ErrorCode.PLATFORM_APP_NOT_FOUND,
                        f"The platform app {key!r} has no client secret: set {app.client_secret_env} for the workers.",
                        "platform_app_key")
    return app
