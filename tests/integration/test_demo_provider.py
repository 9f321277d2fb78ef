"""The demo provider (contract §13) end to end, through authq's own jobs and callbacks.

A deployment like ``authq up --demo`` (``tests/support/demo.py``): the real app on a loopback
port serving the API and ``/demo/``, a real worker, both without AUTHQ_ALLOW_PRIVATE_NETWORKS.
The test plays the browser on the demo's pages (GET the page, POST its Approve or Deny) and
brings the redirect to authq's GET callback, as a browser would. Proven here:

- demo-oauth2: the authorization code with PKCE S256 leaves the connector ``authorised``; Deny
  fails the job with ``access_denied``; authq's refresh job rotates the refresh token and the demo
  refuses the old one from then on; the token endpoint refuses a wrong verifier, a used code and a
  wrong client secret;
- demo-client-credentials, demo-basic (right and wrong password) and demo-woo (through
  woo-app-auth), each then used through the proxy on ``GET /demo/api/me``, which names the
  credentials' owner and answers 401 without valid ones;
- the guard lets the demo's origin through and refuses another loopback port, for jobs and proxy.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tasks.demo import facts
from tasks.model.records import Credentials
from tasks.security.sealing import SecretBox
from tasks.storage import schema
from tests.support.demo import DemoDeployment, demo_body, pending_request, query_of, s256, start_demo
from tests.support.helpers import save_connector

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, secret_key: str, ca_bundle: Path) -> Iterator[DemoDeployment]:
    yield from start_demo(tmp_path_factory.mktemp("demo"), secret_key, ca_bundle)


def _page(http: httpx2.Client, url: str) -> str:
    """GET a demo page as a browser: HTML, no script, nothing from elsewhere, Approve and Deny buttons."""
    answer = http.get(url)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Frame-Options"] == "DENY" and answer.headers["Referrer-Policy"] == "no-referrer"
    page = answer.text
    assert "<script" not in page and "<link" not in page and " src=" not in page   # nothing loaded at all
    assert '<html lang="en">' in page and "<h1>" in page and "<main>" in page
    assert '<button type="submit" name="decision" value="approve">Approve</button>' in page
    assert '<button type="submit" name="decision" value="deny">Deny</button>' in page
    return page


def _decide(http: httpx2.Client, form_path: str, page: str, decision: str) -> str:
    answer = http.post(form_path, data={"request": pending_request(page), "decision": decision})
    assert answer.status_code == 303, answer.text
    return answer.headers["Location"]


def _consent(demo: DemoDeployment, authorize_url: str, decision: str) -> dict[str, str]:
    """The user at the consent page; then the browser brings the redirect to authq's GET callback."""
    with demo.http() as http:
        page = _page(http, authorize_url)
        assert "read" in page and "write" in page
        location = _decide(http, facts.AUTHORIZE_PATH, page, decision)
        assert location.startswith(f"{demo.base}/api/v1/oauth/authenticate?")
        params = query_of(location)
        back = http.get(location)
        assert back.status_code == 200 and back.headers["Content-Type"].startswith("text/html"), back.text
    return params


def _callback_job(demo: DemoDeployment, state: str) -> dict[str, object]:
    with demo.redis() as client:
        claimed = client.get(schema.auth_state_claim(state))
    assert claimed is not None, "authq's callback queued no job"
    return demo.job(claimed.decode())


def _me(demo: DemoDeployment, connector_id: str) -> dict[str, object]:
    answer = demo.proxy(connector_id, "me")
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Authq-Request-Id"]
    return dict(answer.json())


def _authorised_oauth2(demo: DemoDeployment) -> str:
    job = demo.authorise(demo_body("demo-oauth2"))
    assert job["status"] == "succeeded", job
    url = job["result"]["next_action"]["url"]
    assert url.startswith(f"{demo.base}{facts.AUTHORIZE_PATH}?")
    asked = query_of(url)
    assert asked["code_challenge_method"] == "S256" and asked["client_id"] == facts.CLIENT_ID
    params = _consent(demo, url, "approve")
    assert set(params) == {"code", "state", "iss"} and params["iss"] == f"{demo.base}{facts.ISSUER_PATH}"
    finished = _callback_job(demo, params["state"])
    assert finished["type"] == "authenticate" and finished["status"] == "succeeded", finished
    return str(job["connector_id"])


def _sealed_tokens(demo: DemoDeployment, connector_id: str) -> dict[str, str]:
    with demo.redis() as client:
        stored = json.loads(client.get(schema.connector(demo.tenant.name, connector_id)))
    return dict(SecretBox(demo.settings.secret_key.get_secret_value()).open_json(  # type: ignore[union-attr]
        stored["credentials_sealed"]))


def test_oauth2_code_with_pkce_approved(demo: DemoDeployment) -> None:
    connector_id = _authorised_oauth2(demo)
    connector = demo.connector(connector_id)
    assert connector["status"] == "authorised"
    assert sorted(connector["credentials"]["scopes"]) == ["read", "write"] and connector["credentials"]["expires_at"]
    me = _me(demo, connector_id)
    assert me == {"user": "demo", "name": facts.USER_NAME, "auth": "oauth2", "grant": "authorization_code",
                  "client_id": facts.CLIENT_ID, "scopes": ["read", "write"]}


def test_oauth2_denied(demo: DemoDeployment) -> None:
    job = demo.authorise(demo_body("demo-oauth2"))
    params = _consent(demo, job["result"]["next_action"]["url"], "deny")
    assert params["error"] == "access_denied" and "code" not in params
    finished = _callback_job(demo, params["state"])
    assert finished["status"] == "failed" and finished["error"]["code"] == "access_denied", finished
    assert demo.connector(str(job["connector_id"]))["status"] != "authorised"


def test_refresh_rotates_and_the_old_refresh_token_is_refused(demo: DemoDeployment) -> None:
    connector_id = _authorised_oauth2(demo)
    before = _sealed_tokens(demo, connector_id)
    with demo.http() as http:
        answer = http.post(f"/api/v1/connectors/{connector_id}/refresh", headers=demo.tenant.headers)
        assert answer.status_code == 202, answer.text
        job = demo.job(answer.json()["data"]["id"])
        assert job["status"] == "succeeded", job
        after = _sealed_tokens(demo, connector_id)
        assert after["refresh_token"] != before["refresh_token"]
        assert after["access_token"] != before["access_token"]
        old = http.post(facts.TOKEN_PATH, auth=(facts.CLIENT_ID, facts.CLIENT_SECRET),
                        data={"grant_type": "refresh_token", "refresh_token": before["refresh_token"]})
        assert old.status_code == 400 and old.json()["error"] == "invalid_grant"
    assert demo.connector(connector_id)["status"] == "authorised"
    assert _me(demo, connector_id)["grant"] == "authorization_code"   # on the new access token


def test_token_endpoint_refusals(demo: DemoDeployment) -> None:
    """Driven directly, as a client of the demo: PKCE is checked, a code is single use, the client's secret counts."""
    verifier = secrets.token_urlsafe(48)
    redirect_uri = demo.settings.effective_redirect_uri
    with demo.http() as http:
        def code() -> str:
            page = _page(http, f"{facts.AUTHORIZE_PATH}?" + httpx2.QueryParams({
                "response_type": "code", "client_id": facts.CLIENT_ID, "redirect_uri": redirect_uri,
                "state": "s1", "code_challenge": s256(verifier), "code_challenge_method": "S256"}).__str__())
            return query_of(_decide(http, facts.AUTHORIZE_PATH, page, "approve"))["code"]

        def exchange(the_code: str, the_verifier: str, secret: str = facts.CLIENT_SECRET) -> httpx2.Response:
            return http.post(facts.TOKEN_PATH, auth=(facts.CLIENT_ID, secret), data={
                "grant_type": "authorization_code", "code": the_code, "redirect_uri": redirect_uri,
                "code_verifier": the_verifier})

        wrong = exchange(code(), secrets.token_urlsafe(48))
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
        refused = exchange(code(), verifier, secret="not-the-secret")
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
        first = code()
        good = exchange(first, verifier)
        assert good.status_code == 200 and good.headers["Cache-Control"] == "no-store"
        assert good.json()["token_type"] == "Bearer" and good.json()["refresh_token"]
        again = exchange(first, verifier)
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        plain = http.get(f"{facts.AUTHORIZE_PATH}?" + str(httpx2.QueryParams({
            "response_type": "code", "client_id": facts.CLIENT_ID, "redirect_uri": redirect_uri, "state": "s2"})))
        assert plain.status_code == 303 and query_of(plain.headers["Location"])["error"] == "invalid_request"
        elsewhere = http.get(f"{facts.AUTHORIZE_PATH}?" + str(httpx2.QueryParams({
            "response_type": "code", "client_id": facts.CLIENT_ID, "redirect_uri": "https://evil.example/cb",
            "code_challenge": s256(verifier), "code_challenge_method": "S256"})))
        assert elsewhere.status_code == 400 and "Location" not in elsewhere.headers  # never sent to an unknown URI


def test_client_credentials(demo: DemoDeployment) -> None:
    job = demo.authorise(demo_body("demo-client-credentials"))
    assert job["status"] == "succeeded", job
    assert job["result"]["connector"]["status"] == "authorised"
    me = _me(demo, str(job["connector_id"]))
    assert me["grant"] == "client_credentials" and me["client_id"] == facts.CLIENT_ID and me["user"] is None


def test_basic_right_and_wrong_password(demo: DemoDeployment) -> None:
    job = demo.authorise(demo_body("demo-basic", [{"key": "username", "value": "demo"},
                                                  {"key": "password", "value": "demo"}]))
    assert job["status"] == "succeeded" and job["result"]["connector"]["status"] == "authorised", job
    assert _me(demo, str(job["connector_id"])) == {"user": "demo", "name": facts.USER_NAME, "auth": "basic"}

    wrong = demo.authorise(demo_body("demo-basic", [{"key": "username", "value": "demo"},
                                                    {"key": "password", "value": "not-demo"}]))
    assert wrong["status"] == "failed" and wrong["error"]["code"] == "credentials_rejected", wrong
    assert demo.connector(str(wrong["connector_id"]))["status"] != "authorised"


def test_woo_approved_through_woo_app_auth(demo: DemoDeployment) -> None:
    job = demo.authorise(demo_body("demo-woo"))
    assert job["status"] == "succeeded", job
    url = job["result"]["next_action"]["url"]
    assert url.startswith(f"{demo.base}{facts.WOO_AUTHORIZE_PATH}?")
    asked = query_of(url)
    assert asked["callback_url"] == f"{demo.base}/api/v1/oauth/woo-app-auth" and asked["scope"] == "read_write"
    with demo.http() as http:
        page = _page(http, url)
        assert "Read/Write" in page
        location = _decide(http, facts.WOO_AUTHORIZE_PATH, page, "approve")
        assert query_of(location) == {"success": "1", "user_id": asked["user_id"]}
        assert location.startswith(asked["return_url"])
        assert http.get(location).status_code == 200
    finished = _callback_job(demo, asked["user_id"])
    assert finished["type"] == "woo_app_auth" and finished["status"] == "succeeded", finished
    assert demo.connector(str(job["connector_id"]))["status"] == "authorised"
    me = _me(demo, str(job["connector_id"]))
    assert me["auth"] == "woocommerce_keys" and me["permissions"] == "read_write" and me["user"] == "demo"


def test_woo_denied(demo: DemoDeployment) -> None:
    job = demo.authorise(demo_body("demo-woo"))
    url = job["result"]["next_action"]["url"]
    with demo.http() as http:
        location = _decide(http, facts.WOO_AUTHORIZE_PATH, _page(http, url), "deny")
        assert query_of(location)["success"] == "0"
        assert "did not approve" in http.get(location).text
    with demo.redis() as client:
        assert client.get(schema.auth_state_claim(query_of(url)["user_id"])) is None  # no keys, no job
    assert demo.connector(str(job["connector_id"]))["status"] == "pending"


def test_store_keeps_no_key_authq_refused_and_posts_only_to_authq(demo: DemoDeployment) -> None:
    """As WooCommerce does: a callback answered other than 200 deletes the key ("Access denied");
    and the demo store sends keys to authq's own callback only, never to a URL it is handed."""
    callback = f"{demo.base}/api/v1/oauth/woo-app-auth"
    asked = {"app_name": "Stranger", "scope": "read", "user_id": "a-state-authq-never-issued",
             "return_url": "https://platform.example/back", "callback_url": callback}
    with demo.http() as http, demo.redis() as client:
        keys_before = set(client.scan_iter(schema.demo_woo_key.pattern()))
        page = _page(http, f"{facts.WOO_AUTHORIZE_PATH}?" + str(httpx2.QueryParams(asked)))
        answer = http.post(facts.WOO_AUTHORIZE_PATH, data={"request": pending_request(page), "decision": "approve"})
        assert answer.status_code == 401 and "Access denied" in answer.text and "Location" not in answer.headers
        assert set(client.scan_iter(schema.demo_woo_key.pattern())) == keys_before   # authq said 404: deleted
        again = http.post(facts.WOO_AUTHORIZE_PATH, data={"request": pending_request(page), "decision": "approve"})
        assert again.status_code == 400 and "expired" in again.text   # a request is answered once
        for elsewhere in ("http://127.0.0.1:9/steal", f"{demo.base}/api/v1/connectors"):
            refused = http.get(facts.WOO_AUTHORIZE_PATH, params={**asked, "callback_url": elsewhere})
            assert refused.status_code == 400 and "only to authq" in refused.text
            assert 'name="request"' not in refused.text


def test_demo_api_refuses_without_valid_credentials(demo: DemoDeployment) -> None:
    with demo.http() as http:
        for auth in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic ZGVtbzpub3Bl"},
                     {"Authorization": "Basic Y2tfeDpjc195"}):
            answer = http.get(f"{facts.API_PATH}/me", headers=auth)
            assert answer.status_code == 401 and "Basic" in answer.headers["WWW-Authenticate"], auth
        assert http.get(f"{facts.API_PATH}/me", auth=("demo", "demo")).json()["auth"] == "basic"


def test_guard_lets_through_the_demo_origin_only(demo: DemoDeployment) -> None:
    """Loopback stays refused, except the demo's address and port: another port is refused by
    jobs (the credential check) and by the proxy alike."""
    other = httpx2.URL(demo.base).copy_with(port=demo.fleet.redis.port)  # a loopback port that is listening
    job = demo.authorise(demo_body("test-basic", [{"key": "base_url", "value": str(other).rstrip("/")},
                                                  {"key": "consumer_key", "value": "ck_x"},
                                                  {"key": "consumer_secret", "value": "cs_y"}]))
    assert job["status"] == "failed" and job["error"]["code"] == "url_not_allowed", job
    box = SecretBox(demo.settings.secret_key.get_secret_value())  # type: ignore[union-attr]
    with demo.redis() as client:  # authorised as a worker would have, where the guard was off
        elsewhere = save_connector(client, demo.settings.secret_key.get_secret_value(),  # type: ignore[union-attr]
                                   demo.tenant, credentials=Credentials(token_type="basic"),
                                   credentials_sealed=box.seal_json({"username": "ck_x", "password": "cs_y"}))
    refused = demo.proxy(elsewhere.id, "me")   # its base_url is http://127.0.0.1:9
    assert refused.status_code == 403 and refused.json()["code"] == "url_not_allowed", refused.text
    allowed = demo.authorise(demo_body("demo-basic", [{"key": "username", "value": "demo"},
                                                      {"key": "password", "value": "demo"}]))
    assert allowed["status"] == "succeeded"
    assert _me(demo, str(allowed["connector_id"]))["auth"] == "basic"


def test_root_and_index_point_to_the_demo(demo: DemoDeployment) -> None:
    with demo.http() as http:
        root = http.get("/").json()
        page = http.get("/", headers={"Accept": "text/html,application/xhtml+xml"}).text
        index = http.get("/demo/")
    assert root["demo"] == "/demo/" and root["docs"] == "/api/docs" and root["metrics"] == "/metrics"
    assert 'href="/demo/"' in page and 'href="/api/docs"' in page
    assert index.status_code == 200 and "<script" not in index.text
    assert "username <code>demo</code>, password <code>demo</code>" in index.text
