"""A real OAuth 2 token endpoint on loopback for RFC 7523, built on Authlib's server side.

``POST /token`` serves:
- ``client_credentials`` for clients that authenticate with ``private_key_jwt`` (RFC 7523
  §2.2, Authlib's ``JWTBearerClientAssertion``): the assertion's signature is verified with
  the public key registered for the client (a certificate's), and its ``iss``/``sub``, ``aud``
  (the token URL), ``exp`` and ``jti`` (never twice) are checked;
- the JWT bearer grant (RFC 7523 §2.1, Authlib's ``JWTBearerGrant``) for service accounts: the
  assertion's ``iss`` names the account, whose public key verifies it.

Every assertion that arrived is recorded, decoded (header and claims), with the answer given::

    server = JwtServer.start()
    server.add_client("cid", certificate_public_pem)
    server.add_service_account("sa@project.iam.gserviceaccount.com", public_pem)
    server.token_url        # http://127.0.0.1:PORT/token
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError, grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion, JWTBearerGrant
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, Response, request
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from tests.support.leakcheck import remember_secret
from tests.support.wsgi_thread import ServedWsgi

PRIVATE_KEY_JWT = "private_key_jwt"


@dataclass
class JwtClient(ClientMixin):  # type: ignore[misc]
    client_id: str
    public_pem: str
    grant_type: str
    scope: str = ""

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or self.scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == PRIVATE_KEY_JWT

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == self.grant_type


@dataclass
class Assertion:
    grant_type: str
    header: dict[str, Any]
    claims: dict[str, Any]
    status: int = 0
    answer: dict[str, Any] = field(default_factory=dict)


def _public_key(pem: str) -> RSAKey | ECKey:
    key = serialization.load_pem_public_key(pem.encode())
    return ECKey.import_key(pem) if isinstance(key, ec.EllipticCurvePublicKey) else RSAKey.import_key(pem)


class JwtServer:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clients: dict[str, JwtClient] = {}
        self.jtis: set[str] = set()
        self.assertions: list[Assertion] = []
        self.url = ""
        self.app = self._create_app()

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @classmethod
    def start(cls) -> JwtServer:
        server = cls()
        server._served = ServedWsgi(server.app, "jwt-server")
        server.url = server._served.url
        return server

    def stop(self) -> None:
        self._served.stop()

    def add_client(self, client_id: str, public_pem: str, scope: str = "") -> None:
        """A client authenticating by private_key_jwt with the key whose public half is given."""
        with self.lock:
            self.clients[client_id] = JwtClient(client_id, public_pem, "client_credentials", scope)

    def add_service_account(self, email: str, public_pem: str) -> None:
        with self.lock:
            self.clients[email] = JwtClient(email, public_pem, JWTBearerGrant.GRANT_TYPE)

    def fresh_jti(self, jti: str) -> bool:
        with self.lock:
            if jti in self.jtis:
                return False
            self.jtis.add(jti)
            return True

    def _create_app(self) -> Flask:
        app = Flask(f"jwt_server_{id(self)}")
        owner = self

        class ClientAssertion(JWTBearerClientAssertion):  # type: ignore[misc]
            CLIENT_AUTH_METHOD = PRIVATE_KEY_JWT

            def get_audiences(self) -> list[str]:
                return [owner.token_url]

            def validate_jti(self, claims: Any, jti: str) -> bool:
                return owner.fresh_jti(jti)

            def resolve_client_public_key(self, client: JwtClient) -> Any:
                return _public_key(client.public_pem)

            def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
                # joserfc accepts only its recommended algorithms unless told: PS256 is named here.
                try:
                    token = jwt.decode(assertion, resolve_key, algorithms=["RS256", "PS256", "ES256"])
                except JoseError as exc:
                    raise InvalidClientError(description=exc.description) from exc
                self.verify_claims(token.claims)
                return token.claims

        class ClientCredentials(grants.ClientCredentialsGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = [PRIVATE_KEY_JWT]

        class ServiceAccountGrant(JWTBearerGrant):  # type: ignore[misc]
            def resolve_issuer_client(self, issuer: str) -> JwtClient | None:
                client = owner.clients.get(issuer)
                return client if client is not None and client.grant_type == self.GRANT_TYPE else None

            def resolve_client_public_key(self, client: JwtClient) -> Any:
                return _public_key(client.public_pem)

            def authenticate_user(self, subject: str) -> str:
                return subject

            def has_granted_permission(self, client: JwtClient, user: str) -> bool:
                return user.endswith("@example.com")

            def get_audiences(self) -> list[str]:
                return [owner.token_url]

        def query_client(client_id: str) -> JwtClient | None:
            return owner.clients.get(client_id)

        def save_token(token: dict[str, Any], oauth_request: Any) -> None:
            remember_secret(token.get("access_token"))

        authz = AuthorizationServer(app, query_client=query_client, save_token=save_token)
        authz.register_token_generator("default", BearerTokenGenerator(
            access_token_generator=lambda **_: "jat_" + secrets.token_urlsafe(24),
            expires_generator=lambda client, grant_type: 3600))
        authz.register_client_auth_method(PRIVATE_KEY_JWT, ClientAssertion())
        authz.register_grant(ClientCredentials)
        authz.register_grant(ServiceAccountGrant)

        @app.post("/token")
        def token() -> Response:
            raw = request.form.get("client_assertion") or request.form.get("assertion")
            record = None
            if raw:
                try:
                    compact = jws.extract_compact(raw.encode())
                    record = Assertion(request.form.get("grant_type", ""), dict(compact.headers()),
                                       json.loads(compact.payload))
                except Exception:  # noqa: BLE001 (a malformed assertion is recorded as nothing)
                    record = None
            answer: Response = authz.create_token_response()
            if record is not None:
                record.status, record.answer = answer.status_code, json.loads(answer.get_data(as_text=True))
                with owner.lock:
                    owner.assertions.append(record)
            return answer

        return app
