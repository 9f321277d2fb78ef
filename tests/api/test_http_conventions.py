"""The HTTP conventions every endpoint keeps (contract §3 and §5's list rules).

Authentication (401 and both header forms), the JSON-only body rules (400, 413, 415), JSON
404/405 answers, tenant isolation (another tenant's record is indistinguishable from a
missing one) and the ``page``/``per_page`` bounds of list endpoints.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import trustme
from multidict import CIMultiDict

from tasks.storage import schema
from tests.support.helpers import Tenant, authorise_body, save_connector

AUTHORISE = "/api/v1/oauth/authorise"
MIB = 1024 * 1024


async def assert_json_error(answer, status: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """``status`` with a JSON body carrying a non-empty ``message``."""
    assert answer.status == status, await answer.text()
    assert answer.content_type == "application/json", answer.content_type
    payload = await answer.json()
    assert isinstance(payload.get("message"), str) and payload["message"], payload
    return payload


# -- authentication -------------------------------------------------------------------------

@pytest.mark.parametrize("authorization", [None, "", "key-that-nobody-issued", "Bearer key-that-nobody-issued",
                                           "Bearer ", "Basic dXNlcjpwYXNz"])
@pytest.mark.parametrize(("method", "path"), [("GET", "/api/v1/connectors"), ("POST", AUTHORISE),
                                              ("GET", "/api/v1/jobs/job_x"),
                                              ("PATCH", "/api/v1/oauth/con_x/reauthorise")])
async def test_a_missing_or_unknown_key_is_401_unauthenticated(client, tenant, authorization, method, path):
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = await client.request(method, path, json=authorise_body(), headers=headers)
    assert answer.status == 401
    assert await answer.json() == {"message": "Unauthenticated."}


async def test_a_near_miss_of_the_key_is_401(client, tenant):
    """The key must match exactly: a prefix, a suffix or a changed case is not the key."""
    for wrong in (tenant.key[:-1], tenant.key + "x", tenant.key.upper(), f"Bearer {tenant.key[1:]}"):
        answer = await client.get("/api/v1/connectors", headers={"Authorization": wrong})
        assert answer.status == 401, wrong


@pytest.mark.parametrize("form", ["{key}", "Bearer {key}", "bearer {key}", "  Bearer   {key}  "])
async def test_the_key_works_raw_or_as_a_bearer_token(client, tenant, form):
    answer = await client.get("/api/v1/connectors", headers={"Authorization": form.format(key=tenant.key)})
    assert answer.status == 200, await answer.text()
    assert (await answer.json())["data"] == []


async def test_the_operations_endpoints_need_no_key(client):
    answer = await client.get("/healthz")
    assert answer.status == 200
    assert answer.content_type == "application/json"


# -- bodies -----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [b"{not json", b'{"name": "x",}', b"\xff\xfe{}", b"", b"   "])
async def test_a_body_that_is_not_json_is_400(client, tenant, raw):
    answer = await client.post(AUTHORISE, data=raw, headers={**tenant.headers, "Content-Type": "application/json"})
    await assert_json_error(answer, 400)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/xml"])
@pytest.mark.parametrize(("method", "path"), [("POST", AUTHORISE), ("POST", "/api/v1/connection-pools"),
                                              ("POST", "/api/v1/sessions")])
async def test_a_body_that_is_not_declared_json_is_415(client, tenant, redis_client, content_type, method, path):
    """Even a body that would parse as JSON is refused when its content type says otherwise."""
    answer = await client.request(method, path, data=json.dumps(authorise_body()),
                                  headers={**tenant.headers, "Content-Type": content_type})
    await assert_json_error(answer, 415)
    assert list(redis_client.scan_iter(match=schema.tenant_keys(tenant.name))) == []


async def test_a_json_subtype_content_type_is_accepted(client, tenant):
    answer = await client.post(AUTHORISE, data=json.dumps(authorise_body()),
                               headers={**tenant.headers, "Content-Type": "application/json; charset=utf-8"})
    assert answer.status == 202, await answer.text()


def padded_body(size: int) -> bytes:
    """A valid authorise body of exactly ``size`` bytes (an unknown field carries the padding)."""
    body = authorise_body(padding="")
    bare = len(json.dumps(body).encode())
    body["padding"] = "p" * (size - bare)
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_over_one_mib_is_413(client, tenant, redis_client, chunked):
    """With a Content-Length, and without one (chunked), the limit holds; nothing is queued."""
    raw = padded_body(MIB + 1)

    async def chunks():  # type: ignore[no-untyped-def]
        for start in range(0, len(raw), 64 * 1024):
            yield raw[start:start + 64 * 1024]

    answer = await client.post(AUTHORISE, data=chunks() if chunked else raw,
                               headers={**tenant.headers, "Content-Type": "application/json"})
    await assert_json_error(answer, 413)
    assert list(redis_client.scan_iter(match=schema.job.pattern(tenant.name))) == []


async def test_a_body_of_exactly_one_mib_is_accepted(client, tenant):
    answer = await client.post(AUTHORISE, data=padded_body(MIB),
                               headers={**tenant.headers, "Content-Type": "application/json"})
    assert answer.status == 202, await answer.text()


# -- nesting and duplicate headers ----------------------------------------------------------------

# Every endpoint that reads a JSON body (the connector ones get a real connector's id).
JSON_ENDPOINTS = [("POST", AUTHORISE), ("PATCH", "/api/v1/oauth/{connector}/reauthorise"),
                  ("POST", "/api/v1/oauth/authenticate"), ("POST", "/api/v1/oauth/woo-app-auth"),
                  ("POST", "/api/v1/connection-pools"), ("POST", "/api/v1/certificates"),
                  ("POST", "/api/v1/sessions"), ("POST", "/api/v1/connectors/{connector}/refresh")]


def nested(depth: int, inner: str = "1") -> bytes:
    """A JSON object whose ``name`` is ``depth`` levels deep in all (the object itself is one),
    mixing arrays and objects, with brackets inside strings that must not count."""
    value = inner
    for level in range(depth - 1):
        value = f'[{value}, "]]]{{"]' if level % 2 else f'{{"k{level}": {value}, "s": "[[[{{"}}'
    return f'{{"name": {value}}}'.encode()


@pytest.fixture
def json_endpoint_url(redis_client, secret_key, tenant):  # type: ignore[no-untyped-def]
    connector = save_connector(redis_client, secret_key, tenant)
    return lambda template: template.format(connector=connector.id)


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS, ids=[p for _, p in JSON_ENDPOINTS])
@pytest.mark.parametrize("depth", [33, 1000, 200_000])
async def test_json_nested_deeper_than_32_levels_is_400(client, tenant, redis_client, json_endpoint_url,
                                                        method, path, depth):
    """§3: deeper than 32 levels is a 400 on every JSON endpoint (200,000 once raised RecursionError: a 500)."""
    raw = nested(depth) if depth < 1000 else b"[" * depth + b"]" * depth
    answer = await client.request(method, json_endpoint_url(path), data=raw,
                                  headers={**tenant.headers, "Content-Type": "application/json"})
    payload = await assert_json_error(answer, 400)
    assert "32" in payload["message"], payload
    assert list(redis_client.scan_iter(match=f"authq:t:{tenant.name}:job:*")) == []


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS, ids=[p for _, p in JSON_ENDPOINTS])
async def test_json_nested_32_levels_is_read(client, tenant, json_endpoint_url, method, path):
    """32 levels are allowed: the body is read and judged by the endpoint's own rules (never a 400)."""
    answer = await client.request(method, json_endpoint_url(path), data=nested(32),
                                  headers={**tenant.headers, "Content-Type": "application/json"})
    assert answer.status != 400 and answer.status < 500, await answer.text()


@pytest.mark.parametrize("raw", [
    b'{"name": "' + b"[" * 5000 + b'"}',                         # brackets in a string are text
    b'{"name": "\\\"' + b"{" * 100 + b'", "x": []}',          # escaped quotes and backslashes
    json.dumps({"variables": [{"key": f"k{i}", "pivot": {}} for i in range(100)]}).encode(),  # wide, shallow
])
async def test_brackets_that_do_not_nest_are_not_depth(client, tenant, raw):
    answer = await client.post("/api/v1/connection-pools", data=raw,
                               headers={**tenant.headers, "Content-Type": "application/json"})
    assert answer.status == 422, await answer.text()  # read, then judged: name/limit are wrong


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS, ids=[p for _, p in JSON_ENDPOINTS])
@pytest.mark.parametrize("second", ["text/plain", "application/xml", "application/json; charset=latin-1"])
async def test_two_different_content_types_are_400(client, tenant, redis_client, json_endpoint_url,
                                                   method, path, second):
    """Two media types joined in one header (as a proxy joins repeated lines): 400, nothing queued."""
    answer = await client.request(method, json_endpoint_url(path), data=json.dumps(authorise_body()),
                                  headers={**tenant.headers, "Content-Type": f"application/json, {second}"})
    payload = await assert_json_error(answer, 400)
    assert "Content-Type" in payload["message"]
    assert list(redis_client.scan_iter(match=f"authq:t:{tenant.name}:job:*")) == []


async def test_a_comma_inside_a_quoted_parameter_is_one_content_type(client, tenant):
    answer = await client.post(AUTHORISE, data=json.dumps(authorise_body()),
                               headers={**tenant.headers, "Content-Type": 'application/json; profile="a,b"'})
    assert answer.status == 202, await answer.text()


@pytest.mark.parametrize(("method", "path"), [*JSON_ENDPOINTS, ("GET", "/api/v1/connectors"), ("GET", "/healthz")],
                         ids=[p for _, p in JSON_ENDPOINTS] + ["GET connectors", "GET healthz"])
async def test_two_content_type_lines_are_400_and_no_traceback(client, tenant, redis_client, json_endpoint_url,
                                                               caplog, method, path):
    """aiohttp's parser refuses a repeated Content-Type line itself (before any handler); it is
    the client's error: logged as one warning, never as a traceback."""
    headers = CIMultiDict(tenant.headers)
    headers.add("Content-Type", "application/json")
    headers.add("Content-Type", "text/plain")
    with caplog.at_level(logging.INFO):
        answer = await client.request(method, json_endpoint_url(path), data=json.dumps(authorise_body()),
                                      headers=headers)
        assert answer.status == 400, await answer.text()
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
    assert any("malformed HTTP request" in r.getMessage() for r in caplog.records)
    assert list(redis_client.scan_iter(match=f"authq:t:{tenant.name}:job:*")) == []


# -- routes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/v1/oauth", "/api/v2/connectors", "/no-such-page"])
async def test_an_unknown_route_is_a_json_404(client, tenant, path):
    answer = await client.get(path, headers=tenant.headers)
    await assert_json_error(answer, 404)


async def test_a_wrong_method_is_a_json_405_with_allow(client, tenant):
    answer = await client.delete(AUTHORISE, headers=tenant.headers)
    await assert_json_error(answer, 405)
    assert "POST" in answer.headers["Allow"]


# -- tenant isolation -----------------------------------------------------------------------------

def certificate_pem() -> str:
    issued = trustme.CA().issue_cert("shop.example.test")
    return issued.cert_chain_pems[0].bytes().decode() + issued.private_key_pem.bytes().decode()


async def create(client, owner: Tenant, path: str, body: dict[str, Any]) -> str:  # type: ignore[no-untyped-def]
    answer = await client.post(path, json=body, headers=owner.headers)
    assert answer.status in (201, 202), await answer.text()
    return str((await answer.json())["data"]["id"])


@pytest.fixture
async def records_of_a(client, tenants, redis_client, secret_key) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """One record of each kind, owned by tenant A, as ``{collection path: id}``."""
    a = tenants[0]
    return {
        "/api/v1/jobs": await create(client, a, AUTHORISE, authorise_body()),
        "/api/v1/connection-pools": await create(client, a, "/api/v1/connection-pools",
                                                 {"name": "NetSuite", "limit": 4}),
        "/api/v1/certificates": await create(client, a, "/api/v1/certificates", {"certificate": certificate_pem()}),
        "/api/v1/sessions": await create(client, a, "/api/v1/sessions", {}),
        "/api/v1/connectors": save_connector(redis_client, secret_key, a).id,
    }


MISSING_IDS = {"/api/v1/jobs": "job_" + "0" * 32, "/api/v1/connection-pools": "999999",
               "/api/v1/certificates": "crt_" + "0" * 32, "/api/v1/sessions": "ses_" + "0" * 32,
               "/api/v1/connectors": "con_" + "0" * 32}


@pytest.mark.parametrize("collection", list(MISSING_IDS))
async def test_another_tenants_record_is_404_exactly_like_a_missing_one(client, tenants, records_of_a, collection):
    a, b = tenants
    url = f"{collection}/{records_of_a[collection]}"
    mine = await client.get(url, headers=a.headers)
    assert mine.status == 200, await mine.text()
    theirs = await client.get(url, headers=b.headers)
    missing = await client.get(f"{collection}/{MISSING_IDS[collection]}", headers=b.headers)
    assert (await assert_json_error(theirs, 404)) == (await assert_json_error(missing, 404))


@pytest.mark.parametrize(("method", "template"), [
    ("DELETE", "/api/v1/connectors/{id}"), ("POST", "/api/v1/connectors/{id}/refresh"),
    ("PATCH", "/api/v1/oauth/{id}/reauthorise"),
])
async def test_another_tenant_cannot_act_on_a_connector(client, tenants, records_of_a, redis_client, method, template):
    """Deleting, refreshing or reauthorising A's connector as B is a 404 and changes nothing."""
    a, b = tenants
    connector_id = records_of_a["/api/v1/connectors"]
    answer = await client.request(method, template.format(id=connector_id), json={}, headers=b.headers)
    await assert_json_error(answer, 404)
    assert (await client.get(f"/api/v1/connectors/{connector_id}", headers=a.headers)).status == 200
    assert list(redis_client.scan_iter(match=schema.job.pattern(b.name))) == []


@pytest.mark.parametrize("collection", ["/api/v1/connection-pools", "/api/v1/certificates"])
async def test_another_tenant_cannot_delete_a_record(client, tenants, records_of_a, collection):
    a, b = tenants
    url = f"{collection}/{records_of_a[collection]}"
    await assert_json_error(await client.delete(url, headers=b.headers), 404)
    assert (await client.get(url, headers=a.headers)).status == 200


@pytest.mark.parametrize("collection", ["/api/v1/connectors", "/api/v1/connection-pools", "/api/v1/certificates"])
async def test_lists_show_only_the_keys_tenant(client, tenants, records_of_a, collection):
    a, b = tenants
    mine = await (await client.get(collection, headers=a.headers)).json()
    theirs = await (await client.get(collection, headers=b.headers)).json()
    # A's list holds A's record (the authorise job may have made A a second connector by
    # now, if workers run in this session); B's list holds nothing at all.
    expected = int(records_of_a[collection]) if collection.endswith("pools") else records_of_a[collection]
    assert expected in [r["id"] for r in mine["data"]]
    assert theirs["data"] == [] and theirs["meta"]["total"] == 0


# -- paging -----------------------------------------------------------------------------------

LISTS = ["/api/v1/connectors", "/api/v1/connection-pools", "/api/v1/certificates"]


@pytest.mark.parametrize("per_page", ["0", "101", "-1", "ten", "1.5", ""])
@pytest.mark.parametrize("collection", LISTS)
async def test_per_page_outside_1_to_100_is_422(client, tenant, collection, per_page):
    answer = await client.get(collection, params={"per_page": per_page}, headers=tenant.headers)
    payload = await assert_json_error(answer, 422)
    assert list(payload["errors"]) == ["per_page"]
    assert all("per page" in m for m in payload["errors"]["per_page"])


@pytest.mark.parametrize("page", ["0", "-2", "one"])
async def test_a_page_below_1_is_422(client, tenant, page):
    answer = await client.get("/api/v1/connectors", params={"page": page}, headers=tenant.headers)
    payload = await assert_json_error(answer, 422)
    assert list(payload["errors"]) == ["page"]


@pytest.mark.parametrize("per_page", [1, 100])
@pytest.mark.parametrize("collection", LISTS)
async def test_per_page_at_its_bounds_is_a_paged_list(client, tenant, collection, per_page):
    answer = await client.get(collection, params={"per_page": str(per_page)}, headers=tenant.headers)
    assert answer.status == 200, await answer.text()
    payload = await answer.json()
    assert set(payload) == {"data", "meta", "links"}
    assert payload["meta"]["per_page"] == per_page and payload["meta"]["current_page"] == 1



def test_a_client_resetting_mid_body_is_no_server_error(settings, tenant, caplog) -> None:  # type: ignore[no-untyped-def]
    """Served as `authq api` serves it (a runner: the handler is not cancelled when the client
    goes, its body read fails): a reset mid-body is logged as the client's doing, not as ours."""
    import socket
    import struct
    import time
    from urllib.parse import urlsplit

    from api.app import create_app
    from api.prometheus import METRICS
    from tests.support.served_app import serve_in_thread
    from worker.queues import make_job_queue

    app = create_app(settings, make_job_queue(settings))
    served = serve_in_thread(app, "reset-api")
    url = urlsplit(next(served))
    body = json.dumps(authorise_body()).encode()
    try:
        with caplog.at_level(logging.INFO):
            sock = socket.create_connection((url.hostname, url.port))
            sock.sendall(f"POST {AUTHORISE} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.key}\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                         + body[:10])
            time.sleep(0.2)  # the handler is reading the body
            # SO_LINGER 0: the close resets the connection, as a client killed mid-request does
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            counter = app[METRICS].requests.labels("/api/v1/oauth/authorise", "POST", "499")
            deadline = time.monotonic() + 5
            while counter._value.get() < 1:
                assert time.monotonic() < deadline, [(r.levelname, r.getMessage()) for r in caplog.records]
                time.sleep(0.02)
    finally:
        served.close()
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert "client closed the connection mid-request" in [r.getMessage() for r in caplog.records]
