"""The OpenAPI 3.1 description of the API (contract §5, Operations).

It is generated, not written: every route of the app's router becomes an operation, its
method and path taken from the router; ``OPERATIONS`` (``api/operations.py``) adds what the router cannot
know (a summary, a tag, the request model, the answers, whether an API key is needed).
Request body schemas are the pydantic models that validate (``tasks.model.bodies``); response
body schemas are the models of ``api.schemas``, which the tests hold against real answers.

A route without an entry in ``OPERATIONS`` is still described (marked
``x-authq-undocumented``), and ``tests/test_openapi.py`` fails on it. The document is built
once per app, on its first request (``OpenApiDocument``), and served as the same bytes after.
"""

from __future__ import annotations

import json
import re
from importlib import metadata
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from api.operations import (
    DESCRIPTION,
    HEADERS,
    JSON,
    OPENAPI_VERSION,
    OPERATIONS,
    PATH_PARAMS,
    RATE_LIMITED,
    REF,
    SECURITY_SCHEME,
    STORE_UNAVAILABLE,
    TAGS,
    UNAUTHENTICATED,
    Op,
    Param,
    Reply,
)

# -- building the document -------------------------------------------------------------

def openapi_path(canonical: str) -> str:
    """aiohttp's ``/x/{name:regex}`` as OpenAPI's ``/x/{name}``."""
    return re.sub(r"\{([^}:]+):[^}]*\}", r"{\1}", canonical)


def app_operations(app: web.Application) -> list[tuple[str, str]]:
    """(method, OpenAPI path) of every route of the app: no HEAD twins, no static directories."""
    found: list[tuple[str, str]] = []
    for route in app.router.routes():
        if route.method in ("HEAD", "*") or isinstance(route.resource, web.StaticResource):
            continue
        if route.resource is None:
            continue
        key = (route.method, openapi_path(route.resource.canonical))
        if key not in found:
            found.append(key)
    return found


class _Components:
    def __init__(self) -> None:
        self.schemas: dict[str, dict[str, Any]] = {}

    def add(self, name: str, schema: dict[str, Any]) -> None:
        if name in self.schemas and self.schemas[name] != schema:
            raise ValueError(f"two different schemas are both called {name!r}")
        self.schemas[name] = schema

    def model(self, model: type[BaseModel], mode: str) -> dict[str, Any]:
        """The model's own schema (and its ``$defs``) into components; a ``$ref`` to it."""
        schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
        for name, sub in schema.pop("$defs", {}).items():
            self.add(name, sub)
        self.add(model.__name__, schema)
        return {"$ref": REF.format(model=model.__name__)}


def _reply(components: _Components, reply: Reply) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": reply.description}
    if reply.headers:
        answer["headers"] = {name: HEADERS[name] for name in reply.headers}
    if reply.model is not None:
        answer["content"] = {JSON: {"schema": components.model(reply.model, "serialization")}}
    elif reply.media is not None:
        answer["content"] = {reply.media: {"schema": {"type": "object" if reply.media == JSON else "string"}}}
    return answer


def _param(param: Param) -> dict[str, Any]:
    out: dict[str, Any] = {"name": param.name, "in": param.where, "description": param.description,
                           "schema": param.schema}
    if param.required:
        out["required"] = True
    return out


def _operation(components: _Components, method: str, path: str, op: Op | None) -> dict[str, Any]:
    if op is None:
        return {"summary": f"{method} {path}", "tags": ["undocumented"], "x-authq-undocumented": True,
                "responses": {"default": {"description": "Not described yet."}}}
    operation_id = re.sub(r"[^A-Za-z0-9]+", "_", f"{method.lower()}{path}").strip("_")
    out: dict[str, Any] = {"operationId": operation_id, "summary": op.summary, "tags": [op.tag]}
    if op.description:
        out["description"] = op.description
    params = []
    for name in re.findall(r"\{([^}]+)\}", path):
        description, schema = PATH_PARAMS.get(name, (f"The {name}.", {"type": "string"}))
        params.append({"name": name, "in": "path", "required": True, "description": description, "schema": schema})
    params.extend(_param(p) for p in op.params)
    if params:
        out["parameters"] = params
    if op.body is not None or op.body_schema is not None:
        schema = components.model(op.body, "validation") if op.body is not None else op.body_schema
        out["requestBody"] = {"required": op.body_required, "content": {JSON: {"schema": schema}}}
    replies = dict(op.replies)
    if op.api_key:
        replies.setdefault(401, UNAUTHENTICATED)
        replies.setdefault(429, RATE_LIMITED)
        replies.setdefault(503, STORE_UNAVAILABLE)
    out["responses"] = {str(code): _reply(components, replies[code]) for code in sorted(replies)}
    out["security"] = [{SECURITY_SCHEME: []}] if op.api_key else []
    return out


def build_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``: its routes, described by ``OPERATIONS``."""
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    for method, path in app_operations(app):
        paths.setdefault(path, {})[method.lower()] = _operation(components, method, path, OPERATIONS.get((method, path)))
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
