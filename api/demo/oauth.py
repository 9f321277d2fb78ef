"""The demo's OAuth 2 authorization server, as protocol (RFC 6749, PKCE RFC 7636, RFC 9207
``iss``), without HTTP: what an authorization request may ask, what the token endpoint grants.

One client (``facts.CLIENT_ID``), one user (``demo``). Authorization codes need PKCE with S256
and go to authq's own redirect URI only; a code and a refresh token are single use, and a
refresh token is replaced by a new one each time it is used (rotation): the old one is refused
from then on. Authlib computes the S256 challenge and makes the tokens.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlencode

from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from api.demo.store import DemoStore
from tasks.demo import facts
from tasks.errors import DemoRefused

ACCESS_SECONDS = 3600
VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # RFC 7636 §4.1 (the challenge of S256 has 43)


@dataclass(frozen=True)
class AuthorizeRequest:
    redirect_uri: str
    state: str | None
    scopes: tuple[str, ...] = ()
    code_challenge: str = ""
    redirect_uri_given: bool = field(default=True)


def parse_scope(text: str | None, allowed: tuple[str, ...] = facts.SCOPES) -> tuple[str, ...]:
    """The scopes asked for (all of ``allowed`` when none is); an unknown one is ``invalid_scope``."""
    asked = tuple(dict.fromkeys((text or "").split()))
    unknown = [s for s in asked if s not in allowed]
    if unknown:
        raise DemoRefused("invalid_scope", f"Unknown scope(s): {' '.join(unknown)}.")
    return asked or allowed


def parse_authorize(query: Mapping[str, str], redirect_uri: str) -> AuthorizeRequest:
    """Validate an authorization request; ``redirect_uri`` is the only one registered (authq's)."""
    if query.get("client_id") != facts.CLIENT_ID:
        raise DemoRefused("invalid_client", f"Unknown client. The demo's client is {facts.CLIENT_ID!r}.",
                               redirect=False)
    given = query.get("redirect_uri")
    if given is not None and given != redirect_uri:
        raise DemoRefused("invalid_request", "This redirect URI is not registered for the client; only "
                               f"{redirect_uri} is.", redirect=False)
    state = query.get("state")
    if query.get("response_type") != "code":
        raise DemoRefused("unsupported_response_type", "Only response_type=code is supported.", redirect=True)
    challenge = query.get("code_challenge", "")
    if not challenge or query.get("code_challenge_method") != "S256":
        raise DemoRefused("invalid_request", "PKCE is required, with code_challenge_method=S256.",
                               redirect=True)
    if not VERIFIER.match(challenge):
        raise DemoRefused("invalid_request", "The code_challenge is malformed.", redirect=True)
    try:
        scopes = parse_scope(query.get("scope"))
    except DemoRefused as exc:
        raise DemoRefused(exc.error, exc.description, redirect=True) from None
    return AuthorizeRequest(redirect_uri, state, scopes, challenge, redirect_uri_given=given is not None)


def redirect_with(uri: str, params: Mapping[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


async def approve(store: DemoStore, request: AuthorizeRequest, issuer: str) -> str:
    """Issue a code for the demo user; the redirect carrying it (with ``iss``, RFC 9207)."""
    code = generate_token(40)
    await store.save_code(code, {"client_id": facts.CLIENT_ID, "user": facts.USERNAME,
                                 "scope": list(request.scopes), "code_challenge": request.code_challenge,
                                 "redirect_uri": request.redirect_uri if request.redirect_uri_given else None})
    return redirect_with(request.redirect_uri, {"code": code, "state": request.state, "iss": issuer})


def deny(request: AuthorizeRequest, issuer: str) -> str:
    """The user refused: ``error=access_denied`` at the redirect URI (RFC 6749 §4.1.2.1)."""
    return redirect_with(request.redirect_uri, {"error": "access_denied", "error_description":
                                                "The user denied the request.", "state": request.state,
                                                "iss": issuer})


def authenticate_client(authorization: str | None, form: Mapping[str, str]) -> str:
    """The client of a token request, by HTTP Basic (RFC 6749 §2.3.1: its parts form-encoded) or
    ``client_id``/``client_secret`` in the body; one way only. Refused: 401 ``invalid_client``."""
    basic = authorization is not None and authorization[:6].lower() == "basic "
    if basic and "client_secret" in form:
        raise DemoRefused("invalid_request", "Use one way of client authentication, not two.")
    if basic:
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()  # type: ignore[index]
            client_id, _, secret = decoded.partition(":")
            client_id, secret = unquote_plus(client_id), unquote_plus(secret)
        except (ValueError, UnicodeDecodeError):
            client_id, secret = "", ""
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    known = hmac.compare_digest(client_id.encode(), facts.CLIENT_ID.encode())
    right = hmac.compare_digest(secret.encode(), facts.CLIENT_SECRET.encode())
    if not (known and right):
        raise DemoRefused("invalid_client", "Client authentication failed.", status=401,
                          headers={"WWW-Authenticate": 'Basic realm="authq demo"'} if basic else None)
    return client_id


async def token(store: DemoStore, client_id: str, form: Mapping[str, str]) -> dict[str, Any]:
    """The token endpoint's answer for an authenticated client, or ``DemoRefused``."""
    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        grant = await _code_grant(store, client_id, form)
    elif grant_type == "refresh_token":
        grant = await _refresh_grant(store, client_id, form)
    elif grant_type == "client_credentials":
        scopes = parse_scope(form.get("scope"))
        return await _issue(store, {"client_id": client_id, "user": None, "scope": list(scopes),
                                    "grant": "client_credentials"}, refresh=False)
    else:
        raise DemoRefused("unsupported_grant_type", "Supported: authorization_code, refresh_token, "
                           "client_credentials.")
    return await _issue(store, grant, refresh=True)


async def _code_grant(store: DemoStore, client_id: str, form: Mapping[str, str]) -> dict[str, Any]:
    code = await store.take_code(form.get("code", ""))  # single use, even when refused below
    if code is None or code["client_id"] != client_id:
        raise DemoRefused("invalid_grant", "The authorization code is unknown, used or expired.")
    if code["redirect_uri"] is not None and form.get("redirect_uri") != code["redirect_uri"]:
        raise DemoRefused("invalid_grant", "The redirect_uri differs from the authorization request's.")
    verifier = form.get("code_verifier", "")
    challenge = create_s256_code_challenge(verifier)  # type: ignore[no-untyped-call]  # (typeshed: untyped)
    if not VERIFIER.match(verifier) or not hmac.compare_digest(challenge, code["code_challenge"]):
        raise DemoRefused("invalid_grant", "The code_verifier does not match the code_challenge (PKCE).")
    return {"client_id": client_id, "user": code["user"], "scope": code["scope"], "grant": "authorization_code"}


async def _refresh_grant(store: DemoStore, client_id: str, form: Mapping[str, str]) -> dict[str, Any]:
    old = await store.take_refresh(form.get("refresh_token", ""))  # rotation: never usable again
    if old is None or old["client_id"] != client_id:
        raise DemoRefused("invalid_grant", "The refresh token is unknown, already used or expired.")
    scopes = parse_scope(form.get("scope"), tuple(old["scope"])) if form.get("scope") else tuple(old["scope"])
    return {**old, "scope": list(scopes)}


async def _issue(store: DemoStore, grant: dict[str, Any], *, refresh: bool) -> dict[str, Any]:
    access = generate_token(40)
    await store.save_access(access, grant, ACCESS_SECONDS)
    answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": ACCESS_SECONDS,
                              "scope": " ".join(grant["scope"])}
    if refresh:
        answer["refresh_token"] = generate_token(48)
        await store.save_refresh(answer["refresh_token"], grant)
    return answer
