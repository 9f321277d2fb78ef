"""The proxy presents a connector's client certificate (contract §9: "the client certificate on
TLS"): a ``tls_client_auth`` connector, authorised by real workers through the OAuth server's
mTLS listener with a certificate uploaded to ``POST /certificates``, is proxied to the same
listener (which requires a client certificate signed by the test CA). The upstream sees the
certificate's subject and the connector's token; with the certificate gone the handshake fails,
and the proxy answers ``502 provider_unreachable``."""

from __future__ import annotations

from yarl import URL

from tests.support.oauth_helpers import new_client_id, oauth_body, submit
from tests.support.oauth_server import cert_subject

AUTHORISE = "/api/v1/oauth/authorise"


def proxied(connector_id: str, path: str) -> URL:
    return URL(f"/api/v1/connectors/{connector_id}/proxy/{path}", encoded=True)


async def _upload(client, tenant, leaf) -> str:  # type: ignore[no-untyped-def]
    pem = leaf.cert_chain_pems[0].bytes().decode() + leaf.private_key_pem.bytes().decode()
    answer = await client.post("/api/v1/certificates", json={"certificate": pem, "name": "mtls client"},
                               headers=tenant.headers)
    assert answer.status == 201, await answer.text()
    return str((await answer.json())["data"]["id"])


async def _authorised(client, tenant, oauth, leaf) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    """A connector of ``test-cc-mtls`` authorised with ``leaf``: (its id, its client id, the certificate id)."""
    certificate_id = await _upload(client, tenant, leaf)
    cid = new_client_id("mtls")
    oauth.add_client(cid, auth_method="tls_client_auth", tls_subject=cert_subject(leaf), scope="read")
    body = oauth_body(oauth.mtls_url, "test-cc-mtls", client_id=cid, client_secret=None, certificate_id=certificate_id)
    job = await submit(client, tenant, "POST", AUTHORISE, body)
    assert job["status"] == "succeeded", job
    return job["connector_id"], cid, certificate_id


async def test_the_proxy_presents_the_connectors_client_certificate(client, tenant, workers, fresh_oauth, test_ca):
    leaf = test_ca.issue_cert("authq-proxy-client")
    connector_id, cid, _ = await _authorised(client, tenant, fresh_oauth, leaf)
    for _ in range(2):  # the second through the kept TLS context (and, likely, the kept connection)
        answer = await client.get(proxied(connector_id, "me"), headers=tenant.headers)
        assert answer.status == 200, await answer.text()
        assert (await answer.json())["client_id"] == cid  # the connector's bearer token, accepted
    seen = fresh_oauth.records("/api/me")
    assert len(seen) == 2
    assert all(r.listener == "mtls" and r.status == 200 for r in seen)
    assert all(r.client_cert_subject == cert_subject(leaf) for r in seen)
    assert not fresh_oauth.tls_failures


async def test_without_the_certificate_the_handshake_fails(client, tenant, workers, fresh_oauth, test_ca):
    leaf = test_ca.issue_cert("authq-proxy-client")
    connector_id, _, certificate_id = await _authorised(client, tenant, fresh_oauth, leaf)
    deleted = await client.delete(f"/api/v1/certificates/{certificate_id}", headers=tenant.headers)
    assert deleted.status == 204
    answer = await client.get(proxied(connector_id, "me"), headers=tenant.headers)
    assert answer.status == 502, await answer.text()
    assert (await answer.json())["code"] == "provider_unreachable"
    assert fresh_oauth.records("/api/me") == []  # no request got past the handshake
    # (TLS 1.3: the client learns of the refusal on its first read; aiohttp may try a second connection)
    print("TLSFAIL", fresh_oauth.tls_failures)
    assert fresh_oauth.tls_failures and {listener for listener, _ in fresh_oauth.tls_failures} == {"mtls"}
