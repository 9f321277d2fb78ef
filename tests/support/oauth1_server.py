"""A real OAuth 1.0a (RFC 5849) provider on loopback, built on Authlib's server side.

Authlib's ``AuthorizationServer`` serves the three-legged flow (``POST /oauth1/request_token``,
``GET /oauth1/authorize`` which approves at once as the end user, ``POST /oauth1/access_token``)
and its ``ResourceProtector`` guards every other path: each request's signature (HMAC-SHA1 or
HMAC-SHA256), timestamp (within 5 minutes) and nonce (never twice) are verified, and the
``realm`` it carried is recorded. Clients (consumer key and secret) and pre-issued tokens
(NetSuite's token-based authentication) are added by the test::

    server = OAuth1Server.start()
    server.add_client("ck", "cs")
    server.add_token("ck", "token-id", "token-secret")
    server.url                     # http://127.0.0.1:PORT
    server.records("/api/me")      # what reached that path, and what was decided

A wrong verifier is refused and the request token kept (as providers that delete it only once
it has been exchanged do): the right verifier can still exchange it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth1.rfc5849 import AuthorizationServer, ResourceProtector
from authlib.oauth1.rfc5849.errors import OAuth1Error
from authlib.oauth1.rfc5849.signature import generate_signature_base_string, verify_hmac_sha1
from authlib.oauth1.rfc5849.util import escape
from authlib.oauth1.rfc5849.wrapper import OAuth1Request
from flask import Flask, Response, request

from tests.support.leakcheck import remember_secret
from tests.support.wsgi_thread import ServedWsgi


def verify_hmac_sha256(req: OAuth1Request) -> bool:
    if not req.client_secret:
        return False
    key = escape(req.client_secret) + "&" + escape(req.token_secret or "")
    expected = base64.b64encode(hmac.new(key.encode(), generate_signature_base_string(req).encode(),
                                         hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, req.signature or "")


METHODS = {"HMAC-SHA1": verify_hmac_sha1, "HMAC-SHA256": verify_hmac_sha256}


@dataclass
class Consumer:
    client_id: str
    secret: str

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_client_secret(self) -> str:
        return self.secret

    def get_rsa_public_key(self) -> None:
        return None


@dataclass
class Credential:
    client_id: str
    oauth_token: str
    oauth_token_secret: str
    oauth_callback: str | None = None
    verifier: str | None = None
    user: str | None = None

    def get_oauth_token(self) -> str:
        return self.oauth_token

    def get_oauth_token_secret(self) -> str:
        return self.oauth_token_secret

    def get_client_id(self) -> str:
        return self.client_id

    def get_redirect_uri(self) -> str | None:
        return self.oauth_callback

    def check_verifier(self, verifier: str) -> bool:
        return self.verifier is not None and hmac.compare_digest(self.verifier, verifier)

    def get_user_id(self) -> str | None:
        return self.user


@dataclass
class Record:
    method: str
    path: str
    status: int
    realm: str | None
    signature_method: str | None
    error: str | None = None
    form: dict[str, str] = field(default_factory=dict)


def _flask_request() -> OAuth1Request:
    body = request.form.to_dict(flat=True) if request.mimetype == "application/x-www-form-urlencoded" else None
    return OAuth1Request(request.method, request.url, body, dict(request.headers))


class _Store:
    """What both Authlib servers look up, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clients: dict[str, Consumer] = {}
        self.temporary: dict[str, Credential] = {}
        self.tokens: dict[str, Credential] = {}
        self.nonces: set[tuple[str, str, str, str]] = set()

    def seen(self, nonce: str, req: OAuth1Request) -> bool:
        key = (nonce, str(req.timestamp), str(req.client_id), str(req.token or ""))
        with self.lock:
            if key in self.nonces:
                return True
            self.nonces.add(key)
            return False


class _Authorization(AuthorizationServer):  # type: ignore[misc]
    SIGNATURE_METHODS = METHODS
    SUPPORTED_SIGNATURE_METHODS = list(METHODS)

    def __init__(self, store: _Store) -> None:
        self.store = store

    def create_oauth1_request(self, req: Any) -> OAuth1Request:
        return req if isinstance(req, OAuth1Request) else _flask_request()

    def handle_response(self, status_code: int, payload: Any, headers: Any) -> Response:
        body = payload if isinstance(payload, str) else "&".join(f"{k}={escape(str(v))}" for k, v in payload)
        return Response(body, status=status_code, headers=headers)

    def get_client_by_id(self, client_id: str) -> Consumer | None:
        return self.store.clients.get(client_id)

    def exists_nonce(self, nonce: str, req: OAuth1Request) -> bool:
        return self.store.seen(nonce, req)

    def create_temporary_credential(self, req: OAuth1Request) -> Credential:
        secret = secrets.token_urlsafe(24)
        remember_secret(secret)
        credential = Credential(req.client_id, "rt-" + secrets.token_urlsafe(16), secret, req.redirect_uri)
        with self.store.lock:
            self.store.temporary[credential.oauth_token] = credential
        return credential

    def get_temporary_credential(self, req: OAuth1Request) -> Credential | None:
        return self.store.temporary.get(req.token)

    def delete_temporary_credential(self, req: OAuth1Request) -> None:
        if getattr(req, "exchanged", False):  # a refused verifier keeps the request token
            with self.store.lock:
                self.store.temporary.pop(req.token, None)

    def create_authorization_verifier(self, req: OAuth1Request) -> str:
        verifier = secrets.token_urlsafe(12)
        req.credential.verifier, req.credential.user = verifier, req.user
        return verifier

    def create_token_credential(self, req: OAuth1Request) -> Credential:
        secret = secrets.token_urlsafe(24)
        remember_secret(secret)
        credential = Credential(req.client_id, "at-" + secrets.token_urlsafe(16), secret, user=req.credential.user)
        with self.store.lock:
            self.store.tokens[credential.oauth_token] = credential
        req.exchanged = True
        return credential


class _Protector(ResourceProtector):  # type: ignore[misc]
    SIGNATURE_METHODS = METHODS
    SUPPORTED_SIGNATURE_METHODS = list(METHODS)

    def __init__(self, store: _Store) -> None:
        self.store = store

    def get_client_by_id(self, client_id: str) -> Consumer | None:
        return self.store.clients.get(client_id)

    def get_token_credential(self, req: OAuth1Request) -> Credential | None:
        token = self.store.tokens.get(req.token)
        return token if token is not None and token.client_id == req.client_id else None

    def exists_nonce(self, nonce: str, req: OAuth1Request) -> bool:
        return self.store.seen(nonce, req)


class OAuth1Server:
    def __init__(self) -> None:
        self.store = _Store()
        self.authorization = _Authorization(self.store)
        self.protector = _Protector(self.store)
        self._records: list[Record] = []
        self.user = "user-1"
        self.url = ""
        self.app = self._create_app()

    @classmethod
    def start(cls) -> OAuth1Server:
        server = cls()
        server._served = ServedWsgi(server.app, "oauth1")
        server.url = server._served.url
        return server

    def stop(self) -> None:
        self._served.stop()

    def add_client(self, client_id: str, secret: str) -> None:
        remember_secret(secret)
        with self.store.lock:
            self.store.clients[client_id] = Consumer(client_id, secret)

    def add_token(self, client_id: str, token: str, token_secret: str) -> None:
        remember_secret(token_secret)
        with self.store.lock:
            self.store.tokens[token] = Credential(client_id, token, token_secret, user=self.user)

    def issued_tokens(self, client_id: str) -> list[Credential]:
        with self.store.lock:
            return [t for t in self.store.tokens.values() if t.client_id == client_id]

    def records(self, path: str | None = None) -> list[Record]:
        with self.store.lock:
            return [r for r in self._records if path is None or r.path == path]

    def _record(self, status: int, req: OAuth1Request | None, error: str | None = None) -> None:
        form = {k: v for k, v in request.form.items()} if request.mimetype.endswith("urlencoded") else {}
        with self.store.lock:
            self._records.append(Record(request.method, request.path, status, req.realm if req else None,
                                        req.signature_method if req else None, error, form))

    def _create_app(self) -> Flask:
        app = Flask("oauth1-provider")

        @app.post("/oauth1/request_token")
        def request_token() -> Response:
            answer: Response = self.authorization.create_temporary_credentials_response()
            self._record(answer.status_code, _flask_request())
            return answer

        @app.get("/oauth1/authorize")
        def authorize() -> Response:
            try:
                answer: Response = self.authorization.create_authorization_response(None, grant_user=self.user)
            except OAuth1Error as exc:
                self._record(exc.status_code, None, exc.error)
                return Response(exc.error, status=exc.status_code)
            self._record(answer.status_code, None)
            return answer

        @app.post("/oauth1/access_token")
        def access_token() -> Response:
            answer: Response = self.authorization.create_token_response(_flask_request())
            self._record(answer.status_code, _flask_request())
            return answer

        @app.route("/<path:path>", methods=["GET", "POST", "PUT", "DELETE"])
        def protected(path: str) -> Response:
            req = _flask_request()
            try:
                checked = self.protector.validate_request(req.method, req.uri, req.body, req.headers)
            except OAuth1Error as exc:
                self._record(401, req, exc.error)
                return Response(exc.error, status=401)
            self._record(200, checked)
            return Response(f'{{"user": "{checked.credential.user}", "path": "/{path}"}}',
                            content_type="application/json")

        return app
