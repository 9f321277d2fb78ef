"""OAuth 2 with Authlib: authorization code + PKCE (S256), client credentials, refresh.

Authlib does the protocol (authorize URL, PKCE challenge, client authentication, token
parsing, string ``expires_in``); this module decides which client a connector gets and
turns the answers into the connector's sealed credentials and the contract's error codes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client

from tasks.errors import ErrorCode, JobFailed, ProviderError
from tasks.flows.jwt_grants import certificate_jwt_auth
from tasks.jobs.context import JobContext
from tasks.model.catalog import Implementation
from tasks.model.records import Connector, Credentials
from tasks.provider.connection import http_options
from tasks.provider.guard import render_url
from tasks.provider.transport import provider_errors
from tasks.validation.variables import plain_values

# tls_client_auth (RFC 8705): the client certificate authenticates; the body names the client.
# private_key_jwt (RFC 7523 §2.2): a JWT signed by the certificate's key (jwt_grants.py).
AUTH_METHOD = {"client_secret_basic": "client_secret_basic", "client_secret_post": "client_secret_post",
               "tls_client_auth": "none", "private_key_jwt": "private_key_jwt"}
TOKEN_FIELDS = ("access_token", "refresh_token", "token_type", "expires_at", "scope", "id_token")


def client_credentials_of(ctx: JobContext, connector: Connector, values: dict[str, str]) -> tuple[str, str | None]:
    """(client_id, client_secret), from the platform app when the connector names one."""
    if connector.platform_app_key:
        app = ctx.catalog.platform_app(connector.platform_app_key)
        if app is None:
            raise JobFailed(ErrorCode.PLATFORM_APP_NOT_FOUND, f"No platform app {connector.platform_app_key!r}.",
                            "platform_app_key")
        return app.client_id, ctx.platform_secrets.get(app.client_secret_env) if app.client_secret_env else None
    client_id = values.get("client_id")
    if not client_id:
        raise JobFailed(ErrorCode.CREDENTIALS_REJECTED, "The client_id variable has no value.", "variables")
    return client_id, values.get("client_secret")


def oauth_client(ctx: JobContext, connector: Connector, impl: Implementation, *,
                 with_transport: bool = True) -> tuple[OAuth2Client, dict[str, str]]:
    values = plain_values(connector.variables, ctx.box)
    client_id, client_secret = client_credentials_of(ctx, connector, values)
    if impl.token_auth == "tls_client_auth" and not connector.certificate_id:
        raise JobFailed(ErrorCode.CERTIFICATE_NOT_FOUND,
                        "This implementation authenticates with a client certificate (tls_client_auth); "
                        "give the connector a certificate_id.", "certificate_id")
    options = http_options(ctx, connector) if with_transport else {}
    client = OAuth2Client(
        client_id=client_id, client_secret=None if impl.token_auth == "private_key_jwt" else client_secret,
        token_endpoint_auth_method=AUTH_METHOD[impl.token_auth],
        scope=" ".join(impl.scopes) or None, redirect_uri=ctx.redirect_uri,
        code_challenge_method="S256" if impl.pkce else None, **options,
    )
    if impl.token_auth == "private_key_jwt" and with_transport:
        # The key is opened only for a token request (never to build an authorize URL).
        client.register_client_auth_method(certificate_jwt_auth(ctx, connector, impl, values))
    return client, values


def authorize_url(ctx: JobContext, connector: Connector, impl: Implementation, state: str,
                  code_verifier: str | None) -> str:
    client, values = oauth_client(ctx, connector, impl, with_transport=False)
    with client:
        url, _ = client.create_authorization_url(render_url(impl.authorize_url or "", values), state=state,
                                                 code_verifier=code_verifier)
    return str(url)


def new_code_verifier() -> str:
    return str(generate_token(64))  # RFC 7636: 43-128 unreserved characters


def _request_token(ctx: JobContext, connector: Connector, impl: Implementation, what: str,
                   **params: Any) -> dict[str, Any]:
    client, values = oauth_client(ctx, connector, impl)
    url = render_url(impl.token_url or "", values)
    with client, provider_errors(what):
        try:
            if params.get("grant_type") == "refresh_token":
                token = client.refresh_token(url, refresh_token=params["refresh_token"])
            else:
                token = client.fetch_token(url, **params)
        except OAuthError as exc:
            raise ProviderError(f"The provider refused the {what}: {exc.error}.", error=exc.error,
                                description=exc.description) from None
    if not isinstance(token, dict) or not token.get("access_token"):
        raise ProviderError(f"The provider's answer to the {what} has no access_token.", error="invalid_response")
    return dict(token)


def exchange_code(ctx: JobContext, connector: Connector, impl: Implementation, code: str,
                  code_verifier: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"grant_type": "authorization_code", "code": code, "redirect_uri": ctx.redirect_uri}
    if code_verifier:
        params["code_verifier"] = code_verifier
    return _request_token(ctx, connector, impl, "code exchange", **params)


def client_credentials_token(ctx: JobContext, connector: Connector, impl: Implementation) -> dict[str, Any]:
    """The first token of a client-credentials connector: for the client's credentials, or, when the
    implementation names a ``refresh_token_variable``, for the refresh token the user gave (kept
    in the sealed tokens unless the provider rotates it)."""
    if impl.refresh_token_variable:
        given = plain_values(connector.variables, ctx.box).get(impl.refresh_token_variable)
        if not given:
            raise JobFailed(ErrorCode.CREDENTIALS_REJECTED, f"The {impl.refresh_token_variable} variable has no "
                            "value.", "variables")
        return {"refresh_token": given, **refresh_token(ctx, connector, impl, given)}
    return _request_token(ctx, connector, impl, "client credentials token request", grant_type="client_credentials")


def refresh_token(ctx: JobContext, connector: Connector, impl: Implementation, refresh: str) -> dict[str, Any]:
    return _request_token(ctx, connector, impl, "token refresh", grant_type="refresh_token", refresh_token=refresh)


def with_tokens(ctx: JobContext, connector: Connector, impl: Implementation, token: dict[str, Any],
                previous: dict[str, Any] | None = None) -> Connector:
    """The connector with these tokens sealed on it, ``authorised``, its version bumped."""
    kept = {k: token[k] for k in TOKEN_FIELDS if token.get(k) is not None}
    if previous and "refresh_token" not in kept and previous.get("refresh_token"):
        kept["refresh_token"] = previous["refresh_token"]  # providers that don't rotate keep the old one
    extra = {k: v for k, v in token.items() if k not in TOKEN_FIELDS and k not in ("expires_in",)
             and isinstance(v, (str, int, float, bool))}
    expires_at = kept.get("expires_at")
    scope = kept.get("scope")
    now = ctx.now()
    return connector.model_copy(update={
        "status": "authorised",
        "credentials": Credentials(
            token_type=str(kept.get("token_type") or "bearer").lower(),
            scopes=scope.split() if isinstance(scope, str) else list(impl.scopes),
            expires_at=datetime.fromtimestamp(int(expires_at), UTC) if expires_at else None),
        "credentials_sealed": ctx.box.seal_json({**kept, "extra": extra}),
        "credential_version": connector.credential_version + 1,
        "authorised_at": now,
        "updated_at": now,
    })


def sealed_tokens(ctx: JobContext, connector: Connector) -> dict[str, Any]:
    return ctx.box.open_json(connector.credentials_sealed) if connector.credentials_sealed else {}


def expires_within(connector: Connector, seconds: float) -> bool:
    expires = connector.credentials.expires_at
    return expires is not None and expires.timestamp() - time.time() <= seconds
