"""JWTs that get OAuth 2 tokens (RFC 7523): ``private_key_jwt`` client authentication (§2.2)
and the JWT bearer grant of service accounts (§2.1, ``oauth2_jwt_bearer``).

``private_key_jwt``: the assertion is signed with the private key of the connector's
certificate, opened here, in the worker, for the one request (the API never opens it); its
``iss`` and ``sub`` are the client id, ``aud`` the token URL, a fresh ``jti``, and it lives at
most ``ASSERTION_SECONDS``. The JWT bearer grant signs with the key in the ``service_account``
variable: ``iss`` the client email, ``sub`` the ``subject`` variable when given, ``scope`` the
implementation's scopes; a new assertion for every token (there is no refresh token).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx2
from authlib.common.security import generate_token
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from tasks.errors import ErrorCode, JobFailed, ProviderError
from tasks.flows import lookups
from tasks.jobs.context import JobContext
from tasks.model.catalog import Implementation
from tasks.model.records import Connector
from tasks.model.service_account import VARIABLE, parse_service_account
from tasks.provider.connection import http_options
from tasks.provider.guard import render_url
from tasks.provider.tls import private_key_of
from tasks.provider.transport import provider_errors, raise_for_provider_status
from tasks.validation.variables import plain_values

ASSERTION_SECONDS = 300         # RFC 7523 §3: short-lived; the contract's "at most 5 minutes"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _assertion(key: RSAKey | ECKey, alg: str, kid: str | None, claims: dict[str, Any]) -> str:
    now = int(time.time())
    header = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid else {})}
    payload = {**claims, "iat": now, "exp": now + ASSERTION_SECONDS, "jti": generate_token(32)}
    return str(jwt.encode(header, payload, key, algorithms=[alg]))


class CertificateKeyJWT(PrivateKeyJWT):
    """Authlib's ``private_key_jwt`` client authentication, signing with a key it is given (RSA for
    RS256/PS256, EC P-256 for ES256) rather than reading the client secret as one."""

    def __init__(self, key: RSAKey | ECKey, alg: str, kid: str | None) -> None:
        super().__init__(alg=alg)
        self.key, self.kid = key, kid

    def sign(self, auth: Any, token_endpoint: str) -> str:
        return _assertion(self.key, self.alg, self.kid, {"iss": auth.client_id, "sub": auth.client_id,
                                                          "aud": token_endpoint})


def certificate_jwt_auth(ctx: JobContext, connector: Connector, impl: Implementation,
                         values: dict[str, str]) -> CertificateKeyJWT:
    if not connector.certificate_id:
        raise JobFailed(ErrorCode.CERTIFICATE_NOT_FOUND,
                        "This implementation authenticates with a JWT signed by a certificate's key "
                        "(private_key_jwt); give the connector a certificate_id.", "certificate_id")
    certificate = lookups.certificate(ctx, connector.tenant, connector.certificate_id)
    try:
        opened = private_key_of(certificate, ctx.box)
    except (ValueError, TypeError):
        raise JobFailed(ErrorCode.CERTIFICATE_INVALID, "The stored private key no longer opens; upload the "
                        "certificate again.", "certificate_id") from None
    pem = opened.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    key: RSAKey | ECKey
    if impl.jwt_alg == "ES256":
        if not isinstance(opened, ec.EllipticCurvePrivateKey) or opened.curve.name != "secp256r1":
            raise JobFailed(ErrorCode.CERTIFICATE_INVALID, "jwt_alg ES256 needs a certificate with an EC P-256 key.",
                            "certificate_id")
        key = ECKey.import_key(pem)
    else:
        if not isinstance(opened, rsa.RSAPrivateKey):
            raise JobFailed(ErrorCode.CERTIFICATE_INVALID, f"jwt_alg {impl.jwt_alg} needs a certificate with an "
                            "RSA key.", "certificate_id")
        key = RSAKey.import_key(pem)
    kid = values.get(impl.jwt_kid_variable) if impl.jwt_kid_variable else None
    return CertificateKeyJWT(key, impl.jwt_alg, kid or certificate.fingerprint_sha256)


def _token_of(response: httpx2.Response, what: str) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code in (400, 401) and isinstance(answer, dict) and answer.get("error"):
        raise ProviderError(f"The provider refused the {what}: {answer['error']}.", error=str(answer["error"]),
                            description=str(answer.get("error_description") or "") or None)
    raise_for_provider_status(response, what)
    if not isinstance(answer, dict) or not answer.get("access_token"):
        raise ProviderError(f"The provider's answer to the {what} has no access_token.", error="invalid_response")
    token = dict(answer)
    try:
        lifetime: int | None = int(str(token["expires_in"]))  # some providers send it as a string
    except (KeyError, ValueError):
        lifetime = None
    if lifetime is not None:
        token["expires_at"] = int(datetime.now(UTC).timestamp()) + lifetime
    return token


def jwt_bearer_token(ctx: JobContext, connector: Connector, impl: Implementation) -> dict[str, Any]:
    """An access token for a new assertion signed with the service account's key (RFC 7523 §2.1)."""
    values = plain_values(connector.variables, ctx.box)
    try:
        account = parse_service_account(values.get(VARIABLE, ""))
    except ValueError as exc:
        raise JobFailed(ErrorCode.CREDENTIALS_REJECTED, str(exc), "variables") from None
    url = render_url(impl.token_url or "", values)
    claims: dict[str, Any] = {"iss": account.client_email, "aud": url}
    if impl.scopes:
        claims["scope"] = " ".join(impl.scopes)
    if values.get("subject"):
        claims["sub"] = values["subject"]
    assertion = _assertion(RSAKey.import_key(account.private_key_pem), "RS256", account.private_key_id, claims)
    what = "JWT bearer token request"
    with provider_errors(what), httpx2.Client(**http_options(ctx, connector)) as client:
        response = client.post(url, data={"grant_type": JWT_BEARER, "assertion": assertion})
    return _token_of(response, what)
