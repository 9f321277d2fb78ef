"""The loopback OAuth 2 authorization server (tests/support/oauth_server.py) proves itself here,
driven by a plain httpx2 client (the project's HTTP client) -- no authq code involved."""

from __future__ import annotations

import base64
import hashlib
import secrets
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import trustme

from tests.support.oauth_server import OAuthServer, cert_subject

REDIRECT = "https://app.example/callback"


# --------------------------------------------------------------------------- fixtures & helpers


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def oauth_server(ca: trustme.CA) -> Iterator[OAuthServer]:
    server = OAuthServer.start(ca=ca)
    yield server
    server.stop()


@pytest.fixture
def srv(oauth_server: OAuthServer) -> OAuthServer:
    oauth_server.reset()
    return oauth_server


def tls_context(ca: trustme.CA, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if cert is not None:
        cert.configure_cert(ctx)
    return ctx


@pytest.fixture
def http(ca: trustme.CA) -> Iterator[httpx2.Client]:
    with httpx2.Client(verify=tls_context(ca), timeout=10) as client:
        yield client


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(http: httpx2.Client, base: str, client_id: str, *, state: str = "state-123",
              challenge: str | None = None, method: str | None = "S256", **extra: str) -> dict[str, str]:
    """GET /authorize without following the redirect; the redirect's query parameters."""
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": state}
    if challenge is not None:
        params["code_challenge"] = challenge
        if method is not None:
            params["code_challenge_method"] = method
    params.update(extra)
    answer = http.get(f"{base}/authorize", params=params, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def code_flow(http: httpx2.Client, srv: OAuthServer, client_id: str, secret: str) -> dict[str, object]:
    verifier, challenge = pkce_pair()
    query = authorize(http, srv.https_url, client_id, challenge=challenge)
    answer = http.post(f"{srv.https_url}/token", auth=(client_id, secret), data={
        "grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT,
        "code_verifier": verifier})
    assert answer.status_code == 200, answer.text
    return answer.json()


def refresh(http: httpx2.Client, srv: OAuthServer, client_id: str, secret: str, token: str) -> httpx2.Response:
    return http.post(f"{srv.https_url}/token", auth=(client_id, secret),
                     data={"grant_type": "refresh_token", "refresh_token": token})


def me(http: httpx2.Client, srv: OAuthServer, access_token: str | None) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    return http.get(f"{srv.https_url}/api/me", headers=headers)


# --------------------------------------------------------------------------- authorization code + PKCE


def test_authorization_code_with_pkce_s256(srv: OAuthServer, http: httpx2.Client) -> None:
    cid = new_id("web")
    srv.add_client(cid, "web-secret", redirect_uris=[REDIRECT], scope="read write")
    verifier, challenge = pkce_pair()

    query = authorize(http, srv.https_url, cid, challenge=challenge, scope="read write")
    assert query["state"] == "state-123"
    assert query["iss"] == srv.https_url  # RFC 9207, default issuer = the listener's base URL
    assert query["code"]

    answer = http.post(f"{srv.https_url}/token", auth=(cid, "web-secret"), data={
        "grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT,
        "code_verifier": verifier})
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    token = answer.json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert token["scope"] == "read write"
    assert token["access_token"] and token["refresh_token"]

    who = me(http, srv, token["access_token"])
    assert who.status_code == 200
    assert who.json() == {"sub": "user-1", "client_id": cid, "scope": "read write"}

    # A code is single-use; replaying it is refused and revokes what it produced.
    again = http.post(f"{srv.https_url}/token", auth=(cid, "web-secret"), data={
        "grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT,
        "code_verifier": verifier})
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert srv.code_reuse_detected == 1
    assert me(http, srv, token["access_token"]).status_code == 401


def test_wrong_or_missing_code_verifier(srv: OAuthServer, http: httpx2.Client) -> None:
    cid = new_id("web")
    srv.add_client(cid, "s3cret", redirect_uris=[REDIRECT], scope="read")
    _, challenge = pkce_pair()
    other_verifier, _ = pkce_pair()

    code = authorize(http, srv.https_url, cid, challenge=challenge)["code"]
    answer = http.post(f"{srv.https_url}/token", auth=(cid, "s3cret"), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": other_verifier})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"

    code = authorize(http, srv.https_url, cid, challenge=challenge)["code"]
    answer = http.post(f"{srv.https_url}/token", auth=(cid, "s3cret"), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"

    # redirect_uri must match the one the code was issued for
    verifier, challenge = pkce_pair()
    code = authorize(http, srv.https_url, cid, challenge=challenge)["code"]
    answer = http.post(f"{srv.https_url}/token", auth=(cid, "s3cret"), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT + "/other",
        "code_verifier": verifier})
    assert answer.json()["error"] == "invalid_grant"


def test_public_client_needs_pkce_s256(srv: OAuthServer, http: httpx2.Client) -> None:
    cid = new_id("spa")
    srv.add_client(cid, redirect_uris=[REDIRECT], scope="read", auth_method="none")

    query = authorize(http, srv.https_url, cid)  # no code_challenge
    assert query["error"] == "invalid_request"
    assert query["state"] == "state-123" and query["iss"] == srv.https_url
    assert "code" not in query

    _, challenge = pkce_pair()
    query = authorize(http, srv.https_url, cid, challenge=challenge, method="plain")
    assert query["error"] == "invalid_request"
    query = authorize(http, srv.https_url, cid, challenge=challenge, method=None)  # defaults to plain
    assert query["error"] == "invalid_request"

    verifier, challenge = pkce_pair()
    code = authorize(http, srv.https_url, cid, challenge=challenge)["code"]
    answer = http.post(f"{srv.https_url}/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "client_id": cid, "code_verifier": verifier})
    assert answer.status_code == 200, answer.text
    token = answer.json()
    # a public client refreshes with its client_id alone
    answer = http.post(f"{srv.https_url}/token", data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": cid})
    assert answer.status_code == 200, answer.text
    assert answer.json()["refresh_token"] != token["refresh_token"]


def test_pkce_required_per_client_and_globally(srv: OAuthServer, http: httpx2.Client) -> None:
    strict, lax = new_id("strict"), new_id("lax")
    srv.add_client(strict, "s", redirect_uris=[REDIRECT], require_pkce=True)
    srv.add_client(lax, "s", redirect_uris=[REDIRECT])

    assert authorize(http, srv.https_url, strict)["error"] == "invalid_request"
    code = authorize(http, srv.https_url, lax)["code"]  # PKCE optional for confidential clients
    answer = http.post(f"{srv.https_url}/token", auth=(lax, "s"), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
    assert answer.status_code == 200, answer.text

    srv.require_pkce = True
    assert authorize(http, srv.https_url, lax)["error"] == "invalid_request"


def test_authorize_refuses_unknown_client_or_redirect_without_redirecting(srv: OAuthServer,
                                                                          http: httpx2.Client) -> None:
    cid = new_id("web")
    srv.add_client(cid, "s", redirect_uris=[REDIRECT])
    answer = http.get(f"{srv.https_url}/authorize", params={
        "response_type": "code", "client_id": "nobody", "redirect_uri": REDIRECT})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_client"
    answer = http.get(f"{srv.https_url}/authorize", params={
        "response_type": "code", "client_id": cid, "redirect_uri": "https://evil.example/cb"})
    assert answer.status_code == 400 and "location" not in answer.headers
    # once client and redirect_uri are known good, errors go back to the client
    query = authorize(http, srv.https_url, cid, response_type="token")
    assert query["error"] == "unsupported_response_type"
    assert query["state"] == "state-123" and query["iss"] == srv.https_url
    assert authorize(http, srv.https_url, cid, scope="admin")["error"] == "invalid_scope"


def test_access_denied_by_setting_and_by_query_flag(srv: OAuthServer, http: httpx2.Client) -> None:
    cid = new_id("web")
    srv.add_client(cid, "s", redirect_uris=[REDIRECT])
    _, challenge = pkce_pair()

    srv.deny_next = True
    query = authorize(http, srv.https_url, cid, challenge=challenge, state="st-9")
    assert query["error"] == "access_denied"
    assert query["error_description"]
    assert query["state"] == "st-9"
    assert query["iss"] == srv.https_url
    assert "code" not in query

    assert "code" in authorize(http, srv.https_url, cid, challenge=challenge)  # only the next one

    srv.deny_next = "User clicked cancel"
    assert authorize(http, srv.https_url, cid)["error_description"] == "User clicked cancel"

    assert authorize(http, srv.https_url, cid, deny="1")["error"] == "access_denied"


def test_issuer_can_be_fixed_and_http_listener_works(srv: OAuthServer, http: httpx2.Client) -> None:
    cid = new_id("web")
    srv.add_client(cid, "s", redirect_uris=[REDIRECT])
    assert authorize(http, srv.http_url, cid)["iss"] == srv.http_url
    srv.issuer = "https://idp.example"
    assert authorize(http, srv.http_url, cid)["iss"] == "https://idp.example"
    meta = http.get(f"{srv.http_url}/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == "https://idp.example"
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["mtls_endpoint_aliases"]["token_endpoint"] == f"{srv.mtls_url}/token"


# --------------------------------------------------------------------------- client credentials


def test_client_credentials_basic_and_post(srv: OAuthServer, http: httpx2.Client) -> None:
    basic, post = new_id("basic"), new_id("post")
    srv.add_client(basic, "basic-secret", scope="read write", grant_types=["client_credentials"])
    srv.add_client(post, "post-secret", scope="read", auth_method="client_secret_post",
                   grant_types=["client_credentials"])

    answer = http.post(f"{srv.https_url}/token", auth=(basic, "basic-secret"),
                       data={"grant_type": "client_credentials", "scope": "read"})
    assert answer.status_code == 200, answer.text
    token = answer.json()
    assert token["scope"] == "read" and "refresh_token" not in token
    assert me(http, srv, token["access_token"]).json() == {"sub": None, "client_id": basic, "scope": "read"}

    answer = http.post(f"{srv.https_url}/token", data={
        "grant_type": "client_credentials", "client_id": post, "client_secret": "post-secret"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == "read"

    # wrong secret; a basic client trying post; a scope it was not given
    answer = http.post(f"{srv.https_url}/token", auth=(basic, "nope"), data={"grant_type": "client_credentials"})
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    assert answer.headers["www-authenticate"].startswith("Basic ")
    answer = http.post(f"{srv.https_url}/token", data={
        "grant_type": "client_credentials", "client_id": basic, "client_secret": "basic-secret"})
    assert answer.json()["error"] == "invalid_client"
    answer = http.post(f"{srv.https_url}/token", auth=(basic, "basic-secret"),
                       data={"grant_type": "client_credentials", "scope": "admin"})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_scope"

    # the client may use a grant only if registered for it
    answer = http.post(f"{srv.https_url}/token", auth=(basic, "basic-secret"),
                       data={"grant_type": "authorization_code", "code": "x"})
    assert answer.json()["error"] == "unauthorized_client"

    records = srv.records("/token")
    assert [r.client_id for r in records[:2]] == [basic, post]
    assert records[1].form["client_secret"] == "<redacted>"
    assert records[0].headers["Authorization"] == "Basic <redacted>"
    assert records[0].status == 200 and records[0].listener == "https"


def test_token_response_shape_is_configurable(srv: OAuthServer, http: httpx2.Client) -> None:
    cid = new_id("cc")
    srv.add_client(cid, "s")
    srv.expires_in = 120
    srv.expires_in_as_string = True
    srv.token_type = "bearer"
    srv.token_extra = {"instance_url": "https://api.example"}
    token = http.post(f"{srv.https_url}/token", auth=(cid, "s"), data={"grant_type": "client_credentials"}).json()
    assert token["expires_in"] == "120"
    assert token["token_type"] == "bearer"
    assert token["instance_url"] == "https://api.example"
    assert srv.token_info(token["access_token"]).expires_in == 120

    srv.expires_in = None
    token = http.post(f"{srv.https_url}/token", auth=(cid, "s"), data={"grant_type": "client_credentials"}).json()
    assert "expires_in" not in token


# --------------------------------------------------------------------------- tls_client_auth (RFC 8705)


def test_tls_client_auth_over_mtls_listener(srv: OAuthServer, ca: trustme.CA) -> None:
    cert = ca.issue_cert("connector.example", common_name="connector-1")
    other = ca.issue_cert("connector.example", common_name="connector-2")
    cid, any_cert = new_id("mtls"), new_id("mtls-any")
    srv.add_client(cid, auth_method="tls_client_auth", tls_subject=cert_subject(cert), scope="read")
    srv.add_client(any_cert, auth_method="tls_client_auth")
    assert "CN=connector-1" in cert_subject(cert)

    form = {"grant_type": "client_credentials", "client_id": cid}
    with httpx2.Client(verify=tls_context(ca, cert), timeout=10) as client:
        answer = client.post(f"{srv.mtls_url}/token", data=form)
        assert answer.status_code == 200, answer.text
        assert answer.json()["scope"] == "read"
        record = srv.records("/token")[-1]
        assert record.listener == "mtls"
        assert record.client_cert_subject == cert_subject(cert)
        # a secret is not how this client authenticates
        answer = client.post(f"{srv.mtls_url}/token", data={**form, "client_secret": "x"})
        assert answer.json()["error"] == "invalid_client"

    # a valid certificate with another subject does not authenticate this client ...
    with httpx2.Client(verify=tls_context(ca, other), timeout=10) as client:
        answer = client.post(f"{srv.mtls_url}/token", data=form)
        # authlib answers invalid_client with 401 whenever client_secret_basic is on offer
        assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
        # ... but does for a client registered without a subject
        answer = client.post(f"{srv.mtls_url}/token", data={"grant_type": "client_credentials", "client_id": any_cert})
        assert answer.status_code == 200, answer.text

    # the plain TLS listener never asks for a certificate: no certificate, no client
    with httpx2.Client(verify=tls_context(ca, cert), timeout=10) as client:
        answer = client.post(f"{srv.https_url}/token", data=form)
        assert answer.json()["error"] == "invalid_client"


def test_mtls_listener_requires_a_certificate_from_the_client_ca(srv: OAuthServer, ca: trustme.CA) -> None:
    cid = new_id("mtls")
    srv.add_client(cid, auth_method="tls_client_auth")
    form = {"grant_type": "client_credentials", "client_id": cid}

    with httpx2.Client(verify=tls_context(ca), timeout=10) as client, pytest.raises(httpx2.TransportError):
        client.post(f"{srv.mtls_url}/token", data=form)

    stranger = trustme.CA().issue_cert("connector.example", common_name="stranger")
    with httpx2.Client(verify=tls_context(ca, stranger), timeout=10) as client, pytest.raises(httpx2.TransportError):
        client.post(f"{srv.mtls_url}/token", data=form)

    deadline = time.monotonic() + 5  # the server side records the failure in its own thread
    while len(srv.tls_failures) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [listener for listener, _ in srv.tls_failures] == ["mtls", "mtls"]
    assert srv.count("/token") == 0

    # the listener still serves good clients afterwards
    good = ca.issue_cert("connector.example", common_name="good")
    with httpx2.Client(verify=tls_context(ca, good), timeout=10) as client:
        assert client.post(f"{srv.mtls_url}/token", data=form).status_code == 200


# --------------------------------------------------------------------------- refresh tokens


def test_refresh_tokens_rotate_and_reuse_revokes_the_grant(srv: OAuthServer, http: httpx2.Client) -> None:
    cid = new_id("web")
    srv.add_client(cid, "s", redirect_uris=[REDIRECT], scope="read write")
    first = code_flow(http, srv, cid, "s")

    answer = refresh(http, srv, cid, "s", first["refresh_token"])
    assert answer.status_code == 200, answer.text
    second = answer.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == "read write" and second["expires_in"] == 3600

    third = refresh(http, srv, cid, "s", second["refresh_token"]).json()
    assert me(http, srv, third["access_token"]).status_code == 200

    # narrowing scope on refresh is allowed, widening is not
    assert refresh(http, srv, cid, "s", "nope").json()["error"] == "invalid_grant"
    assert srv.refresh_reuse_detected == 0

    # replaying a rotated-out refresh token: invalid_grant, and the whole grant dies
    answer = refresh(http, srv, cid, "s", first["refresh_token"])
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    assert srv.refresh_reuse_detected == 1
    assert me(http, srv, third["access_token"]).status_code == 401
    assert refresh(http, srv, cid, "s", third["refresh_token"]).json()["error"] == "invalid_grant"


def test_refresh_scope_and_client_binding(srv: OAuthServer, http: httpx2.Client) -> None:
    cid, thief = new_id("web"), new_id("thief")
    srv.add_client(cid, "s", redirect_uris=[REDIRECT], scope="read write")
    srv.add_client(thief, "t", redirect_uris=[REDIRECT], scope="read write")
    token = code_flow(http, srv, cid, "s")

    # another client's refresh token is just invalid (and does not burn the grant)
    assert refresh(http, srv, thief, "t", token["refresh_token"]).json()["error"] == "invalid_grant"
    answer = http.post(f"{srv.https_url}/token", auth=(cid, "s"), data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"], "scope": "read admin"})
    assert answer.json()["error"] == "invalid_scope"
    answer = http.post(f"{srv.https_url}/token", auth=(cid, "s"), data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"], "scope": "read"})
    assert answer.status_code == 200 and answer.json()["scope"] == "read"


def test_refresh_without_rotation(srv: OAuthServer, http: httpx2.Client) -> None:
    cid = new_id("web")
    srv.add_client(cid, "s", redirect_uris=[REDIRECT])
    srv.rotate_refresh_tokens = False
    token = code_flow(http, srv, cid, "s")
    for _ in range(2):
        answer = refresh(http, srv, cid, "s", token["refresh_token"])
        assert answer.status_code == 200, answer.text
        assert "refresh_token" not in answer.json()


def test_concurrent_refreshes_with_one_token_count_as_reuse(srv: OAuthServer, ca: trustme.CA) -> None:
    """Two refreshes racing with the same token: one may win, the other is reuse and the
    grant is revoked -- whatever the interleaving, nothing from the grant survives."""
    cid = new_id("web")
    srv.add_client(cid, "s", redirect_uris=[REDIRECT])
    with httpx2.Client(verify=tls_context(ca), timeout=10) as client:
        token = code_flow(client, srv, cid, "s")
    srv.token_delay = 0.2
    barrier = threading.Barrier(2)

    def one() -> httpx2.Response:
        with httpx2.Client(verify=tls_context(ca), timeout=10) as client:
            barrier.wait()
            return refresh(client, srv, cid, "s", token["refresh_token"])

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: one(), range(2)))
    assert sorted(a.status_code for a in answers) == [200, 400]
    assert srv.refresh_reuse_detected == 1
    winner = next(a for a in answers if a.status_code == 200).json()
    assert not srv.is_active(winner["access_token"])


# --------------------------------------------------------------------------- the protected resource


def test_api_me_requires_a_valid_bearer_token(srv: OAuthServer, http: httpx2.Client) -> None:
    cid = new_id("cc")
    srv.add_client(cid, "s", scope="read")
    token = http.post(f"{srv.https_url}/token", auth=(cid, "s"), data={"grant_type": "client_credentials"}).json()

    answer = me(http, srv, None)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].lower().startswith("bearer")
    assert me(http, srv, "at_not_a_token").status_code == 401
    assert me(http, srv, token["access_token"]).status_code == 200

    srv.expire_access_tokens(cid)
    assert me(http, srv, token["access_token"]).status_code == 401
    token = http.post(f"{srv.https_url}/token", auth=(cid, "s"), data={"grant_type": "client_credentials"}).json()
    srv.revoke_tokens(cid)
    assert me(http, srv, token["access_token"]).status_code == 401


# --------------------------------------------------------------------------- scripting and counting


def test_scripted_token_answers(srv: OAuthServer, http: httpx2.Client) -> None:
    cid = new_id("cc")
    srv.add_client(cid, "s")
    url, form = f"{srv.https_url}/token", {"grant_type": "client_credentials"}

    srv.script_token((503, None), (503, None))
    assert [http.post(url, auth=(cid, "s"), data=form).status_code for _ in range(3)] == [503, 503, 200]
    assert srv.count("/token") == 3

    srv.script_token((400, {"error": "invalid_client", "error_description": "Client disabled"}))
    answer = http.post(url, auth=(cid, "s"), data=form)
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_client", "error_description": "Client disabled"}

    srv.script_token((429, None, {"Retry-After": "1"}), (500, "<html>oops</html>", {"Content-Type": "text/html"}))
    answer = http.post(url, auth=(cid, "s"), data=form)
    assert answer.status_code == 429 and answer.headers["retry-after"] == "1"
    answer = http.post(url, auth=(cid, "s"), data=form)
    assert answer.status_code == 500 and answer.text == "<html>oops</html>"

    assert srv.count("/token") == 6
    assert [r.status for r in srv.records("/token")] == [503, 503, 200, 400, 429, 500]
    assert all(r.client_id == cid for r in srv.records("/token"))

    srv.reset()
    assert srv.count() == 0
    assert http.post(url, auth=(cid, "s"), data=form).status_code == 200  # clients survive reset()


def test_max_in_flight_and_timestamps(srv: OAuthServer, ca: trustme.CA) -> None:
    cid = new_id("cc")
    srv.add_client(cid, "s")
    srv.token_delay = 0.3

    with httpx2.Client(verify=tls_context(ca), timeout=10) as client:
        for _ in range(2):
            assert client.post(f"{srv.http_url}/token", auth=(cid, "s"),
                               data={"grant_type": "client_credentials"}).status_code == 200
    assert srv.max_in_flight == 1

    barrier = threading.Barrier(5)

    def one(_: int) -> int:
        with httpx2.Client(timeout=10) as client:
            barrier.wait()
            return client.post(f"{srv.http_url}/token", auth=(cid, "s"),
                               data={"grant_type": "client_credentials"}).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(5) as pool:
        assert list(pool.map(one, range(5))) == [200] * 5
    assert time.monotonic() - started < 5 * 0.3  # they overlapped
    assert srv.max_in_flight == 5
    assert srv.max_in_flight_by_path["/token"] == 5
    assert srv.in_flight == 0

    stamps = srv.timestamps("/token")
    assert len(stamps) == 7 and stamps == sorted(stamps)
    assert stamps[-1] - stamps[-5] < 0.3  # the last five arrived within one delay
    assert all(r.end is not None and r.end - r.start >= 0.3 for r in srv.records("/token"))


def test_a_stalled_tls_client_does_not_block_the_listener(srv: OAuthServer, http: httpx2.Client) -> None:
    """The TLS handshake runs in the connection's own thread, not on the accept loop."""
    import socket

    cid = new_id("cc")
    srv.add_client(cid, "s")
    port = int(srv.https_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)):  # connects, never says ClientHello
        started = time.monotonic()
        answer = http.post(f"{srv.https_url}/token", auth=(cid, "s"), data={"grant_type": "client_credentials"})
        assert answer.status_code == 200
        assert time.monotonic() - started < 2


def test_start_settings_survive_reset_and_separate_client_ca(ca: trustme.CA) -> None:
    client_ca = trustme.CA()
    with OAuthServer.start(ca=ca, client_ca=client_ca, expires_in=60, issuer="https://idp.example") as srv:
        srv.expires_in = 5
        srv.reset()
        assert (srv.expires_in, srv.issuer) == (60, "https://idp.example")
        cid = new_id("mtls")
        srv.add_client(cid, auth_method="tls_client_auth")
        form = {"grant_type": "client_credentials", "client_id": cid}
        good = client_ca.issue_cert("connector.example", common_name="c")
        with httpx2.Client(verify=tls_context(ca, good), timeout=10) as client:
            answer = client.post(f"{srv.mtls_url}/token", data=form)
            assert answer.status_code == 200 and answer.json()["expires_in"] == 60
        wrong = ca.issue_cert("connector.example", common_name="c")  # server CA, not client CA
        with httpx2.Client(verify=tls_context(ca, wrong), timeout=10) as client, pytest.raises(httpx2.TransportError):
            client.post(f"{srv.mtls_url}/token", data=form)
    with pytest.raises(TypeError):
        OAuthServer.start(ca=ca, no_such_setting=1)
