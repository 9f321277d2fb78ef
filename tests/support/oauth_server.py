"""A real OAuth 2 authorization server on loopback for the test session.

Built on Authlib's Flask integration (``authlib.integrations.flask_oauth2``) with the stock
RFC 6749 grants, Authlib's PKCE extension (RFC 7636) and the RFC 9207 ``iss`` parameter; the
models are small in-memory dataclasses behind one lock. Three werkzeug listeners serve the
same Flask app::

    server = OAuthServer.start(ca=trustme_ca)
    server.http_url    # http://127.0.0.1:PORT    plain HTTP
    server.https_url   # https://127.0.0.1:PORT   TLS, server certificate from ``ca``
    server.mtls_url    # https://127.0.0.1:PORT   TLS that REQUIRES a client certificate
                       #                          signed by ``client_ca`` (default: ``ca``)
    server.add_client("cid", "secret", redirect_uris=[...], auth_method="client_secret_basic")
    ...
    server.stop()

``/authorize`` auto-approves as the logged-in end user (``server.user_sub``). ``/token``
serves authorization_code (+PKCE), client_credentials and refresh_token with rotation and
reuse detection. ``/api/me`` is a Bearer-protected resource. Every request is recorded in
``server.requests``; ``server.script(...)`` / ``server.script_token(...)`` queue canned
answers; ``server.token_delay`` slows ``/token`` so concurrency shows in ``max_in_flight``.

``tls_client_auth`` (RFC 8705): werkzeug's request handler puts the verified peer
certificate (PEM) in ``environ["SSL_CLIENT_CERT"]``; the registered auth method parses it
and compares its subject DN with the client's ``tls_subject`` (order-insensitive RFC 4514
comparison; ``tls_subject=None`` accepts any certificate the listener verified). Only the
mTLS listener asks for client certificates, so the method can only succeed there.

``private_key_jwt`` (RFC 7523 §2.2): Authlib's ``JWTBearerClientAssertion`` verifies the
assertion with the public key the client was added with (``jwt_public_pem``), its ``aud``
against this server's token URLs and its ``jti`` against every one seen before.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import ssl
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import trustme
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    AuthorizationCodeMixin,
    ClientMixin,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    TokenMixin,
    UnsupportedResponseTypeError,
    grants,
)
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9207 import IssuerParameter
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, Response, g, jsonify, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.support.leakcheck import remember_secret

__all__ = [
    "AuthCode",
    "Client",
    "OAuthServer",
    "RequestRecord",
    "Token",
    "User",
    "cert_subject",
    "start_oauth_server",
]

ALL_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "tls_client_auth", "private_key_jwt", "none")
SECRET_FIELDS = {"client_secret"}
ASSERTION_ALGORITHMS = ["RS256", "PS256", "ES256"]


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class User:
    sub: str


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str | None
    redirect_uris: list[str]
    scope: str
    auth_methods: tuple[str, ...]
    grant_types: tuple[str, ...]
    tls_subject: str | None = None
    require_pkce: bool | None = None  # None: required for public clients, else server-wide
    jwt_public_pem: str | None = None  # private_key_jwt: the public key that verifies its assertions

    @property
    def auth_method(self) -> str:
        return self.auth_methods[0]

    @property
    def is_public(self) -> bool:
        return self.auth_methods == ("none",)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        allowed = scope_to_list(self.scope) or []
        if not scope:
            return list_to_scope(allowed)
        requested = scope_to_list(scope)
        if not set(requested) <= set(allowed):
            return None  # -> invalid_scope
        return list_to_scope(requested)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and secrets.compare_digest(
            self.client_secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            return method in self.auth_methods
        return True

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class AuthCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str | None
    scope: str
    user: User
    grant_id: str
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    issued_at: float = field(default_factory=time.time)
    used: bool = False

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Token(TokenMixin):
    access_token: str
    client_id: str
    scope: str
    grant_type: str
    grant_id: str  # every token descended from one authorization shares it
    user: User | None = None
    refresh_token: str | None = None
    expires_in: int | None = None
    issued_at: float = field(default_factory=time.time)
    access_revoked: bool = False
    refresh_revoked: bool = False
    force_expired: bool = False

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in or 0

    def is_expired(self) -> bool:
        if self.force_expired:
            return True
        return self.expires_in is not None and time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.access_revoked

    def get_user(self) -> User | None:
        return self.user

    def get_client(self) -> str:  # type: ignore[override]
        return self.client_id


@dataclass
class RequestRecord:
    method: str
    path: str
    listener: str                     # "http" | "https" | "mtls"
    query: dict[str, str]
    form: dict[str, str]              # client_secret redacted
    headers: dict[str, str]           # Authorization value redacted to its scheme
    client_id: str | None
    client_cert_subject: str | None   # RFC 4514 subject of the verified peer cert, if any
    start: float                      # time.monotonic()
    end: float | None = None
    status: int | None = None


# --------------------------------------------------------------------------- helpers


def cert_subject(cert: trustme.LeafCert | x509.Certificate | bytes | str) -> str:
    """The RFC 4514 subject DN of a certificate (trustme LeafCert, cryptography cert or PEM),
    in the form ``add_client(tls_subject=...)`` accepts."""
    if isinstance(cert, trustme.LeafCert):
        cert = cert.cert_chain_pems[0].bytes()
    if isinstance(cert, str):
        cert = cert.encode()
    if isinstance(cert, bytes):
        cert = x509.load_pem_x509_certificate(cert)
    return cert.subject.rfc4514_string()


def _dn_key(dn: str | x509.Name) -> list[tuple[str, str]]:
    name = x509.Name.from_rfc4514_string(dn) if isinstance(dn, str) else dn
    return sorted((a.oid.dotted_string, str(a.value)) for a in name)


def _safe_description(text: str) -> str:
    # RFC 6749 error_description: %x20-21 / %x23-5B / %x5D-7E only.
    return "".join(c for c in text if 0x20 <= ord(c) <= 0x7E and c not in '"\\')


def _basic_client_id(header: str) -> str | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        user = base64.b64decode(header[6:]).decode().partition(":")[0]
    except Exception:
        return None
    return unquote(user)


class _Handler(WSGIRequestHandler):
    """werkzeug's handler, with the TLS handshake moved off the accept loop and quiet logs.

    The listening SSLSocket is switched to ``do_handshake_on_connect=False`` so a slow or
    failing client (e.g. no certificate on the mTLS listener) only costs its own thread.
    """

    handshake_timeout = 10.0

    def setup(self) -> None:
        self._tls_error: BaseException | None = None
        conn = self.request
        if isinstance(conn, ssl.SSLSocket):
            conn.settimeout(self.handshake_timeout)
            try:
                conn.do_handshake()
            except (OSError, ValueError) as error:
                self._tls_error = error
                owner = getattr(self.server, "oauth_owner", None)
                if owner is not None:
                    owner._tls_failure(self.server.listener_name, error)
            conn.settimeout(None)
        super().setup()

    def handle(self) -> None:
        if self._tls_error is None:
            super().handle()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()

    def make_environ(self):  # type: ignore[no-untyped-def]
        environ = super().make_environ()
        environ["authq.listener"] = getattr(self.server, "listener_name", "?")
        return environ

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


# --------------------------------------------------------------------------- authlib glue


class _AuthzServer(AuthorizationServer):
    owner: OAuthServer


class _AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(ALL_AUTH_METHODS)

    @property
    def owner(self) -> OAuthServer:
        return self.server.owner

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        item = AuthCode(
            code=code, client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri, scope=request.scope or "",
            user=request.user, grant_id=uuid.uuid4().hex,
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"))
        remember_secret(code)  # the session's leak check looks for it in Redis and the logs
        with self.owner._lock:
            self.owner._codes[code] = item

    def query_authorization_code(self, code: str, client: Client) -> AuthCode | None:
        owner = self.owner
        with owner._lock:
            item = owner._codes.get(code)
            if item is None or item.client_id != client.client_id:
                return None
            if item.used:
                owner._revoke_grant_locked(item.grant_id)
                owner.code_reuse_detected += 1
                raise InvalidGrantError("Authorization code was already used; its tokens are revoked.")
            if time.time() > item.issued_at + owner.code_ttl:
                return None
            return item

    def delete_authorization_code(self, authorization_code: AuthCode) -> None:
        owner = self.owner
        with owner._lock:  # the claim is atomic: a concurrent second exchange loses here
            if authorization_code.used:
                owner._revoke_grant_locked(authorization_code.grant_id)
                owner.code_reuse_detected += 1
                raise InvalidGrantError("Authorization code was already used; its tokens are revoked.")
            authorization_code.used = True

    def authenticate_user(self, authorization_code: AuthCode) -> User:
        return authorization_code.user

    def create_authorization_response(self, redirect_uri: str, grant_user: Any) -> Any:
        if not grant_user:
            description = getattr(self.request, "deny_description", None)
            raise AccessDeniedError(description=description, redirect_uri=redirect_uri)
        return super().create_authorization_response(redirect_uri, grant_user)


class _ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "tls_client_auth"]


class _RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(ALL_AUTH_METHODS)
    INCLUDE_NEW_REFRESH_TOKEN = True

    @property
    def owner(self) -> OAuthServer:
        return self.server.owner

    def issue_token(self, user: Any, refresh_token: Token) -> dict[str, Any]:
        scope = self.request.payload.scope or refresh_token.get_scope()
        return self.generate_token(user=user, scope=scope,
                                   include_refresh_token=self.owner.rotate_refresh_tokens)

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        owner = self.owner
        client = self.request.client
        with owner._lock:
            token = owner._by_refresh.get(refresh_token)
            if token is None or (client is not None and token.client_id != client.client_id):
                return None
            if token.refresh_revoked:
                owner._revoke_grant_locked(token.grant_id)
                owner.refresh_reuse_detected += 1
                raise InvalidGrantError("Refresh token was already used; the grant is revoked.")
            if owner.refresh_token_ttl is not None and time.time() > token.issued_at + owner.refresh_token_ttl:
                return None
            return token

    def authenticate_user(self, refresh_token: Token) -> User | bool:
        # client_credentials tokens have no user; authlib wants something truthy.
        return refresh_token.user or True

    def revoke_old_credential(self, refresh_token: Token) -> None:
        owner = self.owner
        with owner._lock:
            if refresh_token.refresh_revoked:
                # A concurrent refresh with the same token won: this is reuse. The token
                # just saved for this request shares the grant id, so it is revoked too.
                owner._revoke_grant_locked(refresh_token.grant_id)
                owner.refresh_reuse_detected += 1
                raise InvalidGrantError("Refresh token was already used; the grant is revoked.")
            if owner.rotate_refresh_tokens:
                refresh_token.refresh_revoked = True
            if owner.revoke_access_on_refresh:
                refresh_token.access_revoked = True


class _PKCE(CodeChallenge):
    """Authlib's CodeChallenge with S256-only (by default) and per-client/global "required"."""

    def __init__(self, owner: OAuthServer) -> None:
        super().__init__(required=True)
        self.owner = owner

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        if not challenge and not method:
            if self.owner._pkce_required(grant.request.client):
                raise InvalidRequestError("PKCE is required: missing 'code_challenge'.")
            return
        super().validate_code_challenge(grant, redirect_uri)
        if (method or self.DEFAULT_CODE_CHALLENGE_METHOD) not in self.owner.pkce_methods:
            raise InvalidRequestError(
                f"Unsupported 'code_challenge_method'; supported: {' '.join(self.owner.pkce_methods)}.")


class _Issuer(IssuerParameter):
    def __init__(self, owner: OAuthServer) -> None:
        self.owner = owner

    def get_issuer(self) -> str | None:
        return self.owner.issuer_for_request()


class _BearerValidator(BearerTokenValidator):
    def __init__(self, owner: OAuthServer) -> None:
        super().__init__()
        self.owner = owner

    def authenticate_token(self, token_string: str) -> Token | None:
        with self.owner._lock:
            return self.owner._by_access.get(token_string)


def _authenticate_tls_client(query_client: Any, oauth_request: Any) -> Client | None:
    """RFC 8705 §2.1 PKI method: client_id in the body, identity proven by the TLS client
    certificate the mTLS listener verified against the client CA."""
    data = oauth_request.payload.data
    client_id = data.get("client_id")
    if not client_id or data.get("client_secret"):
        return None
    pem = request.environ.get("SSL_CLIENT_CERT")
    if not pem:
        return None
    client = query_client(client_id)
    if client is None:
        raise InvalidClientError(description="The client does not exist on this server.")
    if "tls_client_auth" not in client.auth_methods:
        return None
    if client.tls_subject is not None:
        subject = x509.load_pem_x509_certificate(pem.encode()).subject
        if _dn_key(subject) != _dn_key(client.tls_subject):
            return None
    return client


class _PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    """RFC 7523 §2.2 (Authlib's assertion checks): signed by the key whose public half the client
    registered, ``aud`` this server's token URL on any listener, a ``jti`` never seen before."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, owner: OAuthServer) -> None:
        super().__init__()
        self.owner = owner

    def get_audiences(self) -> list[str]:
        return [f"{url}/token" for url in (self.owner.http_url, self.owner.https_url, self.owner.mtls_url) if url]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        with self.owner._lock:
            if jti in self.owner._jtis:
                return False
            self.owner._jtis.add(jti)
            return True

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        # joserfc accepts only its recommended algorithms unless told: PS256 is named here.
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except JoseError as exc:
            raise InvalidClientError(description=exc.description) from exc
        self.verify_claims(token.claims)
        return token.claims

    def resolve_client_public_key(self, client: Client) -> Any:
        pem = client.jwt_public_pem or ""
        key = serialization.load_pem_public_key(pem.encode())
        return ECKey.import_key(pem) if isinstance(key, ec.EllipticCurvePublicKey) else RSAKey.import_key(pem)


# --------------------------------------------------------------------------- the server


class OAuthServer:
    """See the module docstring. Create with :meth:`start`; all settings are plain
    attributes that tests may change at any time (``reset()`` puts them back)."""

    # defaults restored by reset()
    _DEFAULTS: dict[str, Any] = {
        "issuer": None,                   # None: the listener's base URL, e.g. https://127.0.0.1:PORT
        "expires_in": 3600,               # int seconds; None omits expires_in
        "expires_in_as_string": False,    # True: "3600" like some providers
        "token_type": "Bearer",
        "token_extra": {},                # extra fields merged into every token response
        "require_pkce": False,            # global; Client.require_pkce overrides, public clients always
        "pkce_methods": ("S256",),        # add "plain" to accept it
        "rotate_refresh_tokens": True,    # False: no new refresh token, old one stays valid
        "revoke_access_on_refresh": False,
        "refresh_token_ttl": None,        # seconds, None = never expires
        "code_ttl": 600.0,
        "user_sub": "user-1",             # the end user who "logs in" and consents
        "deny_next": False,               # True or a description: next /authorize -> access_denied
        "token_delay": 0.0,               # seconds slept at the start of every POST /token
    }

    def __init__(self, ca: trustme.CA | None = None,
                 client_ca: trustme.CA | Sequence[trustme.CA] | None = None,
                 host: str = "127.0.0.1") -> None:
        self.ca = ca or trustme.CA()
        cas = client_ca if client_ca is not None else self.ca
        self.client_cas: list[trustme.CA] = [cas] if isinstance(cas, trustme.CA) else list(cas)
        self.host = host
        self._lock = threading.RLock()
        self._clients: dict[str, Client] = {}
        self._codes: dict[str, AuthCode] = {}
        self._tokens: list[Token] = []
        self._by_access: dict[str, Token] = {}
        self._by_refresh: dict[str, Token] = {}
        self._jtis: set[str] = set()
        self._listeners: dict[str, Any] = {}
        self._threads: list[threading.Thread] = []
        self.http_url = self.https_url = self.mtls_url = ""
        self._apply_defaults()
        self._reset_observations()
        self.app = self._create_app()

    # ---------------------------------------------------------------- lifecycle

    @classmethod
    def start(cls, ca: trustme.CA | None = None,
              client_ca: trustme.CA | Sequence[trustme.CA] | None = None,
              host: str = "127.0.0.1", **settings: Any) -> OAuthServer:
        unknown = set(settings) - set(cls._DEFAULTS)
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}")
        server = cls(ca=ca, client_ca=client_ca, host=host)
        server._start_settings = dict(settings)
        server._apply_defaults()
        server._serve()
        return server

    def _serve(self) -> None:
        server_cert = self.ca.issue_cert(self.host, "localhost")

        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_cert.configure_cert(tls)

        mtls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_cert.configure_cert(mtls)
        for ca in self.client_cas:
            ca.configure_trust(mtls)
        mtls.verify_mode = ssl.CERT_REQUIRED

        for name, ctx in (("http", None), ("https", tls), ("mtls", mtls)):
            srv = make_server(self.host, 0, self.app, threaded=True,
                              request_handler=_Handler, ssl_context=ctx)
            srv.listener_name = name
            srv.oauth_owner = self
            if ctx is not None:
                srv.socket.do_handshake_on_connect = False  # handshake in the handler thread
            thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                                      name=f"oauth-{name}", daemon=True)
            thread.start()
            self._listeners[name] = srv
            self._threads.append(thread)
            url = f"{'http' if ctx is None else 'https'}://{self.host}:{srv.port}"
            setattr(self, f"{name}_url", url)

    def stop(self) -> None:
        for srv in self._listeners.values():
            srv.shutdown()
            srv.server_close()
        for thread in self._threads:
            thread.join(5)
        self._listeners.clear()
        self._threads.clear()

    def __enter__(self) -> OAuthServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _apply_defaults(self) -> None:
        """The class defaults, then whatever was passed to ``start(**settings)``."""
        for name, value in {**self._DEFAULTS, **getattr(self, "_start_settings", {})}.items():
            setattr(self, name, dict(value) if isinstance(value, dict) else value)

    def _reset_observations(self) -> None:
        with self._lock:
            self.requests: list[RequestRecord] = []
            self.tls_failures: list[tuple[str, str]] = []
            self._scripts: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
            self.in_flight = 0
            self.max_in_flight = 0
            self._in_flight_by_path: dict[str, int] = defaultdict(int)
            self.max_in_flight_by_path: dict[str, int] = defaultdict(int)
            self.refresh_reuse_detected = 0
            self.code_reuse_detected = 0

    def reset(self, *, tokens: bool = False) -> None:
        """Clear recorded requests, scripts and counters and restore the settings given to
        ``start()`` (else the defaults). Clients stay; ``tokens=True`` also forgets codes and
        tokens."""
        self._apply_defaults()
        self._reset_observations()
        if tokens:
            with self._lock:
                self._codes.clear()
                self._tokens.clear()
                self._by_access.clear()
                self._by_refresh.clear()

    # ---------------------------------------------------------------- clients

    def add_client(self, client_id: str, client_secret: str | None = None, *,
                   redirect_uris: Iterable[str] = (), scope: str = "",
                   auth_method: str | Sequence[str] = "client_secret_basic",
                   tls_subject: str | None = None,
                   grant_types: Iterable[str] | None = None,
                   require_pkce: bool | None = None, jwt_public_pem: str | None = None) -> Client:
        methods = (auth_method,) if isinstance(auth_method, str) else tuple(auth_method)
        unknown = set(methods) - set(ALL_AUTH_METHODS)
        if unknown or not methods:
            raise ValueError(f"unknown auth_method {sorted(unknown)}")
        if any(m in ("client_secret_basic", "client_secret_post") for m in methods) and not client_secret:
            raise ValueError("client_secret_* methods need a client_secret")
        if tls_subject is not None:
            _dn_key(tls_subject)  # fail early on a malformed DN
        if grant_types is None:
            grant_types = ("authorization_code", "refresh_token") if methods == ("none",) else (
                "authorization_code", "refresh_token", "client_credentials")
        client = Client(client_id=client_id, client_secret=client_secret,
                        redirect_uris=list(redirect_uris), scope=scope, auth_methods=methods,
                        grant_types=tuple(grant_types), tls_subject=tls_subject,
                        require_pkce=require_pkce, jwt_public_pem=jwt_public_pem)
        with self._lock:
            self._clients[client_id] = client
        return client

    def remove_client(self, client_id: str) -> None:
        with self._lock:
            self._clients.pop(client_id, None)

    def _query_client(self, client_id: str) -> Client | None:
        with self._lock:
            return self._clients.get(client_id)

    def _pkce_required(self, client: Client) -> bool:
        if client.is_public:
            return True
        if client.require_pkce is not None:
            return client.require_pkce
        return bool(self.require_pkce)

    # ---------------------------------------------------------------- tokens

    def _generate_token(self, grant_type: str, client: Client, user: Any = None, scope: Any = None,
                        expires_in: Any = None, include_refresh_token: bool = True) -> dict[str, Any]:
        token = self._bearer(grant_type, client, user, scope, expires_in, include_refresh_token)
        token["token_type"] = self.token_type
        if "expires_in" in token and self.expires_in_as_string:
            token["expires_in"] = str(token["expires_in"])
        token.update(self.token_extra)
        return token

    def _save_token(self, token: dict[str, Any], oauth_request: Any) -> None:
        if oauth_request.authorization_code is not None:
            grant_id = oauth_request.authorization_code.grant_id
        elif oauth_request.refresh_token is not None:
            grant_id = oauth_request.refresh_token.grant_id
        else:
            grant_id = uuid.uuid4().hex
        user = oauth_request.user if isinstance(oauth_request.user, User) else None
        expires = token.get("expires_in")
        item = Token(access_token=token["access_token"], client_id=oauth_request.client.client_id,
                     scope=token.get("scope", ""), grant_type=oauth_request.payload.grant_type,
                     grant_id=grant_id, user=user, refresh_token=token.get("refresh_token"),
                     expires_in=int(expires) if expires is not None else None)
        remember_secret(item.access_token)
        remember_secret(item.refresh_token)
        with self._lock:
            self._tokens.append(item)
            self._by_access[item.access_token] = item
            if item.refresh_token:
                self._by_refresh[item.refresh_token] = item

    def _revoke_grant_locked(self, grant_id: str) -> None:
        for token in self._tokens:
            if token.grant_id == grant_id:
                token.access_revoked = token.refresh_revoked = True

    def token_info(self, token: str) -> Token | None:
        """The stored record for an access token or refresh token."""
        with self._lock:
            return self._by_access.get(token) or self._by_refresh.get(token)

    def issued_tokens(self, client_id: str | None = None) -> list[Token]:
        """Every token record issued so far (to one client), oldest first."""
        with self._lock:
            return [t for t in self._tokens if client_id is None or t.client_id == client_id]

    def is_active(self, access_token: str) -> bool:
        info = self.token_info(access_token)
        return info is not None and info.access_token == access_token and not (
            info.is_revoked() or info.is_expired())

    def revoke_tokens(self, client_id: str | None = None) -> None:
        """Revoke every access and refresh token (of one client), as a provider would."""
        with self._lock:
            for token in self._tokens:
                if client_id is None or token.client_id == client_id:
                    token.access_revoked = token.refresh_revoked = True

    def expire_access_tokens(self, client_id: str | None = None) -> None:
        """Make every issued access token (of one client) expired; refresh tokens still work."""
        with self._lock:
            for token in self._tokens:
                if client_id is None or token.client_id == client_id:
                    token.force_expired = True

    # ---------------------------------------------------------------- scripting & counting

    def script(self, path: str, *responses: tuple[Any, ...]) -> None:
        """Queue canned answers for ``path``: ``(status, body)`` or ``(status, body, headers)``;
        body None = empty, dict/list = JSON, str/bytes = as is. Used once each, in order."""
        for item in responses:
            if not isinstance(item, tuple) or len(item) not in (2, 3):
                raise ValueError(f"scripted response must be (status, body[, headers]): {item!r}")
        with self._lock:
            self._scripts[path].extend(responses)

    def script_token(self, *responses: tuple[Any, ...]) -> None:
        self.script("/token", *responses)

    def count(self, path: str | None = None, method: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests
                       if (path is None or r.path == path) and (method is None or r.method == method))

    def timestamps(self, path: str) -> list[float]:
        """``time.monotonic()`` start times of the requests to ``path``, in arrival order."""
        with self._lock:
            return sorted(r.start for r in self.requests if r.path == path)

    def records(self, path: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def _tls_failure(self, listener: str, error: BaseException) -> None:
        with self._lock:
            self.tls_failures.append((listener, f"{type(error).__name__}: {error}"))

    def issuer_for_request(self) -> str:
        return self.issuer or request.host_url.rstrip("/")

    # ---------------------------------------------------------------- the Flask app

    def _create_app(self) -> Flask:
        app = Flask(f"oauth_server_{id(self)}")
        app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True

        self._bearer = BearerTokenGenerator(
            access_token_generator=lambda **_: "at_" + secrets.token_urlsafe(24),
            refresh_token_generator=lambda **_: "rt_" + secrets.token_urlsafe(32),
            expires_generator=lambda client, grant_type: self.expires_in,
        )
        authz = _AuthzServer(app, query_client=self._query_client, save_token=self._save_token)
        authz.owner = self
        authz.register_token_generator("default", self._generate_token)
        authz.register_grant(_AuthorizationCodeGrant, [_PKCE(self)])
        authz.register_grant(_ClientCredentialsGrant)
        authz.register_grant(_RefreshTokenGrant)
        authz.register_client_auth_method("tls_client_auth", _authenticate_tls_client)
        authz.register_client_auth_method("private_key_jwt", _PrivateKeyJWT(self))
        authz.register_extension(_Issuer(self))
        self.authorization_server = authz

        protector = ResourceProtector()
        protector.register_token_validator(_BearerValidator(self))

        @app.before_request
        def _begin() -> Response | None:
            g.oauth_start = time.monotonic()
            path = request.path
            form = {k: ("<redacted>" if k in SECRET_FIELDS else v) for k, v in request.form.items()}
            headers = dict(request.headers)
            auth = headers.get("Authorization")
            if auth:
                headers["Authorization"] = auth.split(" ", 1)[0] + " <redacted>"
            pem = request.environ.get("SSL_CLIENT_CERT")
            g.oauth_record = RequestRecord(
                method=request.method, path=path,
                listener=request.environ.get("authq.listener", "?"),
                query=dict(request.args), form=form, headers=headers,
                client_id=_basic_client_id(auth or "") or request.form.get("client_id")
                or request.args.get("client_id"),
                client_cert_subject=cert_subject(pem) if pem else None,
                start=g.oauth_start)
            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                self._in_flight_by_path[path] += 1
                self.max_in_flight_by_path[path] = max(
                    self.max_in_flight_by_path[path], self._in_flight_by_path[path])
                g.oauth_counted = True
                scripted = self._scripts[path].pop(0) if self._scripts.get(path) else None
            if path == "/token" and self.token_delay:
                time.sleep(self.token_delay)
            if scripted is not None:
                return _scripted_response(scripted)
            return None

        @app.after_request
        def _status(response: Response) -> Response:
            record = g.get("oauth_record")
            if record is not None:
                record.status = response.status_code
            return response

        @app.teardown_request
        def _end(_exc: BaseException | None) -> None:
            record = g.get("oauth_record")
            with self._lock:
                if g.get("oauth_counted"):
                    self.in_flight -= 1
                    self._in_flight_by_path[request.path] -= 1
                if record is not None:
                    record.end = time.monotonic()
                    if record.status is None:
                        record.status = 500
                    self.requests.append(record)

        @app.get("/authorize")
        def authorize() -> Response:
            oauth_request = authz.create_oauth2_request(None)
            try:
                grant = authz.get_authorization_grant(oauth_request)
            except UnsupportedResponseTypeError as error:
                error.state = oauth_request.payload.state
                response = authz.handle_error_response(oauth_request, error)
                _Issuer(self).add_issuer_parameter(authz, response)
                return response
            with self._lock:
                deny, self.deny_next = self.deny_next, False
            deny = deny or request.args.get("deny") not in (None, "", "0", "false")
            if deny:  # the end user clicked "Deny"
                oauth_request.deny_description = _safe_description(
                    deny if isinstance(deny, str) else "The end user denied the request.")
                return authz.create_authorization_response(oauth_request, grant_user=None, grant=grant)
            return authz.create_authorization_response(
                oauth_request, grant_user=User(self.user_sub), grant=grant)

        @app.post("/token")
        def token() -> Response:
            return authz.create_token_response()

        @app.get("/api/me")
        def me() -> Response:
            try:
                tok = protector.acquire_token()
            except OAuth2Error as error:
                protector.raise_error_response(error)
            return jsonify(sub=tok.user.sub if tok.user else None, client_id=tok.client_id,
                           scope=tok.scope)

        @app.get("/.well-known/oauth-authorization-server")
        def metadata() -> Response:
            base = request.host_url.rstrip("/")
            return jsonify(
                issuer=self.issuer_for_request(),
                authorization_endpoint=f"{base}/authorize",
                token_endpoint=f"{base}/token",
                response_types_supported=["code"],
                grant_types_supported=["authorization_code", "client_credentials", "refresh_token"],
                token_endpoint_auth_methods_supported=list(ALL_AUTH_METHODS),
                code_challenge_methods_supported=list(self.pkce_methods),
                authorization_response_iss_parameter_supported=True,
                tls_client_certificate_bound_access_tokens=False,
                mtls_endpoint_aliases={"token_endpoint": f"{self.mtls_url}/token"},
            )

        return app


def _scripted_response(item: tuple[Any, ...]) -> Response:
    status, body = item[0], item[1]
    headers = dict(item[2]) if len(item) == 3 else {}
    if body is None:
        return Response(b"", status=status, headers=headers)
    if isinstance(body, (dict, list)):
        headers.setdefault("Content-Type", "application/json")
        return Response(json.dumps(body), status=status, headers=headers)
    return Response(body, status=status, headers=headers)


def start_oauth_server(ca: trustme.CA | None = None, **kwargs: Any) -> OAuthServer:
    return OAuthServer.start(ca=ca, **kwargs)
