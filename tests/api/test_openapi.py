"""The API description (contract §5 Operations: ``GET /api/openapi.json`` and ``GET /api/docs``).

Proven here, over the real app factory on the test session's Redis:

- The document is valid OpenAPI 3.1 (openapi-spec-validator's 3.1 validator), built once per
  app and served as is, without an API key.
- It describes every route of the router with its method, every route was registered from
  an endpoint of ``api.routes.ENDPOINTS`` (and the router has every endpoint there), and
  every endpoint of the contract is in it.
- Request bodies are the schemas of the pydantic models that validate them.
- The security requirement of each operation is what the contract says (every ``/api/v1``
  endpoint needs a key except those providers and browsers call), and a request without a
  key answers 401 exactly on the operations that say they need one.
- Real answers (records created, listed and shown; a 401, a 404, a 422; finished, failed and
  redirecting jobs through real workers) validate against the schemas the document publishes
  for their status code, with the content type it names.
- ``/api/docs`` is an HTML page whose every ``src``/``href`` is local and answers 200; no
  ``http(s)://`` or protocol-relative URL appears in it or in its start-up script.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from pydantic import SecretStr, TypeAdapter

from api import schemas
from api.openapi import OPENAPI, REF, app_operations, openapi_path
from api.routes import ENDPOINTS
from tasks.model.bodies import (
    AuthenticateIn,
    AuthoriseIn,
    CertificateIn,
    ConnectionPoolIn,
    OAuth1AuthenticateIn,
    PermitIn,
    ReauthoriseIn,
    SessionIn,
    WooCallbackIn,
)
from tasks.model.views import JobView
from tasks.model.webhooks import WebhookIn
from tests.support.helpers import authorise_body, basic_body, pem_bundle, poll_job, save_connector
from tests.support.leakcheck import remember_secret

V1 = "/api/v1"
# Every endpoint contract §5 names (paths in the router's parameter names).
CONTRACT = [
    ("POST", f"{V1}/oauth/authorise"),
    ("PATCH", f"{V1}/oauth/{{connector}}/reauthorise"),
    ("POST", f"{V1}/oauth/authenticate"),
    ("GET", f"{V1}/oauth/authenticate"),
    ("POST", f"{V1}/oauth/woo-app-auth"),
    ("GET", f"{V1}/jobs/{{job}}"),
    ("GET", f"{V1}/jobs/{{job}}/events"),
    ("POST", f"{V1}/connection-pools"),
    ("GET", f"{V1}/connection-pools"),
    ("GET", f"{V1}/connection-pools/{{pool}}"),
    ("DELETE", f"{V1}/connection-pools/{{pool}}"),
    ("POST", f"{V1}/certificates"),
    ("GET", f"{V1}/certificates"),
    ("GET", f"{V1}/certificates/{{certificate}}"),
    ("DELETE", f"{V1}/certificates/{{certificate}}"),
    ("POST", f"{V1}/sessions"),
    ("GET", f"{V1}/sessions/{{session}}"),
    ("GET", f"{V1}/connectors"),
    ("GET", f"{V1}/connectors/{{connector}}"),
    ("DELETE", f"{V1}/connectors/{{connector}}"),
    ("POST", f"{V1}/connectors/{{connector}}/refresh"),
    ("POST", f"{V1}/connectors/{{connector}}/permits"),
    ("DELETE", f"{V1}/permits/{{permit}}"),
    ("GET", f"{V1}/implementations"),
    ("GET", f"{V1}/implementations/{{implementation}}"),
    ("GET", f"{V1}/audit-events"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/docs"),
]
REQUEST_MODELS = {
    ("POST", f"{V1}/oauth/authorise"): AuthoriseIn,
    ("PATCH", f"{V1}/oauth/{{connector}}/reauthorise"): ReauthoriseIn,
    ("POST", f"{V1}/oauth/authenticate"): (AuthenticateIn, OAuth1AuthenticateIn),  # OAuth 2's, or OAuth 1.0a's
    ("POST", f"{V1}/oauth/woo-app-auth"): WooCallbackIn,
    ("POST", f"{V1}/connection-pools"): ConnectionPoolIn,
    ("POST", f"{V1}/certificates"): CertificateIn,
    ("POST", f"{V1}/sessions"): SessionIn,
    ("POST", f"{V1}/connectors/{{connector}}/permits"): PermitIn,
    ("POST", f"{V1}/webhooks"): WebhookIn,
}
# Under /api/v1, what needs no API key: what providers (and the browsers they send back) call,
# authenticated by the single-use state they carry (contract §5), and the pages that follow it.
NO_KEY = {
    ("GET", f"{V1}/oauth/authenticate"),
    ("GET", f"{V1}/oauth/authenticate/status"),
    ("POST", f"{V1}/oauth/woo-app-auth"),
    ("GET", f"{V1}/oauth/woo-app-auth"),
}
EXTERNAL_URL = re.compile(r"""(?:https?:)?//[^\s"'<>]""", re.I)


async def _document(client) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    answer = await client.get("/api/openapi.json")
    assert answer.status == 200, await answer.text()
    assert answer.content_type == "application/json"
    return await answer.json()


def _needs_key(method: str, path: str) -> bool:
    """What the contract says: every endpoint under /api/v1 but NO_KEY; none at the root."""
    return path.startswith(f"{V1}/") and (method, path) not in NO_KEY


def _valid(shape: Any, body: Any) -> None:
    """``body`` is exactly ``shape`` (a view or envelope definition), checked by pydantic."""
    TypeAdapter(shape).validate_python(body, strict=True)


def _reply(doc: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    responses = doc["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} answered {status}, which the document does not describe"
    return responses[str(status)]


async def assert_documented(doc: dict[str, Any], method: str, path: str, answer) -> Any:  # type: ignore[no-untyped-def]
    """The answer's status, content type and JSON body are what the document says; returns the body."""
    reply = _reply(doc, method, path, answer.status)
    content = reply.get("content", {})
    text = await answer.text()
    if not content:
        assert text == "", f"{method} {path} {answer.status}: documented without a body, got {text[:200]!r}"
        return None
    media = answer.content_type
    assert media in content, f"{method} {path} {answer.status}: {media} is not documented ({list(content)})"
    for header in reply.get("headers", {}):
        if header in ("Location",):
            assert header in answer.headers, f"{method} {path} {answer.status}: no {header} header"
    if media != "application/json":
        return text
    body = json.loads(text)
    schema = {"components": doc["components"], **content[media]["schema"]}
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}" for e in
                Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).iter_errors(body)]
    assert not problems, f"{method} {path} {answer.status} does not match the document: {problems}\n{text[:2000]}"
    return body


# --- the document ------------------------------------------------------------------------

async def test_the_document_is_valid_openapi_3_1_and_needs_no_key(client) -> None:
    doc = await _document(client)
    assert doc["openapi"] == "3.1.0"
    validate(doc, cls=OpenAPIV31SpecValidator)
    # Every $ref points at a schema the document has.
    refs = set(re.findall(r'"\$ref":\s*"([^"]+)"', json.dumps(doc)))
    assert refs and all(ref.startswith("#/components/schemas/") for ref in refs), refs
    assert {ref.rsplit("/", 1)[1] for ref in refs} <= set(doc["components"]["schemas"])


async def test_the_document_is_built_once_per_app(client) -> None:
    first = await client.get("/api/openapi.json")
    second = await client.get("/api/openapi.json")
    assert await first.read() == await second.read()
    holder = client.app[OPENAPI]
    assert holder.document(client.app) is holder.document(client.app)


async def test_every_route_is_described_with_metadata(client) -> None:
    doc = await _document(client)
    routes = app_operations(client.app)
    assert len(routes) >= len(CONTRACT)
    for (method, path), endpoint in routes.items():
        assert endpoint is not None, f"{method} {path} was not routed from an endpoint of api.routes.ENDPOINTS"
        assert path in doc["paths"] and method.lower() in doc["paths"][path], (method, path)
        operation = doc["paths"][path][method.lower()]
        assert "x-authq-undocumented" not in operation, (method, path)
        assert operation["summary"] and operation["tags"] and operation["responses"], (method, path)
    # Every endpoint is routed, once.
    assert sorted((e.method, openapi_path(e.path)) for e in ENDPOINTS) == sorted(routes)
    # And the document has nothing the router does not.
    described = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert described == set(routes)


async def test_every_contract_endpoint_is_described(client) -> None:
    doc = await _document(client)
    for method, path in CONTRACT:
        assert method.lower() in doc["paths"].get(path, {}), f"{method} {path} is not in the document"


async def test_request_bodies_are_the_validating_models(client) -> None:
    doc = await _document(client)
    components = doc["components"]["schemas"]
    endpoints = {(e.method, openapi_path(e.path)): e for e in ENDPOINTS}
    with_bodies = {(m.upper(), p) for p, item in doc["paths"].items() for m, op in item.items()
                   if "requestBody" in op and endpoints[(m.upper(), p)].body is not None}
    assert with_bodies == set(REQUEST_MODELS)
    for (method, path), models in REQUEST_MODELS.items():
        body = doc["paths"][path][method.lower()]["requestBody"]
        alternatives = models if isinstance(models, tuple) else (models,)
        refs = [{"$ref": REF.format(model=model.__name__)} for model in alternatives]
        assert body["content"]["application/json"]["schema"] == (refs[0] if len(refs) == 1 else {"oneOf": refs})
        for model in alternatives:
            expected = model.model_json_schema(ref_template=REF)
            for name, sub in expected.pop("$defs", {}).items():
                assert components[name] == sub, name
            assert components[model.__name__] == expected, model.__name__


async def test_security_matches_the_api_key_middleware(client) -> None:
    doc = await _document(client)
    scheme = doc["components"]["securitySchemes"]["apiKey"]
    assert scheme == {"type": "apiKey", "in": "header", "name": "Authorization",
                      "description": scheme["description"]}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            needs = _needs_key(method.upper(), path)
            assert operation["security"] == ([{"apiKey": []}] if needs else []), (method, path)
            assert ("401" in operation["responses"]) == needs, (method, path)


async def test_a_request_without_a_key_answers_401_exactly_where_documented(client) -> None:
    doc = await _document(client)
    for path, item in doc["paths"].items():
        url = re.sub(r"\{pool\}", "1", re.sub(r"\{(?!pool)[^}]+\}", "x", path))
        for method, operation in item.items():
            answer = await client.request(method.upper(), url)
            if operation["security"]:
                assert answer.status == 401, (method, path, answer.status)
                await assert_documented(doc, method.upper(), path, answer)
            else:
                assert answer.status != 401, (method, path)
            answer.release()


# --- real answers against the document -----------------------------------------------------

async def test_pool_answers_match_the_document(client, tenant) -> None:
    doc = await _document(client)
    pools = f"{V1}/connection-pools"
    empty = await client.get(pools, headers=tenant.headers)
    assert empty.status == 200
    body = await assert_documented(doc, "GET", pools, empty)
    assert body["data"] == [] and body["meta"]["from"] is None
    created = await client.post(pools, json={"name": "p", "limit": 3}, headers=tenant.headers)
    assert created.status == 201
    pool = (await assert_documented(doc, "POST", pools, created))["data"]
    await client.post(pools, json={"name": "q", "limit": 1, "timeout": 9}, headers=tenant.headers)
    listed = await client.get(pools, params={"per_page": "1"}, headers=tenant.headers)
    body = await assert_documented(doc, "GET", pools, listed)
    _valid(schemas.PoolPage, body)
    assert body["meta"]["total"] == 2 and body["links"]["next"]
    shown = await client.get(f"{pools}/{pool['id']}", headers=tenant.headers)
    assert shown.status == 200
    await assert_documented(doc, "GET", f"{pools}/{{pool}}", shown)
    invalid = await client.post(pools, json={"name": "p", "limit": "5"}, headers=tenant.headers)
    assert invalid.status == 422
    body = await assert_documented(doc, "POST", pools, invalid)
    assert "limit" in body["errors"]
    bad_page = await client.get(pools, params={"per_page": "101"}, headers=tenant.headers)
    assert bad_page.status == 422
    await assert_documented(doc, "GET", pools, bad_page)
    for status in (204, 404):
        deleted = await client.delete(f"{pools}/{pool['id']}", headers=tenant.headers)
        assert deleted.status == status
        await assert_documented(doc, "DELETE", f"{pools}/{{pool}}", deleted)


async def test_session_and_error_answers_match_the_document(client, tenant) -> None:
    doc = await _document(client)
    sessions = f"{V1}/sessions"
    for body in ({}, {"end_user_id": "u1", "return_url": "https://app.example/done",
                      "allowed_implementations": ["test-basic"], "ttl_seconds": 60}):
        created = await client.post(sessions, json=body, headers=tenant.headers)
        assert created.status == 201
        session = (await assert_documented(doc, "POST", sessions, created))["data"]
        _valid(schemas.SessionResponse, {"data": session})
        shown = await client.get(f"{sessions}/{session['id']}", headers=tenant.headers)
        await assert_documented(doc, "GET", f"{sessions}/{{session}}", shown)
    for answer in (await client.post(sessions, json={"ttl_seconds": 5}, headers=tenant.headers),
                   await client.post(sessions, data="{not json", headers={**tenant.headers,
                                                                          "Content-Type": "application/json"}),
                   await client.post(sessions, data="x=1", headers={**tenant.headers,
                                                                    "Content-Type": "text/plain"})):
        assert answer.status in (422, 400, 415)
        await assert_documented(doc, "POST", sessions, answer)
    unauthenticated = await client.get(f"{sessions}/ses_x")
    assert unauthenticated.status == 401
    body = await assert_documented(doc, "GET", f"{sessions}/{{session}}", unauthenticated)
    assert body == {"message": "Unauthenticated."}
    missing = await client.get(f"{sessions}/ses_missing", headers=tenant.headers)
    assert missing.status == 404
    await assert_documented(doc, "GET", f"{sessions}/{{session}}", missing)


async def test_connector_and_certificate_answers_match_the_document(client, tenant, redis_client,
                                                                     secret_key) -> None:
    doc = await _document(client)
    record = save_connector(redis_client, secret_key, tenant)
    connectors = f"{V1}/connectors"
    shown = await client.get(f"{connectors}/{record.id}", headers=tenant.headers)
    assert shown.status == 200
    body = await assert_documented(doc, "GET", f"{connectors}/{{connector}}", shown)
    assert any(v["secret"] and v["value"] is None and v["has_value"] for v in body["data"]["variables"])
    _valid(schemas.ConnectorResponse, body)
    listed = await client.get(connectors, headers=tenant.headers)
    _valid(schemas.ConnectorPage, await assert_documented(doc, "GET", connectors, listed))
    not_json = await client.post(f"{connectors}/{record.id}/refresh", data="{", headers={
        **tenant.headers, "Content-Type": "application/json"})
    assert not_json.status == 400
    await assert_documented(doc, "POST", f"{connectors}/{{connector}}/refresh", not_json)

    certificates = f"{V1}/certificates"
    now = datetime.now(UTC)
    created = await client.post(certificates, json={"certificate": pem_bundle(now - timedelta(days=1),
                                                                              now + timedelta(days=30)),
                                                    "name": "mtls"}, headers=tenant.headers)
    assert created.status == 201, await created.text()
    cert = (await assert_documented(doc, "POST", certificates, created))["data"]
    _valid(schemas.CertificateResponse, {"data": cert})
    await assert_documented(doc, "GET", f"{certificates}/{{certificate}}",
                            await client.get(f"{certificates}/{cert['id']}", headers=tenant.headers))
    await assert_documented(doc, "GET", certificates, await client.get(certificates, headers=tenant.headers))
    rejected = await client.post(certificates, json={"certificate": "not a pem"}, headers=tenant.headers)
    assert rejected.status == 422
    await assert_documented(doc, "POST", certificates, rejected)


async def test_permit_answers_match_the_document(client, tenant, redis_client, secret_key) -> None:
    doc = await _document(client)
    pool = await client.post(f"{V1}/connection-pools", json={"name": "one", "limit": 1}, headers=tenant.headers)
    record = save_connector(redis_client, secret_key, tenant, connection_pool_id=(await pool.json())["data"]["id"])
    take = f"{V1}/connectors/{{connector}}/permits"
    url = f"{V1}/connectors/{record.id}/permits"
    granted = await client.post(url, headers=tenant.headers)
    assert granted.status == 201, await granted.text()
    permit = (await assert_documented(doc, "POST", take, granted))["data"]
    _valid(schemas.PermitResponse, {"data": permit})
    refused = await client.post(url, json={"wait_seconds": 0}, headers=tenant.headers)
    assert refused.status == 429
    _valid(schemas.RefusalBody, await assert_documented(doc, "POST", take, refused))
    invalid = await client.post(url, json={"wait_seconds": 31}, headers=tenant.headers)
    assert invalid.status == 422
    await assert_documented(doc, "POST", take, invalid)
    pending = save_connector(redis_client, secret_key, tenant, status="pending")
    conflict = await client.post(f"{V1}/connectors/{pending.id}/permits", headers=tenant.headers)
    assert conflict.status == 409
    _valid(schemas.ConflictBody, await assert_documented(doc, "POST", take, conflict))
    freed = await client.delete(f"{V1}/permits/{permit['id']}", headers=tenant.headers)
    assert freed.status == 204
    await assert_documented(doc, "DELETE", f"{V1}/permits/{{permit}}", freed)
    again = await client.delete(f"{V1}/permits/{permit['id']}", headers=tenant.headers)
    assert again.status == 404
    await assert_documented(doc, "DELETE", f"{V1}/permits/{{permit}}", again)


async def test_operations_answers_match_the_document(client) -> None:
    doc = await _document(client)
    await assert_documented(doc, "GET", "/healthz", await client.get("/healthz"))
    await assert_documented(doc, "GET", "/readyz", await client.get("/readyz"))
    await assert_documented(doc, "GET", "/metrics", await client.get("/metrics"))
    await assert_documented(doc, "GET", "/api/openapi.json", await client.get("/api/openapi.json"))
    await assert_documented(doc, "GET", "/api/docs", await client.get("/api/docs"))
    state = await client.get(f"{V1}/oauth/authenticate", params={"state": "never-issued"}, allow_redirects=False)
    assert state.status == 400
    await assert_documented(doc, "GET", f"{V1}/oauth/authenticate", state)
    woo = await client.post(f"{V1}/oauth/woo-app-auth", json={"user_id": "never-issued", "consumer_key": "ck",
                                                              "consumer_secret": "cs"})
    assert woo.status == 404
    await assert_documented(doc, "POST", f"{V1}/oauth/woo-app-auth", woo)


async def test_a_queued_job_matches_the_document(client, tenant) -> None:
    doc = await _document(client)
    # No workers here: an unknown pool is only found out by the job, so the job stays queued.
    answer = await client.post(f"{V1}/oauth/authorise", json=authorise_body(connection_pool_id=999999),
                               headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    job = (await assert_documented(doc, "POST", f"{V1}/oauth/authorise", answer))["data"]
    shown = await client.get(f"{V1}/jobs/{job['id']}", headers=tenant.headers)
    await assert_documented(doc, "GET", f"{V1}/jobs/{{job}}", shown)
    invalid = await client.post(f"{V1}/oauth/authorise", json=authorise_body(rate_limit_unit="week"),
                                headers=tenant.headers)
    assert invalid.status == 422
    await assert_documented(doc, "POST", f"{V1}/oauth/authorise", invalid)


async def test_a_rate_limited_answer_matches_the_document(aiohttp_client, settings, tenant) -> None:
    from api.app import create_app
    from worker.queues import make_job_queue

    limited = settings.model_copy(update={"api_rate_limit": 1.0})
    client = await aiohttp_client(create_app(limited, make_job_queue(limited)))
    doc = await _document(client)
    path = f"{V1}/connectors"
    answers = [await client.get(path, headers=tenant.headers) for _ in range(3)]
    assert [a.status for a in answers].count(429) >= 1, [a.status for a in answers]
    for answer in answers:
        await assert_documented(doc, "GET", path, answer)


async def test_audit_log_and_scope_answers_match_the_document(aiohttp_client, settings, tenant, redis_client,
                                                              secret_key) -> None:
    from api.app import create_app
    from worker.queues import make_job_queue

    proxy_only = f"key-{secrets.token_urlsafe(18)}"
    remember_secret(proxy_only)
    scoped = settings.model_copy(update={"api_keys": SecretStr(
        f"{settings.api_keys.get_secret_value()},{tenant.name}:{proxy_only}:proxy")})
    client = await aiohttp_client(create_app(scoped, make_job_queue(scoped)))
    doc = await _document(client)
    record = save_connector(redis_client, secret_key, tenant)
    assert (await client.delete(f"{V1}/connectors/{record.id}", headers=tenant.headers)).status == 204
    path = f"{V1}/audit-events"
    listed = await client.get(f"{path}?connector_id={record.id}", headers=tenant.headers)
    body = await assert_documented(doc, "GET", path, listed)
    _valid(schemas.AuditEventPage, body)
    assert [e["type"] for e in body["data"]] == ["connector.deleted"]
    await assert_documented(doc, "GET", path, await client.get(f"{path}?type=nope", headers=tenant.headers))
    refused = await client.get(path, headers={"Authorization": proxy_only})
    assert refused.status == 403
    await assert_documented(doc, "GET", path, refused)
    assert doc["paths"][path]["get"]["x-authq-scope"] == "manage"


@pytest.mark.integration
async def test_finished_jobs_match_the_document(client, tenant, workers, fresh_provider) -> None:
    doc = await _document(client)
    path = f"{V1}/jobs/{{job}}"
    bad_secret = basic_body(fresh_provider)
    bad_secret["variables"][2]["value"] = "cs_wrong"  # type: ignore[index]
    oauth = authorise_body(authentication_implementation_id="test-oauth", variables=[
        {"key": "base_url", "value": fresh_provider.base_url}, {"key": "client_id", "value": "cid"},
        {"key": "client_secret", "value": "csecret"}])
    outcomes = []
    for body in (basic_body(fresh_provider), bad_secret, oauth):
        answer = await client.post(f"{V1}/oauth/authorise", json=body, headers=tenant.headers)
        job = (await assert_documented(doc, "POST", f"{V1}/oauth/authorise", answer))["data"]
        done = await poll_job(client, tenant, job["id"])
        shown = await client.get(f"{V1}/jobs/{done['id']}", headers=tenant.headers)
        data = (await assert_documented(doc, "GET", path, shown))["data"]
        _valid(schemas.JobResponse, {"data": data})
        outcomes.append((data["status"], (data["error"] or {}).get("code"),
                         bool(data["result"] and data["result"]["next_action"])))
        # The event stream's data is the documented job too.
        events = await client.get(f"{V1}/jobs/{done['id']}/events", headers=tenant.headers)
        text = await assert_documented(doc, "GET", f"{path}/events", events)
        payloads = [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]
        assert payloads
        for payload in payloads:
            _valid(JobView, json.loads(payload))
    assert outcomes == [("succeeded", None, False), ("failed", "credentials_rejected", False),
                        ("succeeded", None, True)], outcomes


# --- the page --------------------------------------------------------------------------

class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls.extend(value for name, value in attrs if name in ("src", "href") and value)


async def test_the_docs_page_loads_only_local_files(client) -> None:
    answer = await client.get("/api/docs")
    assert answer.status == 200 and answer.content_type == "text/html"
    page = await answer.text()
    assert not EXTERNAL_URL.search(page), EXTERNAL_URL.search(page)
    parser = _Links()
    parser.feed(page)
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert any(u.endswith("/swagger-ui-bundle.js") for u in scripts)
    assert any(u.endswith("/swagger-ui.css") for u in parser.urls)
    for url in parser.urls:
        assert url.startswith("/") and not url.startswith("//"), url
        fetched = await client.get(url)
        assert fetched.status == 200, url
        content = await fetched.read()
        assert content, url
        if url.endswith(".js") and "swagger-ui-bundle" not in url:
            # Our start-up script: points at the document, turns off the online validator.
            text = content.decode()
            assert '"/api/openapi.json"' in text and "validatorUrl: null" in text
            assert not EXTERNAL_URL.search(text)
    assert "<script>" not in page  # no inline script: the page works under a `script-src 'self'` policy


async def test_only_the_pages_static_files_are_served(client) -> None:
    for name in ("swagger-editor-bundle.js", "swagger-initializer.js", "..%2F__init__.py", "index.css"):
        assert (await client.get(f"/api/docs/static/{name}")).status == 404, name
    answer = await client.get("/api/docs/static/swagger-ui.css")
    assert answer.status == 200 and answer.content_type == "text/css"
