"""Every endpoint, declared once: its route, whether it needs an API key, and how the API
description shows it (``api.operations.Endpoint``).

``setup_routes`` registers them in this order (methods of one path next to each other share
its resource, so a wrong method answers 405 with their ``Allow``).
"""

from __future__ import annotations

from aiohttp import web

from api import schemas
from api.connect.routes import ENDPOINTS as CONNECT_PAGE
from api.operations import (
    BODY_ERRORS,
    CONNECTOR_FILTERS,
    ENDPOINTS_BY_ROUTE,
    HTML,
    JOB_ACCEPTED,
    JSON,
    MIN_TTL,
    PAGE,
    PER_PAGE,
    PREFER,
    SUBMISSION_PARAMS,
    Endpoint,
    Param,
    Reply,
    created,
    listed,
    not_found,
    pages,
)
from api.views import (
    audit,
    certificates,
    connectors,
    credentials,
    docs,
    implementations,
    jobs,
    oauth,
    ops,
    permits,
    pools,
    proxy,
    sessions,
    webhooks,
)
from tasks.model.audit import AUDIT_TYPES
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
from tasks.model.webhooks import WebhookIn

V1 = "/api/v1"

ENDPOINTS: tuple[Endpoint, ...] = (
    # Authorisation
    Endpoint(
        "POST", f"{V1}/oauth/authorise", oauth.authorise, "Authorise a new connector", "authorisation",
        body=AuthoriseIn, params=SUBMISSION_PARAMS,
        description="Validates and queues an `authorise` job. The connector id is chosen now and is in the job "
                    "(`connector_id`). Rules that need the catalog (the implementation exists; every required "
                    "variable has a value unless a platform app supplies it) answer 422 as well.",
        answers={**JOB_ACCEPTED, **BODY_ERRORS}),
    Endpoint(
        "PATCH", f"{V1}/oauth/{{connector}}/reauthorise", oauth.reauthorise, "Re-authorise a connector",
        "authorisation", body=ReauthoriseIn, params=SUBMISSION_PARAMS,
        description="The authorise fields, all optional, plus `type` (must equal the implementation's auth type) "
                    "and `variables.*.id`. The connector keeps its working credentials until new ones replace them.",
        answers={**JOB_ACCEPTED, **BODY_ERRORS, **not_found("connector")}),
    Endpoint(
        "POST", f"{V1}/oauth/authenticate", oauth.authenticate, "Finish an authorization-code flow (front end)",
        "authorisation", body=AuthenticateIn, body_or=(OAuth1AuthenticateIn,), params=SUBMISSION_PARAMS,
        description="`{code, state}` (or `{error, error_description, state}` when the user refused), forwarded "
                    "by a front end that received the provider's redirect; for an `oauth1` connector "
                    "`{oauth_token, oauth_verifier}`. An unknown, used or expired state (or request token) gives "
                    "a job that fails with `state_invalid`.",
        answers={**JOB_ACCEPTED, **BODY_ERRORS}),
    # Called by providers (or the browsers they send back), authenticated by the single-use
    # state they carry (contract §5), not by an API key.
    Endpoint(
        "GET", f"{V1}/oauth/authenticate", oauth.authenticate_redirect,
        "The provider's redirect (authorization code, OAuth 1.0a)", "authorisation", key=False,
        description="Authenticated by the single-use state (for OAuth 1.0a, the request token in `oauth_token`). "
                    "Queues the `authenticate` job, then redirects to the session's `return_url` (with "
                    "`connector_id` and `job_id`) or shows a page that follows the job.",
        params=(Param("state", "query", "The state authq issued (OAuth 2)."),
                Param("oauth_token", "query", "The request token (OAuth 1.0a), instead of `state`."),
                Param("oauth_verifier", "query", "The verifier the provider gave with the request token (OAuth 1.0a)."),
                Param("code", "query", "The authorization code."),
                Param("error", "query", "The provider's error (e.g. `access_denied`)."),
                Param("error_description", "query", "The provider's description of the error."),
                Param("iss", "query", "The issuer of the authorization response (RFC 9207).")),
        answers={303: Reply("To the session's `return_url`, with `connector_id` and `job_id`.",
                            headers=("Location",)),
                 **pages("A page that follows the job to its end.", 200),
                 **pages("The state was never issued, was already used or has expired; or the answer is malformed.",
                         400),
                 **pages("The job could not be queued; reload to retry.", 503)}),
    Endpoint(
        "GET", f"{V1}/oauth/authenticate/status", oauth.authenticate_status,
        "The page following an authentication job", "authorisation", key=False,
        params=(Param("state", "query", "The state of the callback.", required=True),),
        answers={**pages("The job's state; refreshes itself until the job ends.", 200),
                 **pages("Nothing to show for this state any more.", 404)}),
    Endpoint(
        "POST", f"{V1}/oauth/woo-app-auth", oauth.woo_app_auth, "WooCommerce posts the store's API keys",
        "authorisation", key=False, body=WooCallbackIn,
        description="`user_id` is the state authq put in the redirect. Answers 200 with an empty body only after "
                    "the keys are stored; then a job verifies them and finishes the connector.",
        answers={200: Reply("The keys are stored (empty body)."),
                 **BODY_ERRORS,
                 404: Reply("Unknown or already used state.", schemas.ErrorBody),
                 503: JOB_ACCEPTED[503]}),
    Endpoint(
        "GET", f"{V1}/oauth/woo-app-auth", oauth.woo_return, "Where WooCommerce sends the store owner back",
        "authorisation", key=False,
        params=(Param("user_id", "query", "The state authq put in the redirect.", required=True),
                Param("success", "query", "`1` when the owner approved, `0` when not.")),
        answers={**pages("The connection's progress; refreshes itself until it ends.", 200),
                 **pages("The state was never issued or has expired.", 400),
                 **pages("Nothing to show for this state any more.", 404)}),
    # Jobs
    Endpoint(
        "GET", f"{V1}/jobs/{{job}}", jobs.show, "Show a job", "jobs", params=(PREFER,),
        answers={200: Reply("The job; `Retry-After` while it has not ended.", schemas.JobResponse,
                            headers=("Retry-After", "Preference-Applied")),
                 **not_found("job")}),
    Endpoint(
        "GET", f"{V1}/jobs/{{job}}/events", jobs.events, "Follow a job as server-sent events", "jobs",
        description="The job's changes as a server-sent event stream: each event is `event: job`, an `id` that "
                    "counts up, and `data`: the job as `GET /jobs/{job}` shows it in `data` (the `JobView` schema). "
                    "Comment lines keep a quiet stream open. The stream ends after the job's finished state, or "
                    "after `AUTHQ_STREAM_MAX_SECONDS` (10 minutes) with `event: reconnect`: reconnect with "
                    "`Last-Event-ID`. One API key holds at most 50 open streams.",
        params=(Param("Last-Event-ID", "header", "A reconnecting client's last event id: ids continue from it.",
                      {"type": "integer", "minimum": 0}),),
        answers={200: Reply("An event stream of the job's states.", media="text/event-stream"),
                 429: Reply("This API key has 50 event streams open already (or `AUTHQ_API_RATE_LIMIT` is "
                            "exceeded).", schemas.ErrorBody, headers=("Retry-After",)),
                 **not_found("job")}),
    # Connection pools
    Endpoint(
        "POST", f"{V1}/connection-pools", pools.create, "Create a connection pool", "connection pools",
        body=ConnectionPoolIn, answers={**created(schemas.PoolResponse, "connection pool"), **BODY_ERRORS}),
    Endpoint(
        "GET", f"{V1}/connection-pools", pools.index, "List connection pools", "connection pools",
        params=(PAGE, PER_PAGE), answers=listed(schemas.PoolPage, "connection pools")),
    Endpoint(
        "GET", f"{V1}/connection-pools/{{pool}}", pools.show, "Show a connection pool", "connection pools",
        answers={200: Reply("The connection pool.", schemas.PoolResponse), **not_found("connection pool")}),
    Endpoint(
        "DELETE", f"{V1}/connection-pools/{{pool}}", pools.delete, "Delete a connection pool", "connection pools",
        answers={204: Reply("Deleted."), **not_found("connection pool")}),
    # Certificates
    Endpoint(
        "POST", f"{V1}/certificates", certificates.create, "Upload a client certificate", "certificates",
        body=CertificateIn,
        description="`certificate` is PEM: the certificate and its private key. 422 if it does not parse or the "
                    "key does not match (`certificate`), or the passphrase is wrong (`passphrase`). The key is "
                    "never shown again.",
        answers={**created(schemas.CertificateResponse, "certificate"), **BODY_ERRORS}),
    Endpoint(
        "GET", f"{V1}/certificates", certificates.index, "List certificates", "certificates",
        params=(PAGE, PER_PAGE), answers=listed(schemas.CertificatePage, "certificates")),
    Endpoint(
        "GET", f"{V1}/certificates/{{certificate}}", certificates.show, "Show a certificate", "certificates",
        answers={200: Reply("The certificate (never its key).", schemas.CertificateResponse),
                 **not_found("certificate")}),
    Endpoint(
        "DELETE", f"{V1}/certificates/{{certificate}}", certificates.delete, "Delete a certificate", "certificates",
        answers={204: Reply("Deleted."), **not_found("certificate")}),
    # Sessions
    Endpoint(
        "POST", f"{V1}/sessions", sessions.create, "Create a connect session", "sessions", body=SessionIn,
        answers={**created(schemas.SessionResponse, "session"), **BODY_ERRORS}),
    Endpoint(
        "GET", f"{V1}/sessions/{{session}}", sessions.show, "Show a connect session", "sessions",
        answers={200: Reply("The session.", schemas.SessionResponse), **not_found("session")}),
    # Connectors
    Endpoint(
        "GET", f"{V1}/connectors", connectors.index, "List connectors", "connectors",
        params=(PAGE, PER_PAGE, *CONNECTOR_FILTERS),
        answers={**listed(schemas.ConnectorPage, "connectors"),
                 422: Reply("`page` or `per_page` out of range, an unknown `filter[…]` name or an unknown status.",
                            schemas.ValidationErrorBody)}),
    Endpoint(
        "GET", f"{V1}/connectors/{{connector}}", connectors.show, "Show a connector", "connectors",
        answers={200: Reply("The connector (no secret values).", schemas.ConnectorResponse),
                 **not_found("connector")}),
    Endpoint(
        "GET", f"{V1}/connectors/{{connector}}/credentials", credentials.show, "Read a connector's credentials",
        "connectors", params=(MIN_TTL,), scope="credentials",
        description="The headers and query a request to the provider must carry, and the type's usable values "
                    "(never a refresh token, client secret, private key or passphrase); `Cache-Control: no-store`. "
                    "An OAuth 2 token that expires within `min_ttl` seconds is refreshed first (single-flight, "
                    "waiting at most 30 s).",
        answers={200: Reply("The credentials, ready to use.", schemas.CredentialsResponse),
                 409: Reply("The connector is not `authorised` (a refresh the provider refused makes it `expired`).",
                            schemas.ConflictBody),
                 422: Reply("`min_ttl` is not an integer from 0 to 3600.", schemas.ValidationErrorBody),
                 503: Reply("The token had to be refreshed and the provider could not be reached in time.",
                            schemas.ErrorBody, headers=("Retry-After",)),
                 **not_found("connector")}),
    Endpoint(
        "DELETE", f"{V1}/connectors/{{connector}}", connectors.delete, "Delete a connector", "connectors",
        answers={204: Reply("Deleted."), **not_found("connector")}),
    Endpoint(
        "POST", f"{V1}/connectors/{{connector}}/refresh", connectors.refresh, "Refresh a connector's credentials",
        "connectors", params=SUBMISSION_PARAMS,
        body_schema={"type": "object", "description": "No fields; a body, if sent, must be JSON."},
        body_required=False,
        description="Queues a `refresh` job: a new access token from the refresh token, or from the client "
                    "credentials. A connector that has never been authorised: 409 with its `status`.",
        answers={**JOB_ACCEPTED, **BODY_ERRORS, **not_found("connector"),
                 409: Reply("The connector has never been authorised (`status` is its status), or a request with the "
                            "same `Idempotency-Key` is still being accepted.", schemas.ConflictBody,
                            headers=("Retry-After",))}),
    # The catalog
    Endpoint(
        "GET", f"{V1}/implementations", implementations.index, "List the catalog's implementations", "catalog",
        params=(PAGE, PER_PAGE),
        description="The authentication implementations of the catalog, in its order, as a client needs them: "
                    "`type`, `scopes`, the `variables` a connector is given (a secret one's `default` is always "
                    "null), whether the proxy can reach the provider (`proxy`) and the `defaults` it suggests. "
                    "The same for every tenant; never a URL, a token setting or anything of a platform app.",
        answers=listed(schemas.ImplementationPage, "implementations")),
    Endpoint(
        "GET", f"{V1}/implementations/{{implementation}}", implementations.show, "Show an implementation", "catalog",
        answers={200: Reply("The implementation.", schemas.ImplementationResponse),
                 404: Reply("No implementation of the catalog has this id.", schemas.ErrorBody)}),
    # Permits: the platform's own calls, governed by the connector's rate limit and pool
    Endpoint(
        "POST", f"{V1}/connectors/{{connector}}/permits", permits.create, "Take a permit to call the provider",
        "permits", body=PermitIn, body_required=False, scope="proxy",
        description="For a call the platform makes itself: a permit of the connector's rate limit and, when the "
                    "connector is in a connection pool, a slot of the pool, taken together (the same limits "
                    "authq's own calls take, shared fleet-wide). Over a limit the request waits up to "
                    "`wait_seconds` (0–30, default 0), in line behind earlier waiters, then answers 429 with "
                    "`code` and `Retry-After`. The slot is held until `DELETE /permits/{permit}` or "
                    "`expires_at` (the pool's `timeout`, default 30 s). A permit has no `Location`: it is not "
                    "a record one reads back.",
        answers={201: Reply("The permit: a rate-limit permit taken and, in a pool, a slot held.",
                            schemas.PermitResponse),
                 **BODY_ERRORS, **not_found("connector"),
                 409: Reply("The connector is not `authorised` (`status` is its status).", schemas.ConflictBody),
                 429: Reply("No permit within `wait_seconds`: `code` says which limit held it (`rate_limited`, a "
                            "provider's 429 included, or `pool_exhausted`); `Retry-After` when one could be free. "
                            "(Or `AUTHQ_API_RATE_LIMIT` is exceeded: then the body has no `code`.)",
                            schemas.RefusalBody, headers=("Retry-After",))}),
    Endpoint(
        "DELETE", f"{V1}/permits/{{permit}}", permits.delete, "Free a permit's slot", "permits", scope="proxy",
        description="Frees the pool slot the permit holds (waiters for it are served at once). The rate-limit "
                    "permit stays spent.",
        answers={204: Reply("Freed."),
                 404: Reply("No such permit for this API key's tenant, or it was freed already or has expired.",
                            schemas.ErrorBody)}),
    # Webhooks
    Endpoint(
        "POST", f"{V1}/webhooks", webhooks.create, "Register a webhook endpoint", "webhooks", body=WebhookIn,
        description="The endpoint hears the event types in `events` (default: all; `ping` always): "
                    "`connector.authorised`, `connector.failed`, `connector.expired`, `connector.deleted`, "
                    "`job.succeeded`, `job.failed`. Messages follow Standard Webhooks, signed with `secret`, which "
                    "this answer alone shows. `url` must be `https://` (or `http://` where "
                    "AUTHQ_ALLOW_PRIVATE_NETWORKS allows it); where it leads is checked at every delivery.",
        answers={**created(schemas.WebhookCreatedResponse, "webhook"), **BODY_ERRORS}),
    Endpoint(
        "GET", f"{V1}/webhooks", webhooks.index, "List webhook endpoints", "webhooks",
        params=(PAGE, PER_PAGE), answers=listed(schemas.WebhookPage, "webhook endpoints")),
    Endpoint(
        "GET", f"{V1}/webhooks/{{webhook}}", webhooks.show, "Show a webhook endpoint", "webhooks",
        answers={200: Reply("The endpoint (never its secret).", schemas.WebhookResponse), **not_found("webhook")}),
    Endpoint(
        "DELETE", f"{V1}/webhooks/{{webhook}}", webhooks.delete, "Delete a webhook endpoint", "webhooks",
        description="Nothing more is sent to it, deliveries still due included.",
        answers={204: Reply("Deleted."), **not_found("webhook")}),
    Endpoint(
        "POST", f"{V1}/webhooks/{{webhook}}/test", webhooks.test, "Send a ping to a webhook endpoint", "webhooks",
        body_schema={"type": "object", "description": "No fields; a body, if sent, must be JSON."},
        body_required=False,
        description="Queues a `ping` message to this endpoint alone, delivered (and retried) like any other; "
                    "its delivery appears in `GET /webhooks/{webhook}/deliveries`.",
        answers={202: Reply("The ping's delivery, pending.", schemas.DeliveryResponse, headers=("Location",)),
                 **BODY_ERRORS, **not_found("webhook"),
                 409: Reply("The endpoint is disabled (it answered 410 Gone).", schemas.ErrorBody)}),
    Endpoint(
        "GET", f"{V1}/webhooks/{{webhook}}/deliveries", webhooks.deliveries, "List a webhook endpoint's deliveries",
        "webhooks", params=(PAGE, PER_PAGE),
        description="Newest first, kept 8 days: each event sent to the endpoint, its `status` (`pending`, "
                    "`delivered`, `retrying`, `failed`), attempts, the last answer and the next attempt's time.",
        answers={**listed(schemas.DeliveryPage, "deliveries"), **not_found("webhook")}),
    # The audit log
    Endpoint(
        "GET", f"{V1}/audit-events", audit.index, "List audit events", "audit log",
        description="The tenant's audit events, newest first: who (`actor`: the API key's id and the client's "
                    "address) changed what (`type`, `connector_id`, `details`: never a secret) and when. "
                    "Kept 90 days. An unknown query parameter, a `connector_id` that is not a connector id or "
                    "an unknown `type` is a 422.",
        params=(Param("connector_id", "query", "Only the events of this connector (it may be deleted since).",
                      {"type": "string", "pattern": "^con_[0-9a-f]{32}$"}),
                Param("type", "query", "Only the events of this type.", {"type": "string", "enum": list(AUDIT_TYPES)}),
                PAGE, PER_PAGE),
        answers={200: Reply("A page of audit events, newest first.", schemas.AuditEventPage),
                 422: Reply("An unknown filter, a malformed one, or `page` / `per_page` out of range.",
                            schemas.ValidationErrorBody)}),
    # The connect page (§11): HTML, at the root
    *CONNECT_PAGE,
    # Operations, at the root
    Endpoint(
        "GET", "/", ops.index, "Where to go from here", "operations", key=False,
        description="Links to the API, its documentation, the metrics and (with `authq up --demo`) the demo "
                    "provider: JSON, or a page of links for a client that accepts `text/html` (a browser).",
        answers={200: Reply("The links.", schemas.Index)}),
    Endpoint(
        "GET", "/healthz", ops.healthz, "The process is up", "operations", key=False,
        answers={200: Reply("Up.", schemas.Health)}),
    Endpoint(
        "GET", "/readyz", ops.readyz, "Ready to serve", "operations", key=False,
        description="Redis answers and a worker has been seen in the last 30 s.",
        answers={200: Reply("Ready.", schemas.Ready), 503: Reply("Not ready, and why.", schemas.NotReady)}),
    Endpoint(
        "GET", "/metrics", ops.metrics, "Prometheus metrics", "operations", key=False,
        description="Requests, jobs by type and outcome, job durations, queue depth, retries; proxied requests by "
                    "system and status class, permits granted and refused, their waits, credential reads.",
        answers={200: Reply("The Prometheus text exposition format.", media="text/plain")}),
    Endpoint(
        "GET", "/api/openapi.json", docs.openapi_json, "This API description", "operations", key=False,
        answers={200: Reply("The OpenAPI 3.1 document.", media=JSON)}),
    Endpoint(
        "GET", "/api/docs", docs.page, "This API description, to read", "operations", key=False,
        answers={200: Reply("A page rendering the description with Swagger UI (served locally).", media=HTML)}),
    Endpoint(
        "GET", "/api/docs/static/{file}", docs.static, "The documentation page's static files", "operations",
        key=False,
        answers={200: Reply("Swagger UI's scripts, style sheet and icons.", media="application/octet-stream"),
                 404: Reply("No such file.", schemas.ErrorBody)}),
)


PROXY_PATH = f"{V1}/connectors/{{connector}}/proxy/{{path:.*}}"
PROXY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ENDPOINTS += tuple(
    Endpoint(
        method, PROXY_PATH, proxy.proxy, f"Proxy a {method} to the connector's provider", "proxy", scope="proxy",
        params=(Param("X-Authq-Max-Wait", "header", "Seconds to wait in line for a permit (0–300, default 30).",
                      {"type": "number", "minimum": 0, "maximum": 300, "default": 30}),),
        body_schema={"description": "Any body, of any type, forwarded as it is (up to AUTHQ_PROXY_MAX_BODY)."},
        body_required=False,
        description="Sent to the implementation's `base_url` + `/{path}` with the query string, the body and the "
                    "headers (less hop-by-hop ones, `Host`, `Authorization`, `Cookie`, `X-Authq-*`), the connector's "
                    "credentials added; the provider's answer is passed on, streamed, with `X-Authq-Request-Id`. "
                    "Governed by the connector's rate limit and pool: over the limit it waits up to "
                    "`X-Authq-Max-Wait` seconds, then 429.",
        answers={200: Reply("The provider's answer, whatever its status and type.", media="*/*"),
                 400: Reply("The path would leave the base URL (`path_not_allowed`).", schemas.ProxyFailureBody),
                 403: Reply("The base URL is not a destination authq may reach (`url_not_allowed`).",
                            schemas.ProxyFailureBody),
                 409: Reply("The connector is not authorised, or its implementation has no `base_url`.",
                            schemas.ProxyFailureBody),
                 413: Reply("The body is larger than AUTHQ_PROXY_MAX_BODY.", schemas.ProxyFailureBody),
                 422: Reply("`X-Authq-Max-Wait` is not a number from 0 to 300.", schemas.ValidationErrorBody),
                 429: Reply("No permit within the wait (`rate_limited` or `pool_exhausted`).", schemas.RefusalBody,
                            headers=("Retry-After",)),
                 502: Reply("The provider could not be reached (`provider_unreachable`).", schemas.ProxyFailureBody),
                 504: Reply("The provider did not answer in time (`provider_timeout`).", schemas.ProxyFailureBody),
                 **not_found("connector")})
    for method in PROXY_METHODS)


def setup_routes(app: web.Application) -> None:
    """Route every endpoint (a GET without a HEAD twin), and keep which endpoint each route is.

    The proxy's routes come first: aiohttp tries the routes under one path prefix in the order
    they were added, and the proxy's path shares ``/api/v1/connectors/`` with eight others (no
    other path has a ``/proxy/`` segment). Tried last, its match cost each proxied request a
    twentieth of its time (measured); the other routes' order is the contract's."""
    ordered = sorted(ENDPOINTS, key=lambda endpoint: endpoint.path != PROXY_PATH)  # (stable: the rest as listed)
    app[ENDPOINTS_BY_ROUTE] = {
        app.router.add_route(endpoint.method, endpoint.path, endpoint.handler): endpoint for endpoint in ordered}
