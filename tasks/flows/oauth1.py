"""OAuth 1.0a (RFC 5849) with Authlib: signing, the three-legged flow's two token requests,
and the signed check of pre-issued tokens (``oauth1_token``, NetSuite token-based auth).

Authlib signs (``authlib.oauth1``: nonce, timestamp, base string, the Authorization header
with its realm); HMAC-SHA256 is added here (RFC 5849 names only HMAC-SHA1; NetSuite requires
SHA-256), computed exactly as HMAC-SHA1 is, with SHA-256. What a connector stores for either
type: ``consumer_key``, ``consumer_secret``, ``token``, ``token_secret`` and the rendered
``realm``, sealed, so that every later request (the proxy, the platform's own) signs alike.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import parse_qsl

import httpx2
from authlib.integrations.httpx_client import OAuth1Auth
from authlib.oauth1 import ClientAuth
from authlib.oauth1.rfc5849.errors import OAuth1Error
from authlib.oauth1.rfc5849.signature import generate_signature_base_string
from authlib.oauth1.rfc5849.util import escape

from tasks.errors import ErrorCode, JobFailed, ProviderError
from tasks.flows.outcome import Step
from tasks.jobs.context import JobContext
from tasks.model.catalog import Implementation
from tasks.model.records import Connector, Credentials
from tasks.provider.connection import http_options
from tasks.provider.guard import render_realm, render_url
from tasks.provider.transport import provider_errors, raise_for_provider_status
from tasks.validation.variables import plain_values

TOKEN_TYPE = "oauth1"


def sign_hmac_sha256(client: Any, request: Any) -> str:
    """HMAC-SHA256 over the RFC 5849 §3.4.1 base string, keyed as §3.4.2 keys HMAC-SHA1."""
    key = escape(client.client_secret or "") + "&" + escape(client.token_secret or "")
    base_string = generate_signature_base_string(request)
    return base64.b64encode(hmac.new(key.encode(), base_string.encode(), hashlib.sha256).digest()).decode()


SIGNATURE_METHODS = {**ClientAuth.SIGNATURE_METHODS, "HMAC-SHA256": sign_hmac_sha256}


class RequestSigner(ClientAuth):
    """Signs one request's method, URL and form body (``prepare``): the proxy's signer."""

    SIGNATURE_METHODS = SIGNATURE_METHODS


class SignedAuth(OAuth1Auth):
    """The same signer as an httpx2 ``Auth``: authq's own requests."""

    SIGNATURE_METHODS = SIGNATURE_METHODS


def _need(values: dict[str, str], key: str) -> str:
    value = values.get(key)
    if not value:
        raise JobFailed(ErrorCode.CREDENTIALS_REJECTED, f"The {key} variable has no value.", "variables")
    return value


def _post_for_token(ctx: JobContext, connector: Connector, url: str, auth: SignedAuth, what: str) -> dict[str, str]:
    """POST a signed token request; the provider's form-encoded answer (RFC 5849 §2.1, §2.3)."""
    try:
        with provider_errors(what), httpx2.Client(**http_options(ctx, connector)) as client:
            response = client.post(url, auth=auth)
            text = response.text
    except OAuth1Error as exc:  # Authlib refuses to sign for plain HTTP (RFC 5849 §3.4: TLS)
        raise JobFailed(ErrorCode.URL_NOT_ALLOWED, f"OAuth 1.0a requests must use https ({exc.description}).",
                        "variables") from None
    if response.status_code in (400, 401):
        raise ProviderError(f"The provider refused the {what} (HTTP {response.status_code}).",
                            error=f"http_{response.status_code}")
    raise_for_provider_status(response, what)
    answer = dict(parse_qsl(text, keep_blank_values=True))
    if not answer.get("oauth_token") or "oauth_token_secret" not in answer:
        raise ProviderError(f"The provider's answer to the {what} has no oauth_token and oauth_token_secret.",
                            error="invalid_response")
    return answer


def fetch_request_token(ctx: JobContext, connector: Connector, impl: Implementation) -> tuple[str, str]:
    """Temporary credentials (RFC 5849 §2.1), with ``oauth_callback`` = authq's redirect URI."""
    values = plain_values(connector.variables, ctx.box)
    auth = SignedAuth(_need(values, "consumer_key"), _need(values, "consumer_secret"),
                      redirect_uri=ctx.redirect_uri, signature_method=impl.oauth1_signature_method,
                      realm=render_realm(impl.realm, values) if impl.realm else None)
    try:
        answer = _post_for_token(ctx, connector, render_url(impl.request_token_url or "", values), auth,
                                 "request token request")
    except ProviderError as exc:
        if (exc.provider or {}).get("error") == "http_401":  # the consumer key or secret is wrong
            raise JobFailed(ErrorCode.CREDENTIALS_REJECTED, "The provider rejected the consumer key and secret "
                            "(HTTP 401).", "variables") from None
        raise
    return answer["oauth_token"], answer["oauth_token_secret"]


def authorize_redirect(impl: Implementation, connector: Connector, ctx: JobContext, request_token: str) -> str:
    url = httpx2.URL(render_url(impl.authorize_url or "", plain_values(connector.variables, ctx.box)))
    return str(url.copy_merge_params({"oauth_token": request_token}))


def fetch_access_token(ctx: JobContext, connector: Connector, impl: Implementation, request_token: str,
                       request_secret: str, verifier: str) -> dict[str, str]:
    """Token credentials (RFC 5849 §2.3) for the authorised request token and its verifier."""
    values = plain_values(connector.variables, ctx.box)
    auth = SignedAuth(_need(values, "consumer_key"), _need(values, "consumer_secret"), token=request_token,
                      token_secret=request_secret, verifier=verifier, signature_method=impl.oauth1_signature_method,
                      realm=render_realm(impl.realm, values) if impl.realm else None)
    return _post_for_token(ctx, connector, render_url(impl.access_token_url or "", values), auth,
                           "access token request")


def with_oauth1_tokens(ctx: JobContext, connector: Connector, impl: Implementation, token: str,
                       token_secret: str) -> Connector:
    """The connector ``authorised`` with what every later signature needs, sealed."""
    values = plain_values(connector.variables, ctx.box)
    sealed = {"consumer_key": _need(values, "consumer_key"), "consumer_secret": _need(values, "consumer_secret"),
              "token": token, "token_secret": token_secret,
              "realm": render_realm(impl.realm, values) if impl.realm else None}
    now = ctx.now()
    return connector.model_copy(update={
        "status": "authorised",
        "credentials": Credentials(token_type=TOKEN_TYPE, scopes=list(impl.scopes), expires_at=None),
        "credentials_sealed": ctx.box.seal_json(sealed),
        "credential_version": connector.credential_version + 1,
        "authorised_at": now,
        "updated_at": now,
    })


def complete_oauth1_token(ctx: JobContext, connector: Connector, impl: Implementation, step: Step) -> Connector:
    """``oauth1_token``: the four credentials the user gave, the ``check`` signed with them first."""
    values = plain_values(connector.variables, ctx.box)
    consumer_key, consumer_secret = _need(values, "consumer_key"), _need(values, "consumer_secret")
    token, token_secret = _need(values, "token_id"), _need(values, "token_secret")
    if impl.check is not None:
        step("credential_check")
        auth = SignedAuth(consumer_key, consumer_secret, token=token, token_secret=token_secret,
                          signature_method=impl.oauth1_signature_method,
                          realm=render_realm(impl.realm, values) if impl.realm else None)
        try:
            ctx.outbound.check(impl.check.method, render_url(impl.check.url, values), auth=auth,
                               options=http_options(ctx, connector))
        except OAuth1Error as exc:
            raise JobFailed(ErrorCode.URL_NOT_ALLOWED, f"OAuth 1.0a requests must use https ({exc.description}).",
                            "variables") from None
    return with_oauth1_tokens(ctx, connector, impl, token, token_secret)


def authorization_header(values: dict[str, str], method: str, url: str, content_type: str | None,
                         body: bytes | None) -> str:
    """The ``Authorization`` header one request needs (the proxy's): signed over its method, URL and,
    when form-encoded, its body (RFC 5849 §3.4.1.3). ``values`` are what the credentials
    endpoint hands out for the connector (``credentials_for_use``)."""
    signer = RequestSigner(values["consumer_key"], values["consumer_secret"], token=values["token"],
                           token_secret=values["token_secret"], signature_method=values["signature_method"],
                           realm=values.get("realm") or None)
    headers = {"Content-Type": content_type} if content_type else {}
    form = body if content_type and content_type.startswith("application/x-www-form-urlencoded") else b""
    _, signed, _ = signer.prepare(method, url, headers, form or b"")
    return str(signed["Authorization"])
