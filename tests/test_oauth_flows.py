"""OAuth 2 flows end to end against the real loopback authorization server (Authlib).

The test plays the browser: it opens the authorize URL the job answered, takes the
server's redirect (code, state, iss) and brings it to authq, by the GET callback (the
provider's redirect straight to authq) or the POST one (a front end forwarding it).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx2

from .conftest import REDIRECT_URI, authorise_body, poll_job


def oauth_body(server_url: str, impl: str = "test-oauth", **extra):  # type: ignore[no-untyped-def]
    return authorise_body(authentication_implementation_id=impl, variables=[
        {"key": "base_url", "value": server_url}, {"key": "client_id", "value": "acme-client"},
        {"key": "client_secret", "value": "acme-secret-Zx81"}], **extra)


async def start(client, tenant, body):  # type: ignore[no-untyped-def]
    answer = await client.post("/api/v1/oauth/authorise", json=body, headers={**tenant.headers, "Prefer": "wait=20"})
    assert answer.status == 200, await answer.text()
    job = (await answer.json())["data"]
    assert job["status"] == "succeeded", job
    return job


def consent(url: str, test_ca) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """What a browser does: open the authorize URL, read where the server redirects it."""
    import ssl

    context = ssl.create_default_context()
    test_ca.configure_trust(context)
    with httpx2.Client(verify=context, follow_redirects=False) as browser:
        answer = browser.get(url)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def test_authorization_code_via_get_callback(client, tenant, workers, fresh_oauth, test_ca):
    fresh_oauth.add_client("acme-client", "acme-secret-Zx81", redirect_uris=[REDIRECT_URI], scope="read",
                           require_pkce=True)
    job = await start(client, tenant, oauth_body(fresh_oauth.https_url))
    url = job["result"]["next_action"]["url"]
    assert "code_challenge_method=S256" in url
    params = consent(url, test_ca)
    answer = await client.get("/api/v1/oauth/authenticate", params=params, allow_redirects=False)
    assert answer.status == 200, await answer.text()
    assert "text/html" in answer.headers["Content-Type"]
    connector_id = job["connector_id"]
    import asyncio
    for _ in range(100):
        shown = await client.get(f"/api/v1/connectors/{connector_id}", headers=tenant.headers)
        data = (await shown.json())["data"]
        if data["status"] != "pending":
            break
        await asyncio.sleep(0.1)
    assert data["status"] == "authorised", data
    assert data["credentials"]["expires_at"] is not None
    text = json.dumps(data)
    for token in fresh_oauth.issued_tokens() if hasattr(fresh_oauth, "issued_tokens") else []:
        assert token not in text
    again = await client.get("/api/v1/oauth/authenticate", params=params, allow_redirects=False)
    assert again.status == 400
