"""What the router cannot know about each endpoint, for the OpenAPI document: summary,
tag, request model, answers, parameters, whether an API key is needed (``api/openapi.py``
turns this and the router into the document)."""


from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from api import schemas
from api.body import MAX_BODY
from api.idempotency import HEADER as IDEMPOTENCY_HEADER
from api.waiting import MAX_WAIT
from tasks.model.bodies import (
    AuthenticateIn,
    AuthoriseIn,
    CertificateIn,
    ConnectionPoolIn,
    ReauthoriseIn,
    SessionIn,
    WooCallbackIn,
)

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "apiKey"
JSON = "application/json"
HTML = "text/html"


# -- the declarative registry ----------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    """One answer of an operation: a JSON body described by ``model``, or another media type."""

    description: str
    model: type[BaseModel] | None = None
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
class Op:
    summary: str
    tag: str
    api_key: bool = True
    description: str = ""
    body: type[BaseModel] | None = None
    body_schema: dict[str, Any] | None = None   # a body that no model validates (free-form JSON)
    body_required: bool = True
    params: tuple[Param, ...] = ()
    replies: dict[int, Reply] = field(default_factory=dict)


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

UNAUTHENTICATED = Reply("Missing or unknown API key: `{\"message\": \"Unauthenticated.\"}`.", schemas.ErrorBody,
                        headers=("WWW-Authenticate",))
RATE_LIMITED = Reply("Too many requests for this API key (when `AUTHQ_API_RATE_LIMIT` is set).", schemas.ErrorBody,
                     headers=("Retry-After",))
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
SUBMISSION_PARAMS = (PREFER, IDEMPOTENCY)


def _not_found(what: str) -> dict[int, Reply]:
    return {404: Reply(f"No such {what} for this API key's tenant.", schemas.ErrorBody)}


def _created(model: type[BaseModel], what: str) -> dict[int, Reply]:
    return {201: Reply(f"The {what}, created.", model, headers=("Location",))}


def _listed(model: type[BaseModel], what: str) -> dict[int, Reply]:
    return {200: Reply(f"A page of {what}.", model), 422: Reply("`page` or `per_page` out of range.",
                                                                schemas.ValidationErrorBody)}


def _page(description: str, *codes: int) -> dict[int, Reply]:
    return {code: Reply(description, media=HTML) for code in codes}


V1 = "/api/v1"
OPERATIONS: dict[tuple[str, str], Op] = {
    # Authorisation
    ("POST", f"{V1}/oauth/authorise"): Op(
        "Authorise a new connector", "authorisation", body=AuthoriseIn, params=SUBMISSION_PARAMS,
        description="Validates and queues an `authorise` job. The connector id is chosen now and is in the job "
                    "(`connector_id`). Rules that need the catalog (the implementation exists; every required "
                    "variable has a value unless a platform app supplies it) answer 422 as well.",
        replies={**JOB_ACCEPTED, **BODY_ERRORS}),
    ("PATCH", f"{V1}/oauth/{{connector}}/reauthorise"): Op(
        "Re-authorise a connector", "authorisation", body=ReauthoriseIn, params=SUBMISSION_PARAMS,
        description="The authorise fields, all optional, plus `type` (must equal the implementation's auth type) "
                    "and `variables.*.id`. The connector keeps its working credentials until new ones replace them.",
        replies={**JOB_ACCEPTED, **BODY_ERRORS, **_not_found("connector")}),
    ("POST", f"{V1}/oauth/authenticate"): Op(
        "Finish an authorization-code flow (front end)", "authorisation", body=AuthenticateIn,
        params=SUBMISSION_PARAMS,
        description="`{code, state}` (or `{error, error_description, state}` when the user refused), forwarded "
                    "by a front end that received the provider's redirect. An unknown, used or expired state gives "
                    "a job that fails with `state_invalid`.",
        replies={**JOB_ACCEPTED, **BODY_ERRORS}),
    ("GET", f"{V1}/oauth/authenticate"): Op(
        "The provider's redirect (authorization code)", "authorisation", api_key=False,
        description="Authenticated by the single-use state. Queues the `authenticate` job, then redirects to the "
                    "session's `return_url` (with `connector_id` and `job_id`) or shows a page that follows the job.",
        params=(Param("state", "query", "The state authq issued.", required=True),
                Param("code", "query", "The authorization code."),
                Param("error", "query", "The provider's error (e.g. `access_denied`)."),
                Param("error_description", "query", "The provider's description of the error."),
                Param("iss", "query", "The issuer of the authorization response (RFC 9207).")),
        replies={303: Reply("To the session's `return_url`, with `connector_id` and `job_id`.",
                            headers=("Location",)),
                 **_page("A page that follows the job to its end.", 200),
                 **_page("The state was never issued, was already used or has expired; or the answer is malformed.",
                         400),
                 **_page("The job could not be queued; reload to retry.", 503)}),
    ("GET", f"{V1}/oauth/authenticate/status"): Op(
        "The page following an authentication job", "authorisation", api_key=False,
        params=(Param("state", "query", "The state of the callback.", required=True),),
        replies={**_page("The job's state; refreshes itself until the job ends.", 200),
                 **_page("Nothing to show for this state any more.", 404)}),
    ("POST", f"{V1}/oauth/woo-app-auth"): Op(
        "WooCommerce posts the store's API keys", "authorisation", api_key=False, body=WooCallbackIn,
        description="`user_id` is the state authq put in the redirect. Answers 200 with an empty body only after "
                    "the keys are stored; then a job verifies them and finishes the connector.",
        replies={200: Reply("The keys are stored (empty body)."),
                 **BODY_ERRORS,
                 404: Reply("Unknown or already used state.", schemas.ErrorBody),
                 503: JOB_ACCEPTED[503]}),
    ("GET", f"{V1}/oauth/woo-app-auth"): Op(
        "Where WooCommerce sends the store owner back", "authorisation", api_key=False,
        params=(Param("user_id", "query", "The state authq put in the redirect.", required=True),
                Param("success", "query", "`1` when the owner approved, `0` when not.")),
        replies={**_page("The connection's progress; refreshes itself until it ends.", 200),
                 **_page("The state was never issued or has expired.", 400),
                 **_page("Nothing to show for this state any more.", 404)}),
    # Jobs
    ("GET", f"{V1}/jobs/{{job}}"): Op(
        "Show a job", "jobs", params=(PREFER,),
        replies={200: Reply("The job; `Retry-After` while it has not ended.", schemas.JobResponse,
                            headers=("Retry-After", "Preference-Applied")),
                 **_not_found("job")}),
    ("GET", f"{V1}/jobs/{{job}}/events"): Op(
        "Follow a job as server-sent events", "jobs",
        description="The job's changes as a server-sent event stream: each event is `event: job`, an `id` that "
                    "counts up, and `data`: the job as `GET /jobs/{job}` shows it in `data` (the `JobView` schema). "
                    "Comment lines keep a quiet stream open. The stream ends after the job's finished state.",
        params=(Param("Last-Event-ID", "header", "A reconnecting client's last event id: ids continue from it.",
                      {"type": "integer", "minimum": 0}),),
        replies={200: Reply("An event stream of the job's states.", media="text/event-stream"),
                 **_not_found("job")}),
    # Connection pools
    ("POST", f"{V1}/connection-pools"): Op(
        "Create a connection pool", "connection pools", body=ConnectionPoolIn,
        replies={**_created(schemas.PoolResponse, "connection pool"), **BODY_ERRORS}),
    ("GET", f"{V1}/connection-pools"): Op(
        "List connection pools", "connection pools", params=(PAGE, PER_PAGE),
        replies=_listed(schemas.PoolPage, "connection pools")),
    ("GET", f"{V1}/connection-pools/{{pool}}"): Op(
        "Show a connection pool", "connection pools",
        replies={200: Reply("The connection pool.", schemas.PoolResponse), **_not_found("connection pool")}),
    ("DELETE", f"{V1}/connection-pools/{{pool}}"): Op(
        "Delete a connection pool", "connection pools",
        replies={204: Reply("Deleted."), **_not_found("connection pool")}),
    # Certificates
    ("POST", f"{V1}/certificates"): Op(
        "Upload a client certificate", "certificates", body=CertificateIn,
        description="`certificate` is PEM: the certificate and its private key. 422 if it does not parse or the "
                    "key does not match (`certificate`), or the passphrase is wrong (`passphrase`). The key is "
                    "never shown again.",
        replies={**_created(schemas.CertificateResponse, "certificate"), **BODY_ERRORS}),
    ("GET", f"{V1}/certificates"): Op(
        "List certificates", "certificates", params=(PAGE, PER_PAGE),
        replies=_listed(schemas.CertificatePage, "certificates")),
    ("GET", f"{V1}/certificates/{{certificate}}"): Op(
        "Show a certificate", "certificates",
        replies={200: Reply("The certificate (never its key).", schemas.CertificateResponse),
                 **_not_found("certificate")}),
    ("DELETE", f"{V1}/certificates/{{certificate}}"): Op(
        "Delete a certificate", "certificates", replies={204: Reply("Deleted."), **_not_found("certificate")}),
    # Sessions
    ("POST", f"{V1}/sessions"): Op(
        "Create a connect session", "sessions", body=SessionIn,
        replies={**_created(schemas.SessionResponse, "session"), **BODY_ERRORS}),
    ("GET", f"{V1}/sessions/{{session}}"): Op(
        "Show a connect session", "sessions",
        replies={200: Reply("The session.", schemas.SessionResponse), **_not_found("session")}),
    # Connectors
    ("GET", f"{V1}/connectors"): Op(
        "List connectors", "connectors", params=(PAGE, PER_PAGE), replies=_listed(schemas.ConnectorPage, "connectors")),
    ("GET", f"{V1}/connectors/{{connector}}"): Op(
        "Show a connector", "connectors",
        replies={200: Reply("The connector (no secret values).", schemas.ConnectorResponse),
                 **_not_found("connector")}),
    ("DELETE", f"{V1}/connectors/{{connector}}"): Op(
        "Delete a connector", "connectors", replies={204: Reply("Deleted."), **_not_found("connector")}),
    ("POST", f"{V1}/connectors/{{connector}}/refresh"): Op(
        "Refresh a connector's credentials", "connectors", params=SUBMISSION_PARAMS,
        body_schema={"type": "object", "description": "No fields; a body, if sent, must be JSON."},
        body_required=False,
        description="Queues a `refresh` job: a new access token from the refresh token, or from the client "
                    "credentials.",
        replies={**JOB_ACCEPTED, **BODY_ERRORS, **_not_found("connector")}),
    # Operations
    ("GET", "/healthz"): Op("The process is up", "operations", api_key=False,
                            replies={200: Reply("Up.", schemas.Health)}),
    ("GET", "/readyz"): Op(
        "Ready to serve", "operations", api_key=False,
        description="Redis answers and a worker has been seen in the last 30 s.",
        replies={200: Reply("Ready.", schemas.Ready), 503: Reply("Not ready, and why.", schemas.NotReady)}),
    ("GET", "/metrics"): Op(
        "Prometheus metrics", "operations", api_key=False,
        description="Requests, jobs by type and outcome, job durations, queue depth, retries.",
        replies={200: Reply("The Prometheus text exposition format.", media="text/plain")}),
    ("GET", "/api/openapi.json"): Op(
        "This API description", "operations", api_key=False,
        replies={200: Reply("The OpenAPI 3.1 document.", media=JSON)}),
    ("GET", "/api/docs"): Op(
        "This API description, to read", "operations", api_key=False,
        replies={200: Reply("A page rendering the description with Swagger UI (served locally).", media=HTML)}),
    ("GET", "/api/docs/static/{file}"): Op(
        "The documentation page's static files", "operations", api_key=False,
        replies={200: Reply("Swagger UI's scripts, style sheet and icons.", media="application/octet-stream"),
                 404: Reply("No such file.", schemas.ErrorBody)}),
}

TAGS = [
    {"name": "authorisation", "description": "Create and re-authorise connectors; the providers' callbacks."},
    {"name": "jobs", "description": "Follow queued work."},
    {"name": "connection pools", "description": "Concurrency limits shared by connectors."},
    {"name": "certificates", "description": "Client certificates for mutual TLS to providers."},
    {"name": "sessions", "description": "Short-lived connect sessions for one end user."},
    {"name": "connectors", "description": "The configured, authenticated connectors."},
    {"name": "operations", "description": "At the root, no API key."},
]

PATH_PARAMS: dict[str, tuple[str, dict[str, Any]]] = {
    "connector": ("The connector's id.", {"type": "string"}),
    "job": ("The job's id.", {"type": "string"}),
    "pool": ("The connection pool's id (an integer).", {"type": "integer", "minimum": 1}),
    "certificate": ("The certificate's id.", {"type": "string"}),
    "session": ("The session's id.", {"type": "string"}),
    "file": ("A file name.", {"type": "string"}),
}

DESCRIPTION = """\
authq creates and re-authorises *connectors* (authenticated, configured instances through which an
integration platform talks to a third-party system). The HTTP API validates and queues; workers do
the slow work; clients poll the job (or hold the answer with `Prefer: wait=N`).

* JSON in, JSON out. Single records are wrapped as `{"data": {...}}`; lists as
  `{"data": [...], "meta": {...}, "links": {...}}`.
* Authentication: `Authorization: <api-key>` or `Authorization: Bearer <api-key>`. Every record
  belongs to the key's tenant; another tenant's record answers 404, exactly as a missing one does.
* Errors: `{"message": "..."}`; validation failures (422) add `errors` by dotted field path.
* Times are UTC, ISO 8601 with `Z`. Ids are opaque strings, except connection pool ids (integers).
* Secrets are never returned: where one exists the API shows `"value": null, "has_value": true`.
"""
