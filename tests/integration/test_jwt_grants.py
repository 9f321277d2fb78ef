"""RFC 7523 against a real token endpoint (Authlib's server side on loopback): client
credentials with ``private_key_jwt`` (contract §4) and the JWT bearer grant of service
accounts (``oauth2_jwt_bearer``).

Proven here:
- ``private_key_jwt`` with RS256 and ES256: the assertion is signed by the key of the
  certificate uploaded through ``POST /certificates`` and verified by the server with that
  certificate's public key; ``iss`` = ``sub`` = the client id, ``aud`` the token URL, a fresh
  ``jti``, at most 5 minutes to live, ``kid`` the certificate's SHA-256 fingerprint (or the
  variable ``jwt_kid_variable`` names); a connector with another certificate is refused by the
  server (``provider_error``, ``invalid_client``); none without a certificate
  (``certificate_not_found``);
- ``private_key_jwt`` (PS256) on an authorization-code exchange: the code is traded with the
  assertion; with another certificate the exchange is refused and the connector fails;
- the JWT bearer grant: an assertion signed with the service-account key file's key (``iss``
  its client email, ``kid`` its key id, ``scope`` the scopes, ``sub`` the subject given), a
  new one for each token (a refresh sends another ``jti``); no key or token in any answer or
  in Redis;
- a key file that does not parse, or has no private key, is a 422 at its variable.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws

from tests.support.helpers import REDIRECT_URI, authorise_body, poll_job
from tests.support.jwt_server import JwtServer
from tests.support.leakcheck import remember_pem
from tests.support.oauth_helpers import assert_no_leak, consent, post_callback, start, submit

AUTHORISE = "/api/v1/oauth/authorise"


@pytest.fixture(scope="module")
def jwt_server() -> Iterator[JwtServer]:
    server = JwtServer.start()
    yield server
    server.stop()


def _public_pem(cert_pem: bytes) -> str:
    public = x509.load_pem_x509_certificate(cert_pem).public_key()
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


async def _certificate(client, tenant, key_type: trustme.KeyType) -> tuple[str, dict[str, Any], str]:  # type: ignore[no-untyped-def]
    """A new certificate uploaded: (its id, its view, its public key PEM)."""
    leaf = trustme.CA(key_type=key_type).issue_cert("authq-client", key_type=key_type)
    key_pem = leaf.private_key_pem.bytes().decode()
    remember_pem(key_pem)
    cert_pem = leaf.cert_chain_pems[0].bytes()
    answer = await client.post("/api/v1/certificates", json={"certificate": cert_pem.decode() + key_pem},
                               headers=tenant.headers)
    assert answer.status == 201, await answer.text()
    view = (await answer.json())["data"]
    return view["id"], view, _public_pem(cert_pem)


def _cc_body(jwt_server: JwtServer, impl: str, client_id: str, certificate_id: str | None, base: str | None = None,
             **variables: str) -> dict[str, Any]:
    extra = {"certificate_id": certificate_id} if certificate_id else {}
    return authorise_body(authentication_implementation_id=impl, variables=[
        {"key": "base_url", "value": base or jwt_server.url}, {"key": "client_id", "value": client_id},
        *({"key": k, "value": v} for k, v in variables.items())], **extra)


@pytest.mark.parametrize(("impl", "key_type", "alg"), [("test-cc-pkjwt", trustme.KeyType.RSA, "RS256"),
                                                       ("test-cc-pkjwt-es256", trustme.KeyType.ECDSA, "ES256")])
async def test_private_key_jwt_client_credentials(client, tenant, workers, jwt_server, redis_client,
                                                  impl, key_type, alg):
    certificate_id, view, public_pem = await _certificate(client, tenant, key_type)
    other_id, _, _ = await _certificate(client, tenant, key_type)
    cid = f"pkjwt-{secrets.token_hex(4)}"
    jwt_server.add_client(cid, public_pem, scope="read")
    kid = {"key_id": "kid-2026"} if alg == "ES256" else {}

    job = await submit(client, tenant, "POST", AUTHORISE, _cc_body(jwt_server, impl, cid, certificate_id, **kid))
    assert job["status"] == "succeeded", job
    data = job["result"]["connector"]
    assert data["status"] == "authorised" and data["credentials"]["expires_at"] is not None
    assertion = jwt_server.assertions[-1]
    assert assertion.status == 200 and assertion.grant_type == "client_credentials"
    assert assertion.header["alg"] == alg
    assert assertion.header["kid"] == (kid["key_id"] if kid else view["fingerprint_sha256"])
    claims = assertion.claims
    assert claims["iss"] == claims["sub"] == cid and claims["aud"] == jwt_server.token_url
    assert 0 < claims["exp"] - claims["iat"] <= 300 and len(claims["jti"]) >= 16

    refused = await submit(client, tenant, "POST", AUTHORISE, _cc_body(jwt_server, impl, cid, other_id, **kid))
    assert refused["status"] == "failed" and refused["error"]["code"] == "provider_error", refused
    assert refused["error"]["provider"]["error"] == "invalid_client"
    assert jwt_server.assertions[-1].answer == {"error": "invalid_client"}

    without = await submit(client, tenant, "POST", AUTHORISE, _cc_body(jwt_server, impl, cid, None, **kid))
    assert without["status"] == "failed" and without["error"]["code"] == "certificate_not_found", without
    await assert_no_leak(client, tenant, redis_client, secrets_=[assertion.answer["access_token"]],
                         job_ids=[job["id"], refused["id"]], connector_id=job["connector_id"])


def _service_account(email: str) -> tuple[str, str]:
    """A Google-style service-account key file (JSON) and its public key PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    remember_pem(pem)
    key_file = json.dumps({"type": "service_account", "project_id": "demo", "private_key_id": "pkid-" + email[:6],
                           "private_key": pem, "client_email": email, "client_id": "1234567890",
                           "token_uri": "https://oauth2.googleapis.com/token"})
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return key_file, public


def _sa_body(server: JwtServer, key_file: str, subject: str | None = None) -> dict[str, Any]:
    variables = [{"key": "base_url", "value": server.url}, {"key": "service_account", "value": key_file}]
    if subject:
        variables.append({"key": "subject", "value": subject})
    return authorise_body(authentication_implementation_id="test-service-account", variables=variables)


async def test_a_jwt_bearer_grant_from_a_service_account_key_file(client, tenant, workers, jwt_server, redis_client):
    email = f"sa-{secrets.token_hex(3)}@demo.iam.gserviceaccount.com"
    key_file, public = _service_account(email)
    jwt_server.add_service_account(email, public)
    job = await submit(client, tenant, "POST", AUTHORISE, _sa_body(jwt_server, key_file, "ada@example.com"))
    assert job["status"] == "succeeded", job
    data = job["result"]["connector"]
    assert data["status"] == "authorised" and data["credentials"]["token_type"] == "bearer"
    shown = next(v for v in data["variables"] if v["key"] == "service_account")
    assert shown["value"] is None and shown["has_value"] is True
    first = jwt_server.assertions[-1]
    assert first.status == 200 and first.grant_type == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert first.header == {"alg": "RS256", "typ": "JWT", "kid": "pkid-" + email[:6]}
    assert first.claims["iss"] == email and first.claims["sub"] == "ada@example.com"
    assert first.claims["aud"] == jwt_server.token_url
    assert first.claims["scope"] == "https://www.googleapis.com/auth/drive.readonly"
    assert 0 < first.claims["exp"] - first.claims["iat"] <= 300

    # No refresh token: a refresh signs a new assertion.
    answer = await client.post(f"/api/v1/connectors/{job['connector_id']}/refresh", headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    refreshed = await poll_job(client, tenant, (await answer.json())["data"]["id"])
    assert refreshed["status"] == "succeeded", refreshed
    second = jwt_server.assertions[-1]
    assert second.status == 200 and second.claims["jti"] != first.claims["jti"]
    assert second.answer["access_token"] != first.answer["access_token"]
    await assert_no_leak(client, tenant, redis_client,
                         secrets_=[first.answer["access_token"], second.answer["access_token"]],
                         job_ids=[job["id"], refreshed["id"]], connector_id=job["connector_id"])


@pytest.mark.parametrize(("value", "says"), [
    ("{not json", "not JSON"),
    (json.dumps({"client_email": "a@b.test"}), "no private_key"),
    (json.dumps({"private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                 "client_email": "a@b.test"}), "not a readable"),
    (json.dumps(["a"]), "JSON object"),
])
async def test_a_key_file_that_cannot_sign_is_a_422_at_its_variable(client, tenant, jwt_server, value, says):
    answer = await client.post(AUTHORISE, json=_sa_body(jwt_server, value), headers=tenant.headers)
    assert answer.status == 422, await answer.text()
    errors = (await answer.json())["errors"]
    assert list(errors) == ["variables.1.value"] and says in errors["variables.1.value"][0]


@pytest.mark.parametrize("same_certificate", [True, False])
async def test_private_key_jwt_on_a_code_exchange(client, tenant, workers, fresh_oauth, test_ca, same_certificate):
    certificate_id, _, public_pem = await _certificate(client, tenant, trustme.KeyType.RSA)
    other_id, _, _ = await _certificate(client, tenant, trustme.KeyType.RSA)
    cid = f"pkjwt-code-{secrets.token_hex(4)}"
    fresh_oauth.add_client(cid, redirect_uris=[REDIRECT_URI], scope="read", auth_method="private_key_jwt",
                           jwt_public_pem=public_pem)
    body = _cc_body(jwt_server=None, impl="test-oauth-pkjwt", client_id=cid,  # type: ignore[arg-type]
                    certificate_id=certificate_id if same_certificate else other_id, base=fresh_oauth.https_url)
    job = await start(client, tenant, body)
    done = await post_callback(client, tenant, consent(job["result"]["next_action"]["url"], test_ca))
    (exchange,) = fresh_oauth.records("/token")
    assert exchange.form["grant_type"] == "authorization_code"
    assert exchange.form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert "client_secret" not in exchange.form and "Authorization" not in exchange.headers
    header = jws.extract_compact(exchange.form["client_assertion"].encode()).headers()
    assert header["alg"] == "PS256"
    if same_certificate:
        assert exchange.status == 200 and done["status"] == "succeeded", done["error"]
        assert done["result"]["connector"]["status"] == "authorised"
    else:
        assert exchange.status in (400, 401) and done["status"] == "failed", done
        assert done["error"]["code"] == "provider_error" and done["error"]["provider"]["error"] == "invalid_client"
