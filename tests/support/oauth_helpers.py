"""What the OAuth flow tests share: playing the browser, following jobs, hunting for leaks.

The test plays the browser: it opens the authorize URL a job answered, takes the real
server's redirect (code, state, iss) and brings it to authq by the GET callback (the
provider's redirect straight to authq) or the POST one (a front end forwarding it).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import time
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import redis
import trustme
from aiohttp.test_utils import TestClient

from tasks.storage import schema
from tests.support.helpers import REDIRECT_URI, Tenant, authorise_body, poll_job
from tests.support.leakcheck import remember_secret
from tests.support.oauth_server import OAuthServer

CALLBACK = "/api/v1/oauth/authenticate"
CLIENT_SECRET = "acme-secret-Zx81-do-not-leak"
remember_secret(CLIENT_SECRET)  # the session's leak check (tests/support/leakcheck.py) looks for it


def new_client_id(prefix: str = "acme") -> str:
    """A client id of this test alone: the server's clients and tokens outlive a test."""
    return f"{prefix}-{secrets.token_hex(4)}"


def pkce_client(server: OAuthServer, scope: str = "read", **kwargs: Any) -> str:
    """Register a confidential client (client_secret_basic) that requires PKCE; its id."""
    cid = new_client_id()
    server.add_client(cid, CLIENT_SECRET, redirect_uris=[REDIRECT_URI], scope=scope, require_pkce=True, **kwargs)
    return cid


def seconds_from_now(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() - time.time()


def assert_authorised(data: dict[str, Any], scopes: list[str]) -> None:
    """An OAuth connector after a token: authorised, scopes, an hour to go, the secret hidden."""
    assert data["status"] == "authorised", data
    creds = data["credentials"]
    assert creds["scopes"] == scopes and creds["token_type"] == "bearer"
    assert 3500 < seconds_from_now(creds["expires_at"]) <= 3600
    assert data["authorised_at"] is not None
    client_secret = next((v for v in data["variables"] if v["key"] == "client_secret"), None)
    if client_secret is not None:
        assert client_secret["value"] is None and client_secret["has_value"] is True


def oauth_body(server_url: str, impl: str = "test-oauth", *, client_id: str | None = None,
               client_secret: str | None = CLIENT_SECRET, **extra: Any) -> dict[str, Any]:
    variables = [{"key": "base_url", "value": server_url}]
    if client_id is not None:
        variables.append({"key": "client_id", "value": client_id})
    if client_secret is not None:
        variables.append({"key": "client_secret", "value": client_secret})
    return authorise_body(authentication_implementation_id=impl, variables=variables, **extra)


async def submit(client: TestClient, tenant: Tenant, method: str, path: str, body: dict[str, Any],
                 wait: int = 20) -> dict[str, Any]:
    """Submit a job, holding the answer until it ends (``Prefer: wait``); the finished job."""
    answer = await client.request(method, path, json=body, headers={**tenant.headers, "Prefer": f"wait={wait}"})
    assert answer.status == 200, (answer.status, await answer.text())
    job = (await answer.json())["data"]
    assert job["status"] in ("succeeded", "failed"), job
    return job


async def start(client: TestClient, tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /oauth/authorise`` for a redirect flow: the succeeded job with its next_action."""
    job = await submit(client, tenant, "POST", "/api/v1/oauth/authorise", body)
    assert job["status"] == "succeeded", job
    assert job["result"]["next_action"]["type"] == "redirect", job
    return job


def consent(url: str, test_ca: trustme.CA) -> dict[str, str]:
    """What a browser does: open the authorize URL, read where the server redirects it."""
    context = ssl.create_default_context()
    test_ca.configure_trust(context)
    with httpx2.Client(verify=context, follow_redirects=False) as browser:
        answer = browser.get(url)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def post_callback(client: TestClient, tenant: Tenant, params: dict[str, str]) -> dict[str, Any]:
    """The front end's ``POST /oauth/authenticate``: the authenticate job, finished."""
    return await submit(client, tenant, "POST", CALLBACK, params)


def callback_job_id(redis_client: redis.Redis, raw_state: str) -> str:
    """The job that claimed a state (the GET callback does not tell a browser without a session)."""
    claimed = redis_client.get(schema.auth_state_claim(raw_state))
    assert claimed is not None, "nobody claimed the state"
    return claimed.decode()


async def connector(client: TestClient, tenant: Tenant, connector_id: str) -> dict[str, Any]:
    answer = await client.get(f"/api/v1/connectors/{connector_id}", headers=tenant.headers)
    assert answer.status == 200, await answer.text()
    return (await answer.json())["data"]


async def wait_connector(client: TestClient, tenant: Tenant, connector_id: str, done: Any,
                         timeout: float = 20.0) -> dict[str, Any]:
    """Poll the connector until ``done(connector)``."""
    deadline = time.monotonic() + timeout
    while True:
        data = await connector(client, tenant, connector_id)
        if done(data):
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"connector {connector_id} did not get there in {timeout}s: {data}")
        await asyncio.sleep(0.1)


async def job_of(client: TestClient, tenant: Tenant, job_id: str) -> dict[str, Any]:
    return await poll_job(client, tenant, job_id)


def token_values(server: OAuthServer, client_id: str) -> list[str]:
    """Every access and refresh token the server issued to ``client_id`` (its own records)."""
    values: list[str] = []
    for token in server.issued_tokens(client_id):
        values.append(token.access_token)
        if token.refresh_token:
            values.append(token.refresh_token)
    return values


async def api_answers(client: TestClient, tenant: Tenant, job_ids: list[str], connector_id: str) -> str:
    """Everything the API shows of these jobs and the connector, as one text."""
    texts = []
    for path in [*(f"/api/v1/jobs/{j}" for j in job_ids), f"/api/v1/connectors/{connector_id}",
                 "/api/v1/connectors?per_page=100"]:
        answer = await client.get(path, headers=tenant.headers)
        assert answer.status == 200, (path, await answer.text())
        texts.append(await answer.text())
    listed = json.loads(texts[-1])["data"]
    assert connector_id in [c["id"] for c in listed]
    return "\n".join(texts)


def redis_values(redis_client: redis.Redis) -> list[tuple[str, bytes]]:
    """(key, value) for every value in the session's Redis under ``authq:*`` (all types)."""
    found: list[tuple[str, bytes]] = []
    for raw_key in redis_client.scan_iter(match=schema.EVERY_KEY, count=500):
        key = raw_key.decode()
        kind = redis_client.type(raw_key).decode()
        if kind == "string":
            value = redis_client.get(raw_key)
            items = [value] if value is not None else []
        elif kind == "hash":
            items = [x for pair in redis_client.hgetall(raw_key).items() for x in pair]
        elif kind == "list":
            items = redis_client.lrange(raw_key, 0, -1)
        elif kind == "set":
            items = list(redis_client.smembers(raw_key))
        elif kind == "zset":
            items = redis_client.zrange(raw_key, 0, -1)
        else:
            items = []
        found.extend((key, item) for item in items)
    return found


def assert_not_in_redis(redis_client: redis.Redis, secrets_: list[str]) -> None:
    values = redis_values(redis_client)
    assert values, "nothing in Redis: the scan looked in the wrong place"
    for secret in secrets_:
        for key, value in values:
            assert secret.encode() not in value, f"a secret is stored in clear at {key}"


async def assert_no_leak(client: TestClient, tenant: Tenant, redis_client: redis.Redis, *, secrets_: list[str],
                         job_ids: list[str], connector_id: str) -> None:
    """None of ``secrets_`` in the API's answers (jobs, connector, list) nor in clear in Redis."""
    assert secrets_ and all(len(s) >= 16 for s in secrets_), secrets_
    text = await api_answers(client, tenant, job_ids, connector_id)
    for secret in secrets_:
        assert secret not in text, "a secret is in an API answer"
    assert_not_in_redis(redis_client, secrets_)
