"""The OpenAPI 3.1 description of the API (contract §5, Operations).

It is generated, not written: every route of the app's router becomes an operation, described
by the endpoint it was registered for (``api/routes.py``: summary, tag, request model, answers,
whether an API key is needed, the same declaration the router and the API-key middleware read).
Request body schemas are the pydantic models that validate (``tasks.model.bodies``); response
body schemas are the shapes the answers are built as (``tasks.model.views``, ``api.schemas``),
which the tests hold against real answers.

A route added without an endpoint is still described (marked ``x-authq-undocumented``), and
``tests/api/test_openapi.py`` fails on it. The document is built once per app, on its first
request (``OpenApiDocument``), and served as the same bytes after.
"""

from __future__ import annotations

import json
import re
from importlib import metadata
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from api.operations import (
    ENDPOINTS_BY_ROUTE,
    FORBIDDEN,
    HEADERS,
    JSON,
    PATH_PARAMS,
    RATE_LIMITED,
    STORE_UNAVAILABLE,
    TAGS,
    UNAUTHENTICATED,
    Endpoint,
    Param,
    Reply,
)

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "apiKey"

DESCRIPTION = """\
authq creates and re-authorises *connectors* (authenticated, configured instances through which an
integration platform talks to a third-party system). The HTTP API validates and queues; workers do
the slow work; clients poll the job (or hold the answer with `Prefer: wait=N`).

* JSON in, JSON out. Single records are wrapped as `{"data": {...}}`; lists as
  `{"data": [...], "meta": {...}, "links": {...}}`.
* Authentication: `Authorization: <api-key>` or `Authorization: Bearer <api-key>`. Every record
  belongs to the key's tenant; another tenant's record answers 404, exactly as a missing one does.
* Scopes: a key has some of `manage` (every endpoint described here that needs a key), `proxy` and
  `credentials`; each operation names the one it needs (`x-authq-scope`). A valid key without it:
  403 `{"message": "This API key lacks the <scope> scope."}`, before any record is looked up.
* Errors: `{"message": "..."}`; validation failures (422) add `errors` by dotted field path.
* Times are UTC, ISO 8601 with `Z`. Ids are opaque strings, except connection pool ids (integers).
* Secrets are never returned: where one exists the API shows `"value": null, "has_value": true`.
"""

# -- building the document -------------------------------------------------------------

def openapi_path(canonical: str) -> str:
    """aiohttp's ``/x/{name:regex}`` as OpenAPI's ``/x/{name}``."""
    return re.sub(r"\{([^}:]+):[^}]*\}", r"{\1}", canonical)


def app_operations(app: web.Application) -> dict[tuple[str, str], Endpoint | None]:
    """(method, OpenAPI path) of every route of the app (no HEAD twins, no static directories),
    and the endpoint it was registered for (None: a route added some other way)."""
    endpoints = app.get(ENDPOINTS_BY_ROUTE, {})
    found: dict[tuple[str, str], Endpoint | None] = {}
    for route in app.router.routes():
        if route.method in ("HEAD", "*") or isinstance(route.resource, web.StaticResource):
            continue
        if route.resource is None:
            continue
        found.setdefault((route.method, openapi_path(route.resource.canonical)), endpoints.get(route))
    return found


class _Components:
    def __init__(self) -> None:
        self.schemas: dict[str, dict[str, Any]] = {}

    def add(self, name: str, schema: dict[str, Any]) -> None:
        if name in self.schemas and self.schemas[name] != schema:
            raise ValueError(f"two different schemas are both called {name!r}")
        self.schemas[name] = schema

    def shape(self, shape: Any, mode: Literal["validation", "serialization"]) -> dict[str, Any]:
        """The schema of a model or ``TypedDict`` (and its ``$defs``) into components; a ``$ref`` to it."""
        if isinstance(shape, type) and issubclass(shape, BaseModel):
            schema = shape.model_json_schema(ref_template=REF, mode=mode)
        else:
            schema = TypeAdapter(shape).json_schema(ref_template=REF, mode=mode)
        for name, sub in schema.pop("$defs", {}).items():
            self.add(name, sub)
        self.add(shape.__name__, schema)
        return {"$ref": REF.format(model=shape.__name__)}


def _reply(components: _Components, reply: Reply) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": reply.description}
    if reply.headers:
        answer["headers"] = {name: HEADERS[name] for name in reply.headers}
    if reply.shape is not None:
        answer["content"] = {JSON: {"schema": components.shape(reply.shape, "serialization")}}
    elif reply.media is not None:
        answer["content"] = {reply.media: {"schema": {"type": "object" if reply.media == JSON else "string"}}}
    return answer


def _param(param: Param) -> dict[str, Any]:
    out: dict[str, Any] = {"name": param.name, "in": param.where, "description": param.description,
                           "schema": param.schema}
    if param.required:
        out["required"] = True
    return out


def _operation(components: _Components, method: str, path: str, endpoint: Endpoint | None) -> dict[str, Any]:
    if endpoint is None:
        return {"summary": f"{method} {path}", "tags": ["undocumented"], "x-authq-undocumented": True,
                "responses": {"default": {"description": "Not described yet."}}}
    operation_id = re.sub(r"[^A-Za-z0-9]+", "_", f"{method.lower()}{path}").strip("_")
    out: dict[str, Any] = {"operationId": operation_id, "summary": endpoint.summary, "tags": [endpoint.tag]}
    if endpoint.description:
        out["description"] = endpoint.description
    params = []
    for name in re.findall(r"\{([^}]+)\}", path):
        description, schema = PATH_PARAMS.get(name, (f"The {name}.", {"type": "string"}))
        params.append({"name": name, "in": "path", "required": True, "description": description, "schema": schema})
    params.extend(_param(p) for p in endpoint.params)
    if params:
        out["parameters"] = params
    if endpoint.body is not None or endpoint.body_schema is not None:
        body = endpoint.body_schema if endpoint.body is None else components.shape(endpoint.body, "validation")
        if endpoint.body is not None and endpoint.body_or:
            body = {"oneOf": [body, *(components.shape(other, "validation") for other in endpoint.body_or)]}
        out["requestBody"] = {"required": endpoint.body_required, "content": {endpoint.body_media: {"schema": body}}}
    answers = dict(endpoint.answers)
    if endpoint.key:
        answers.setdefault(401, UNAUTHENTICATED)
        answers.setdefault(403, FORBIDDEN)
        answers.setdefault(429, RATE_LIMITED)
        answers.setdefault(503, STORE_UNAVAILABLE)
    out["responses"] = {str(code): _reply(components, answers[code]) for code in sorted(answers)}
    out["security"] = [{SECURITY_SCHEME: []}] if endpoint.key else []
    if endpoint.key:
        out["x-authq-scope"] = endpoint.scope
    return out


def build_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``: its routes, described by their endpoints."""
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), endpoint in app_operations(app).items():
        paths.setdefault(path, {})[method.lower()] = _operation(components, method, path, endpoint)
    try:
        version = metadata.version("authq")
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    return {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {"title": "authq", "version": version, "description": DESCRIPTION,
                 "license": {"name": "MIT", "identifier": "MIT"}},
        "tags": TAGS,
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.schemas.items())),
            "securitySchemes": {SECURITY_SCHEME: {
                "type": "apiKey", "in": "header", "name": "Authorization",
                "description": "The API key as the whole header value, or as `Bearer <api-key>`."}},
        },
    }


class OpenApiDocument:
    """The app's document, built on first use and kept (as JSON bytes) for the app's life."""

    def __init__(self) -> None:
        self._document: dict[str, Any] | None = None
        self._bytes: bytes | None = None

    def document(self, app: web.Application) -> dict[str, Any]:
        if self._document is None:
            self._document = build_document(app)
        return self._document

    def json_bytes(self, app: web.Application) -> bytes:
        if self._bytes is None:
            self._bytes = json.dumps(self.document(app), ensure_ascii=False, separators=(",", ":")).encode()
        return self._bytes


OPENAPI = web.AppKey("openapi", OpenApiDocument)
