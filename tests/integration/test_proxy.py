"""The proxy (contract §9) with real workers and real servers on loopback: requests reach the
implementation's base URL with the connector's credentials and without the client's own, and
answers come back as the provider gave them, streamed; paths cannot leave the base; the
connector's rate limit governs proxied requests; an OAuth 2 401 makes one refresh and one resend;
a refused refresh makes the connector expired and the proxy answer 409."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time

import pytest
from yarl import URL

from tests.integration.test_credentials import authorised
from tests.integration.test_refresh_tokens import authorised_connector, token_requests
from tests.support.helpers import basic_body
from tests.support.provider import GOOD_KEY, GOOD_SECRET


def proxied(connector_id: str, path: str) -> URL:
    return URL(f"/api/v1/connectors/{connector_id}/proxy/{path}", encoded=True)


@pytest.fixture
async def basic_connector(client, tenant, workers, fresh_provider) -> str:  # type: ignore[no-untyped-def]
    return await authorised(client, tenant, basic_body(fresh_provider))


async def test_a_request_reaches_the_base_url_with_the_connectors_credentials_only(client, tenant, fresh_provider,
                                                                                   basic_connector):
    body = secrets.token_bytes(3000)
    answer = await client.post(proxied(basic_connector, "echo/orders/7?status=open&q=%20a"), data=body, headers={
        **tenant.headers, "Content-Type": "application/octet-stream", "X-Custom": "kept", "Cookie": "session=1",
        "X-Authq-Max-Wait": "5", "Connection": "X-Drop-Me", "X-Drop-Me": "hop"})
    assert answer.status == 200, await answer.text()
    seen = await answer.json()
    assert seen["method"] == "POST" and seen["path"] == "/echo/orders/7" and seen["query"] == "status=open&q=%20a"
    assert seen["body_bytes"] == 3000 and seen["body_sha256"] == hashlib.sha256(body).hexdigest()
    sent = {k.lower(): v for k, v in seen["headers"].items()}
    assert sent["authorization"] == "Basic " + base64.b64encode(f"{GOOD_KEY}:{GOOD_SECRET}".encode()).decode()
    assert sent["x-custom"] == "kept" and sent["host"] == URL(fresh_provider.base_url).raw_authority
    assert not {"cookie", "x-authq-max-wait", "x-drop-me"} & set(sent)
    assert tenant.key not in str(seen)  # the platform's key to authq never reaches the provider
    # the provider's headers come back, less hop-by-hop ones and those its Connection named
    assert answer.headers["X-Provider"] == "echo" and "X-Hop" not in answer.headers
    assert "Keep-Alive" not in answer.headers and answer.headers["X-Authq-Request-Id"]


async def test_a_large_download_streams_through(client, tenant, basic_connector):
    size = 20 * 1024 * 1024
    answer = await client.get(proxied(basic_connector, f"download/{size}"), headers=tenant.headers)
    assert answer.status == 200 and int(answer.headers["Content-Length"]) == size
    digest, got = hashlib.sha256(), 0
    async for chunk in answer.content.iter_chunked(1 << 16):
        digest.update(chunk)
        got += len(chunk)
    expected = hashlib.sha256((bytes(range(256)) * 256 * (size // 65536 + 1))[:size]).hexdigest()
    assert got == size and digest.hexdigest() == expected


@pytest.mark.parametrize("path", ["../wp-json/wc/v3/system_status", "%2e%2e/x", "%2E%2e%2fx", "a%2fb", "a%5cb",
                                  "/127.0.0.1/x", "a//b", "http://other.example/x", "./echo"])
async def test_a_path_cannot_leave_the_base_url(client, tenant, fresh_provider, basic_connector, path):
    """Sent as raw bytes: an HTTP client library would resolve the dot segments itself."""
    fresh_provider.seen.clear()
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET /api/v1/connectors/{basic_connector}/proxy/{path} HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Bearer {tenant.key}\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    status = int(answer.split(b" ", 2)[1])
    # refused by the proxy (400), or (the server's own normalising of the path) no proxy route at all
    assert status in (400, 404), answer
    assert status == 404 or b'"code": "path_not_allowed"' in answer, answer
    assert fresh_provider.seen == []  # nothing was sent anywhere


async def test_a_colon_in_a_segment_stays_under_the_base(client, tenant, fresh_provider, basic_connector):
    answer = await client.get(proxied(basic_connector, "echo/http:/other.example/x"), headers=tenant.headers)
    assert answer.status == 200 and (await answer.json())["path"] == "/echo/http:/other.example/x"


async def test_a_base_url_on_loopback_is_refused_without_private_networks(aiohttp_client, settings, tenant,
                                                                         basic_connector, fresh_provider):
    from api.app import create_app
    from worker.queues import make_job_queue

    guarded = settings.model_copy(update={"allow_private_networks": False})
    client = await aiohttp_client(create_app(guarded, make_job_queue(guarded)))
    fresh_provider.seen.clear()
    answer = await client.get(proxied(basic_connector, "echo/x"), headers=tenant.headers)
    assert answer.status == 403 and (await answer.json())["code"] == "url_not_allowed"
    assert fresh_provider.seen == []


async def test_over_the_rate_limit_a_request_waits_then_is_refused(client, tenant, workers, fresh_provider):
    # 2 a minute: the check used one, the first proxied request the other.
    connector_id = await authorised(client, tenant, basic_body(fresh_provider, rate_limit_unit="minute",
                                                               rate_limit_duration=2))
    assert (await client.get(proxied(connector_id, "echo/1"), headers=tenant.headers)).status == 200
    started = time.monotonic()
    refused = await client.get(proxied(connector_id, "echo/2"), headers={**tenant.headers, "X-Authq-Max-Wait": "1"})
    assert 0.9 <= time.monotonic() - started < 5
    assert refused.status == 429 and (await refused.json())["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    bad = await client.get(proxied(connector_id, "echo/3"), headers={**tenant.headers, "X-Authq-Max-Wait": "301"})
    assert bad.status == 422 and list((await bad.json())["errors"]) == ["X-Authq-Max-Wait"]


async def test_a_provider_429_is_passed_on_and_blocks_the_connector(client, tenant, fresh_provider, basic_connector):
    fresh_provider.script.append((429, {"Retry-After": "30"}))
    answer = await client.get(proxied(basic_connector, "wp-json/wc/v3/system_status"), headers=tenant.headers)
    assert answer.status == 429 and answer.headers["Retry-After"] == "30"
    blocked = await client.get(proxied(basic_connector, "echo/x"), headers={**tenant.headers, "X-Authq-Max-Wait": "0"})
    assert blocked.status == 429 and (await blocked.json())["code"] == "rate_limited"
    assert int(blocked.headers["Retry-After"]) >= 25


async def test_an_oauth2_401_refreshes_once_and_resends(client, tenant, workers, fresh_oauth, test_ca):
    client_id = f"proxy-{secrets.token_hex(4)}"
    connector_id = await authorised_connector(client, tenant, fresh_oauth, test_ca, client_id)
    fresh_oauth.script("/api/me", (401, {"error": "invalid_token"}))  # the token was revoked early
    answer = await client.get(proxied(connector_id, "me"), headers=tenant.headers)
    assert answer.status == 200, await answer.text()
    assert (await answer.json())["client_id"] == client_id
    assert len(token_requests(fresh_oauth, client_id, "refresh_token")) == 1
    assert fresh_oauth.count("/api/me") == 2


async def test_a_refused_refresh_makes_the_connector_expired_and_the_proxy_409(client, tenant, workers, fresh_oauth,
                                                                               test_ca):
    client_id = f"proxy-gone-{secrets.token_hex(4)}"
    connector_id = await authorised_connector(client, tenant, fresh_oauth, test_ca, client_id)
    fresh_oauth.revoke_tokens(client_id)
    answer = await client.get(proxied(connector_id, "me"), headers=tenant.headers)
    body = await answer.json()
    assert answer.status == 409 and body["code"] == "connector_not_authorised" and body["status"] == "expired"
    again = await client.get(proxied(connector_id, "me"), headers=tenant.headers)
    assert again.status == 409 and (await again.json())["status"] == "expired"


async def test_a_connector_without_a_base_url_or_not_authorised(client, tenant, redis_client, secret_key):
    from tests.support.helpers import save_connector

    pending = save_connector(redis_client, secret_key, tenant, status="pending")
    answer = await client.get(proxied(pending.id, "x"), headers=tenant.headers)
    assert answer.status == 409 and (await answer.json())["code"] == "connector_not_authorised"
    no_base = save_connector(redis_client, secret_key, tenant, authentication_implementation_id="test-bearer-nocheck",
                             type="token")
    answer = await client.get(proxied(no_base.id, "x"), headers=tenant.headers)
    assert answer.status == 409 and (await answer.json())["code"] == "no_base_url"
    await asyncio.sleep(0)


async def test_the_resend_after_a_401_takes_a_permit_of_its_own(client, tenant, workers, fresh_oauth, test_ca,
                                                                redis_client):
    from tasks.model.records import Connector, RateLimit
    from tasks.storage import schema
    from tasks.storage.store import Store

    client_id = f"proxy-limit-{secrets.token_hex(4)}"
    connector_id = await authorised_connector(client, tenant, fresh_oauth, test_ca, client_id)
    # 3 a minute: the code exchange took one; the proxied request and the refresh take the others.
    record = Connector.model_validate_json(redis_client.get(schema.connector(tenant.name, connector_id)))
    Store(redis_client, 3600).save_connector(record.model_copy(update={"rate_limit": RateLimit(unit="minute",
                                                                                               duration=3)}))
    fresh_oauth.script("/api/me", (401, {"error": "invalid_token"}))
    answer = await client.get(proxied(connector_id, "me"), headers={**tenant.headers, "X-Authq-Max-Wait": "0"})
    assert answer.status == 429 and (await answer.json())["code"] == "rate_limited", await answer.text()
    assert len(token_requests(fresh_oauth, client_id, "refresh_token")) == 1
    assert fresh_oauth.count("/api/me") == 1  # the resend waited for a permit it could not have
