"""API key scopes (contract §3): every endpoint needs one (``manage`` unless it says otherwise);
a valid key without it is answered 403 naming the scope, before any record is looked up, so the
answer is the same whatever id the path names; a missing or unknown key is still 401."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from api.operations import ENDPOINTS_BY_ROUTE, Endpoint
from api.routes import ENDPOINTS
from tasks.settings import Settings
from tests.support.helpers import Tenant, save_connector
from tests.support.leakcheck import remember_secret


@dataclass(frozen=True)
class Key:
    raw: str
    scopes: tuple[str, ...]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": self.raw}


SCOPE_SETS = [("manage",), ("proxy",), ("credentials",), ("proxy", "credentials"), ("manage", "proxy"),
              ("manage", "proxy", "credentials")]


@pytest.fixture
def tenant_name() -> str:
    return f"t{secrets.token_hex(4)}"


@pytest.fixture
def keys() -> dict[tuple[str, ...], Key]:
    made = {scopes: Key(f"key-{secrets.token_urlsafe(18)}", scopes) for scopes in SCOPE_SETS}
    for key in made.values():
        remember_secret(key.raw)
    return made


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"data": {"reached": True}})


async def _client(aiohttp_client, settings: Settings, tenant_name: str,  # type: ignore[no-untyped-def]
                  keys: dict[tuple[str, ...], Key], extra: tuple[Endpoint, ...] = ()) -> TestClient:
    from api.app import create_app
    from worker.queues import make_job_queue

    entries = [f"{tenant_name}:{k.raw}:{'+'.join(k.scopes)}" for k in keys.values()]
    scoped = settings.model_copy(update={"api_keys": SecretStr(",".join(entries))})
    app = create_app(scoped, make_job_queue(scoped))
    for endpoint in extra:  # endpoints of other scopes, declared as routes.py declares its own
        route = app.router.add_route(endpoint.method, endpoint.path, endpoint.handler)
        app[ENDPOINTS_BY_ROUTE][route] = endpoint
    return await aiohttp_client(app)  # type: ignore[no-any-return]


@pytest.fixture
async def client(aiohttp_client, settings, tenant_name, keys) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    yield await _client(aiohttp_client, settings, tenant_name, keys)


def with_ids(path: str, well_shaped: bool) -> str:
    """The endpoint's path with an unknown id in each parameter: one of the id's shape, or not."""
    shaped = {"connector": f"con_{secrets.token_hex(16)}", "job": f"job_{secrets.token_hex(16)}",
              "certificate": f"crt_{secrets.token_hex(16)}", "session": f"ses_{secrets.token_hex(16)}",
              "permit": f"pmt_{secrets.token_hex(16)}",
              "webhook": f"whk_{secrets.token_hex(16)}", "pool": "987654", "path": "orders/1",
              "implementation": "test-basic"}
    return re.sub(r"\{([a-z]+)(?::[^}]*)?\}", lambda m: shaped[m.group(1)] if well_shaped or m.group(1) == "path"
                  else "nothing-here", path)


KEYED = [e for e in ENDPOINTS if e.key]
# The contract's §3: the proxy and permits need `proxy`, reading credential values `credentials`,
# every other endpoint `manage`.
EXPECTED_SCOPE = {"/api/v1/connectors/{connector}/credentials": "credentials",
                  "/api/v1/connectors/{connector}/permits": "proxy", "/api/v1/permits/{permit}": "proxy",
                  "/api/v1/connectors/{connector}/proxy/{path:.*}": "proxy"}


def test_every_endpoint_with_a_key_declares_the_contracts_scope() -> None:
    assert KEYED and {(e.method, e.path): e.scope for e in KEYED} == {
        (e.method, e.path): EXPECTED_SCOPE.get(e.path, "manage") for e in KEYED}
    assert any(e.path == "/api/v1/audit-events" for e in KEYED)


@pytest.mark.parametrize("endpoint", KEYED, ids=lambda e: f"{e.method} {e.path}")
async def test_a_key_without_the_scope_is_403_before_the_path_is_looked_up(client, keys, endpoint) -> None:  # type: ignore[no-untyped-def]
    for scopes in SCOPE_SETS:
        if endpoint.scope in scopes:
            continue
        for well_shaped in (True, False):
            answer = await client.request(endpoint.method, with_ids(endpoint.path, well_shaped),
                                          json={}, headers=keys[scopes].headers)
            assert answer.status == 403, (scopes, await answer.text())
            assert await answer.json() == {"message": f"This API key lacks the {endpoint.scope} scope."}


async def test_the_403_is_the_same_for_a_record_that_exists_and_comes_before_the_404(  # type: ignore[no-untyped-def]
        client, keys, tenant_name, redis_client, secret_key) -> None:
    connector = save_connector(redis_client, secret_key, Tenant(tenant_name, keys[("manage",)].raw))
    unknown = f"con_{secrets.token_hex(16)}"
    manage, proxy = keys[("manage",)], keys[("proxy",)]
    assert (await client.get(f"/api/v1/connectors/{connector.id}", headers=manage.headers)).status == 200
    assert (await client.get(f"/api/v1/connectors/{unknown}", headers=manage.headers)).status == 404
    answers = [await client.get(f"/api/v1/connectors/{cid}", headers=proxy.headers) for cid in (connector.id, unknown)]
    assert [(a.status, await a.text()) for a in answers] == [
        (403, '{"message": "This API key lacks the manage scope."}')] * 2
    # A key with manage among others passes; Bearer works as the bare key does.
    everything = keys[("manage", "proxy", "credentials")]
    answer = await client.get(f"/api/v1/connectors/{connector.id}",
                              headers={"Authorization": f"Bearer {everything.raw}"})
    assert answer.status == 200, await answer.text()


async def test_a_missing_or_unknown_key_is_still_401_not_403(client) -> None:  # type: ignore[no-untyped-def]
    for headers in ({}, {"Authorization": "nope"}, {"Authorization": "Bearer "}):
        answer = await client.get("/api/v1/connectors", headers=headers)
        assert answer.status == 401 and await answer.json() == {"message": "Unauthenticated."}


async def test_endpoints_of_the_proxy_and_credentials_scopes_admit_only_keys_that_have_them(  # type: ignore[no-untyped-def]
        aiohttp_client, settings, tenant_name, keys) -> None:
    extra = (Endpoint("GET", "/api/v1/scope-test/proxy", _ok, "proxy-scoped", "connectors", scope="proxy"),
             Endpoint("GET", "/api/v1/scope-test/credentials", _ok, "credentials-scoped", "connectors",
                      scope="credentials"))
    client = await _client(aiohttp_client, settings, tenant_name, keys, extra)
    for scopes, key in keys.items():
        for scope in ("proxy", "credentials"):
            answer = await client.get(f"/api/v1/scope-test/{scope}", headers=key.headers)
            if scope in scopes:
                assert answer.status == 200, (scopes, scope, await answer.text())
            else:
                assert answer.status == 403, (scopes, scope)
                assert await answer.json() == {"message": f"This API key lacks the {scope} scope."}
