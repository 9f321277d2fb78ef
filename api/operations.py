"""What an endpoint is: ``Endpoint`` (its route, whether it needs an API key, its operation in
the API description) and the words its declaration is made of (answers, parameters, headers).

Every endpoint is declared once, in ``api/routes.py``; the router, the API-key middleware and
the document (``api/openapi.py``) all read that one declaration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_urldispatcher import AbstractRoute
from pydantic import BaseModel

from api import schemas
from api.body import MAX_BODY
from api.idempotency import HEADER as IDEMPOTENCY_HEADER
from api.waiting import MAX_WAIT
from tasks.model.api_keys import Scope

JSON = "application/json"
HTML = "text/html"


@dataclass(frozen=True)
class Reply:
    """One answer of an operation: a JSON body of ``shape`` (a ``TypedDict`` or a model), or
    another media type, or no body."""

    description: str
    shape: Any = None
    media: str | None = None             # a non-JSON body (HTML page, Prometheus text, SSE)
    headers: tuple[str, ...] = ()        # names from HEADERS


@dataclass(frozen=True)
class Param:
    name: str
    where: str                           # "query" | "header"
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True)
class Endpoint:
    """One endpoint: the route (``method``, ``path``, ``handler``), whether a caller needs an API
    key (``key``) and which scope of it (``scope``), and what the API description says of it."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    key: bool = True
    scope: Scope = "manage"
    description: str = ""
    body: type[BaseModel] | None = None          # the model that validates the request body
    body_or: tuple[type[BaseModel], ...] = ()    # other models a body may be instead (one of them validates)
    body_schema: dict[str, Any] | None = None    # a body that no model validates (free-form JSON)
    body_required: bool = True
    body_media: str = JSON                       # the request body's media type (the connect page's forms)
    params: tuple[Param, ...] = ()
    answers: dict[int, Reply] = field(default_factory=dict)


# The app's endpoints by the route each was registered as (``api.routes.setup_routes``).
ENDPOINTS_BY_ROUTE: web.AppKey[dict[AbstractRoute, Endpoint]] = web.AppKey("endpoints_by_route")


# -- the words declarations share ---------------------------------------------------------

HEADERS: dict[str, dict[str, Any]] = {
    "Location": {"description": "Where the created record (or the queued job) can be read.",
                 "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before polling (or retrying) again.",
                    "schema": {"type": "integer", "minimum": 0}},
    "Preference-Applied": {"description": "`wait=N` when a `Prefer: wait=N` request header was honoured.",
                           "schema": {"type": "string"}},
    "WWW-Authenticate": {"description": "`Bearer`.", "schema": {"type": "string"}},
}

PAGE = Param("page", "query", "Page number, from 1.", {"type": "integer", "minimum": 1, "default": 1})
PER_PAGE = Param("per_page", "query", "Items per page (1–100); outside that range: 422.",
                 {"type": "integer", "minimum": 1, "maximum": 100, "default": 15})
PREFER = Param("Prefer", "header",
               f"`wait=N` (N ≤ {MAX_WAIT:g}): hold the answer up to N seconds for the job to finish.",
               {"type": "string", "examples": ["wait=10"]})
IDEMPOTENCY = Param(IDEMPOTENCY_HEADER, "header",
                    "Up to 255 characters. The same key and body within 24 h answers the same job with the "
                    "first answer's status; the same key with another body: 422; a retry while the first "
                    "request is still being accepted: 409.",
                    {"type": "string", "minLength": 1, "maxLength": 255})
SUBMISSION_PARAMS = (PREFER, IDEMPOTENCY)
MIN_TTL = Param("min_ttl", "query", "Seconds the OAuth 2 access token must still be valid for; one that expires "
                "sooner is refreshed first (0–3600, default 60).",
                {"type": "integer", "minimum": 0, "maximum": 3600, "default": 60})
CONNECTOR_FILTERS = tuple(
    Param(f"filter[{name}]", "query", f"Only connectors whose `{name}` is one of these (comma separated). "
          "An unknown `filter[…]` name: 422.", {"type": "string", "examples": [example]})
    for name, example in (("status", "expired,failed"), ("authentication_implementation_id", "shopify-admin-token"),
                          ("system", "shopify"), ("session_id", "ses_0123456789abcdef0123456789abcdef"))) + (
    Param("status", "query", "The same as `filter[status]` (e.g. `?status=expired`: the connectors that need "
          "re-authorising).", {"type": "string", "examples": ["expired"]}),)

# What the API-key middleware may answer instead of any endpoint that needs a key.
UNAUTHENTICATED = Reply("Missing or unknown API key: `{\"message\": \"Unauthenticated.\"}`.", schemas.ErrorBody,
                        headers=("WWW-Authenticate",))
RATE_LIMITED = Reply("Too many requests for this API key (`AUTHQ_API_RATE_LIMIT`, default 100 per second).",
                     schemas.ErrorBody,
                     headers=("Retry-After",))
FORBIDDEN = Reply("The API key is valid but lacks the scope this endpoint needs: "
                  "`{\"message\": \"This API key lacks the <scope> scope.\"}`, whatever the path's id.",
                  schemas.ErrorBody)
STORE_UNAVAILABLE = Reply("The service's store (Redis) is unavailable just now; retry.", schemas.ErrorBody,
                          headers=("Retry-After",))

INVALID = Reply("Validation failed; `errors` holds messages by dotted field path.", schemas.ValidationErrorBody)
BODY_ERRORS = {
    400: Reply("The body is not valid JSON.", schemas.ErrorBody),
    413: Reply(f"The body is larger than {MAX_BODY} bytes.", schemas.ErrorBody),
    415: Reply("The body is not sent as `application/json`.", schemas.ErrorBody),
    422: INVALID,
}
JOB_ACCEPTED = {
    202: Reply("Queued: the job, to poll at `Location`.", schemas.JobResponse,
               headers=("Location", "Retry-After", "Preference-Applied")),
    200: Reply("With `Prefer: wait=N`: the job ended within N seconds; the finished job.",
               schemas.JobResponse, headers=("Location", "Preference-Applied")),
    409: Reply("A request with the same `Idempotency-Key` is still being accepted.", schemas.ErrorBody,
               headers=("Retry-After",)),
    429: Reply("Too many requests for this API key (`AUTHQ_API_RATE_LIMIT`), or the tenant has too many jobs "
               "queued or running (`AUTHQ_MAX_QUEUED_PER_TENANT`).", schemas.ErrorBody, headers=("Retry-After",)),
    503: Reply("The job queue (or the store) is unavailable; nothing was queued.", schemas.ErrorBody,
               headers=("Retry-After",)),
}


def not_found(what: str) -> dict[int, Reply]:
    return {404: Reply(f"No such {what} for this API key's tenant.", schemas.ErrorBody)}


def created(shape: Any, what: str) -> dict[int, Reply]:
    return {201: Reply(f"The {what}, created.", shape, headers=("Location",))}


def listed(shape: Any, what: str) -> dict[int, Reply]:
    return {200: Reply(f"A page of {what}.", shape),
            422: Reply("`page` or `per_page` out of range.", schemas.ValidationErrorBody)}


def pages(description: str, *codes: int) -> dict[int, Reply]:
    """HTML pages a browser is shown."""
    return {code: Reply(description, media=HTML) for code in codes}


# The tags endpoints are grouped by, in the document's order.
TAGS = [
    {"name": "authorisation", "description": "Create and re-authorise connectors; the providers' callbacks."},
    {"name": "jobs", "description": "Follow queued work."},
    {"name": "connection pools", "description": "Concurrency limits shared by connectors."},
    {"name": "certificates", "description": "Client certificates for mutual TLS to providers."},
    {"name": "sessions", "description": "Short-lived connect sessions for one end user."},
    {"name": "connectors", "description": "The configured, authenticated connectors."},
    {"name": "catalog", "description": "The authentication implementations connectors are made of."},
    {"name": "permits", "description": "Permits of a connector's rate limit and pool, for the platform's own calls."},
    {"name": "proxy", "description": "The platform's requests to a connector's provider, credentials added, "
                                     "governed."},
    {"name": "connect page", "description": "Hosted HTML pages through which an end user connects a system, "
                                            "opened by a session's `connect_url` (no API key: the token is the "
                                            "credential)."},
    {"name": "audit log", "description": "Who changed what, kept 90 days."},
    {"name": "operations", "description": "At the root, no API key."},
]

# The parameters paths name, by name.
PATH_PARAMS: dict[str, tuple[str, dict[str, Any]]] = {
    "connector": ("The connector's id.", {"type": "string"}),
    "job": ("The job's id.", {"type": "string"}),
    "path": ("The provider path under the implementation's `base_url`.", {"type": "string"}),
    "pool": ("The connection pool's id (an integer).", {"type": "integer", "minimum": 1}),
    "certificate": ("The certificate's id.", {"type": "string"}),
    "session": ("The session's id.", {"type": "string"}),
    "permit": ("The permit's id.", {"type": "string"}),
    "implementation": ("The implementation's id in the catalog (`authentication_implementation_id`).",
                       {"type": "string"}),
    "file": ("A file name.", {"type": "string"}),
    "token": ("The connect page's token, from the session's `connect_url`.", {"type": "string"}),
}
