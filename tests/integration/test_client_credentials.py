"""OAuth 2 client credentials, and how authq treats a token endpoint, against the real server.

Real parts only (app factory, Celery workers, Redis, the Authlib server on loopback). Proven
here (contract §4 ``token_auth``, §5 certificates, §6 error codes; RFC 6749 §2.3.1, RFC 8705):

- the client authenticates the way the catalog says: ``client_secret_basic`` (HTTP Basic),
  ``client_secret_post`` (in the body), ``tls_client_auth`` (the certificate uploaded through
  ``POST /certificates``, presented on the mTLS listener; the server saw its subject);
- ``tls_client_auth`` without a certificate is ``certificate_not_found`` at ``certificate_id``;
  a certificate the server does not know for the client is ``provider_error`` keeping its
  ``invalid_client``;
- a 503 is retried (the third attempt succeeds); an OAuth error is final at once, the
  provider's ``error`` and ``error_description`` kept; no token leaks into the API or Redis.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from tests.support.helpers import poll_job
from tests.support.oauth_helpers import CLIENT_SECRET, assert_no_leak, new_client_id, oauth_body, submit, token_values
from tests.support.oauth_server import cert_subject

AUTHORISE = "/api/v1/oauth/authorise"


def _expires_in(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() - time.time()


async def _upload(client, tenant, leaf) -> str:  # type: ignore[no-untyped-def]
    pem = leaf.cert_chain_pems[0].bytes().decode() + leaf.private_key_pem.bytes().decode()
    answer = await client.post("/api/v1/certificates", json={"certificate": pem, "name": "mtls client"},
                               headers=tenant.headers)
    assert answer.status == 201, await answer.text()
    shown = (await answer.json())["data"]
    assert shown["subject"]
    return shown["id"]


@pytest.mark.parametrize("impl,method", [("test-cc-basic", "client_secret_basic"),
                                         ("test-cc-post", "client_secret_post")])
async def test_client_credentials_with_a_secret(client, tenant, workers, fresh_oauth, redis_client, impl, method):
    cid = new_client_id("cc")
    fresh_oauth.add_client(cid, CLIENT_SECRET, auth_method=method, scope="read")
    job = await submit(client, tenant, "POST", AUTHORISE, oauth_body(fresh_oauth.http_url, impl, client_id=cid))
    assert job["status"] == "succeeded" and job["attempts"] == 1, job
    assert job["result"]["next_action"] is None
    data = job["result"]["connector"]
    assert data["status"] == "authorised" and data["credentials"]["scopes"] == ["read"]
    assert 3500 < _expires_in(data["credentials"]["expires_at"]) <= 3600

    (request,) = fresh_oauth.records("/token")
    assert request.status == 200 and request.client_id == cid
    assert request.form["grant_type"] == "client_credentials" and request.form.get("scope") == "read"
    if method == "client_secret_basic":
        assert request.headers["Authorization"] == "Basic <redacted>" and "client_secret" not in request.form
    else:
        assert "Authorization" not in request.headers and request.form["client_secret"] == "<redacted>"
    tokens = token_values(fresh_oauth, cid)
    assert tokens
    await assert_no_leak(client, tenant, redis_client, secrets_=[*tokens, CLIENT_SECRET], job_ids=[job["id"]],
                         connector_id=job["connector_id"])


def _mtls_body(server, cid: str, certificate_id: str | None):  # type: ignore[no-untyped-def]
    extra = {"certificate_id": certificate_id} if certificate_id else {}
    return oauth_body(server.mtls_url, "test-cc-mtls", client_id=cid, client_secret=None, **extra)


async def test_client_credentials_with_tls_client_auth(client, tenant, workers, fresh_oauth, test_ca, redis_client):
    leaf = test_ca.issue_cert("authq-client")
    certificate_id = await _upload(client, tenant, leaf)
    cid = new_client_id("mtls")
    fresh_oauth.add_client(cid, auth_method="tls_client_auth", tls_subject=cert_subject(leaf), scope="read")

    job = await submit(client, tenant, "POST", AUTHORISE, _mtls_body(fresh_oauth, cid, certificate_id))
    assert job["status"] == "succeeded", job
    data = job["result"]["connector"]
    assert data["status"] == "authorised" and data["certificate_id"] == certificate_id
    assert "lookup_certificate" in [p["step"] for p in job["progress"]]
    (request,) = fresh_oauth.records("/token")
    assert request.listener == "mtls" and request.status == 200
    assert request.client_cert_subject == cert_subject(leaf)
    assert request.form["client_id"] == cid and "client_secret" not in request.form
    assert "Authorization" not in request.headers
    await assert_no_leak(client, tenant, redis_client, secrets_=token_values(fresh_oauth, cid),
                         job_ids=[job["id"]], connector_id=job["connector_id"])


async def test_tls_client_auth_without_a_certificate(client, tenant, workers, fresh_oauth):
    cid = new_client_id("mtls")
    fresh_oauth.add_client(cid, auth_method="tls_client_auth", scope="read")
    job = await submit(client, tenant, "POST", AUTHORISE, _mtls_body(fresh_oauth, cid, None))
    assert job["status"] == "failed" and job["attempts"] == 1, job
    assert (job["error"]["code"], job["error"]["field"]) == ("certificate_not_found", "certificate_id")
    assert "certificate" in job["error"]["message"]
    assert fresh_oauth.count("/token") == 0 and not fresh_oauth.tls_failures
    shown = await client.get(f"/api/v1/connectors/{job['connector_id']}", headers=tenant.headers)
    assert (await shown.json())["data"]["status"] == "failed"


async def test_tls_client_auth_with_a_certificate_the_server_does_not_accept(client, tenant, workers, fresh_oauth,
                                                                               test_ca):
    registered, other = test_ca.issue_cert("authq-client"), test_ca.issue_cert("someone-else")
    assert cert_subject(registered) != cert_subject(other)
    cid = new_client_id("mtls")
    fresh_oauth.add_client(cid, auth_method="tls_client_auth", tls_subject=cert_subject(registered), scope="read")
    certificate_id = await _upload(client, tenant, other)

    job = await submit(client, tenant, "POST", AUTHORISE, _mtls_body(fresh_oauth, cid, certificate_id))
    assert job["status"] == "failed" and job["attempts"] == 1, job
    assert job["error"]["code"] == "provider_error" and job["error"]["retryable"] is False
    assert job["error"]["provider"]["error"] == "invalid_client"
    (request,) = fresh_oauth.records("/token")
    assert request.client_cert_subject == cert_subject(other) and request.status == 401


# --- 5. how a token endpoint's failures are treated ---------------------------------------

async def test_token_endpoint_503_is_retried(client, tenant, workers, fresh_oauth):
    cid = new_client_id("cc")
    fresh_oauth.add_client(cid, CLIENT_SECRET, scope="read")
    fresh_oauth.script_token((503, {"error": "temporarily_unavailable"}), (503, "Service Unavailable"))
    answer = await client.post(AUTHORISE, json=oauth_body(fresh_oauth.http_url, "test-cc-basic", client_id=cid),
                               headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    job = await poll_job(client, tenant, (await answer.json())["data"]["id"], timeout=30)
    assert job["status"] == "succeeded" and job["attempts"] == 3, job
    assert job["error"] is None and job["result"]["connector"]["status"] == "authorised"
    assert [r.status for r in fresh_oauth.records("/token")] == [503, 503, 200]


async def test_token_endpoint_oauth_error_fails_at_once(client, tenant, workers, fresh_oauth):
    cid = new_client_id("cc")
    fresh_oauth.add_client(cid, CLIENT_SECRET, scope="read")
    refusal = {"error": "invalid_client", "error_description": "Client authentication failed (revoked)."}
    fresh_oauth.script_token((401, refusal, {"WWW-Authenticate": 'Basic realm="token"'}))
    job = await submit(client, tenant, "POST", AUTHORISE,
                       oauth_body(fresh_oauth.http_url, "test-cc-basic", client_id=cid))
    assert job["status"] == "failed" and job["attempts"] == 1, job
    assert job["error"]["code"] == "provider_error" and job["error"]["retryable"] is False
    assert job["error"]["provider"] == refusal
    assert fresh_oauth.count("/token") == 1
    shown = await client.get(f"/api/v1/connectors/{job['connector_id']}", headers=tenant.headers)
    assert (await shown.json())["data"]["status"] == "failed"
