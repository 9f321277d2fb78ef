"""The records' public views (contract §6, §7): the one definition of each shape.

A record's ``view()`` (``records.py``) builds its view as one of these, and the API sends
it as it is; the API description publishes the same definitions as JSON schemas
(``api/openapi.py``, through pydantic). So the type checker holds every ``view()`` to its
definition, and the tests hold real answers to the published schema: every key always
present (except the two marked ``NotRequired``), nothing extra (``extra="forbid"``).

They are ``TypedDict``\\ s, not models: a view is a plain dict at run time, so a job's stored
JSON (what a poll serves unparsed) costs one ``json.dumps``. Building a model and dumping it
cost about twice as much on the accept path.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import BeforeValidator, ConfigDict, Field, with_config
from typing_extensions import TypedDict  # pydantic describes typing's TypedDict on Python 3.12+ only

from tasks.errors import ErrorCode

JobType = Literal["authorise", "reauthorise", "authenticate", "woo_app_auth", "refresh"]
JobStatus = Literal["queued", "running", "retrying", "succeeded", "failed"]
ConnectorStatus = Literal["pending", "authorised", "failed", "expired"]
RateLimitUnit = Literal["second", "minute", "hour", "day"]

TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"
Timestamp = Annotated[str, Field(pattern=TIMESTAMP_PATTERN, json_schema_extra={"format": "date-time"},
                                 description="UTC, ISO 8601 with `Z`.")]
EXACT = ConfigDict(extra="forbid")


# -- the connector (§7) ------------------------------------------------------------------

@with_config(EXACT)
class PivotView(TypedDict):
    alias: str | None
    configurable: bool
    required: bool
    advanced: bool


@with_config(EXACT)
class VariableView(TypedDict):
    id: str
    key: str
    value: Annotated[str | None, Field(description="Always null for a secret variable; see `has_value`.")]
    has_value: bool
    label: str | None
    secret: bool
    locked: bool
    pivot: PivotView


@with_config(EXACT)
class RateLimitView(TypedDict):
    unit: RateLimitUnit
    duration: Annotated[int, Field(description="Requests allowed per `unit`.")]


@with_config(EXACT)
class CredentialsView(TypedDict):
    token_type: str | None
    scopes: list[str]
    expires_at: Timestamp | None


@with_config(EXACT)
class ConnectorView(TypedDict):
    id: str
    name: str
    authentication_implementation_id: str
    type: str
    system: str
    status: ConnectorStatus
    timezone: str
    date_format: str
    rate_limit: RateLimitView
    connection_pool_id: int | None
    certificate_id: str | None
    session_id: str | None
    variables: list[VariableView]
    credentials: CredentialsView
    authorised_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


# -- the job (§6) ------------------------------------------------------------------------

@with_config(EXACT)
class ProgressView(TypedDict):
    step: str
    at: Timestamp
    attempt: Annotated[int, Field(description="The attempt (the job's start, from 1) the step was made in.")]


@with_config(EXACT)
class ProviderErrorView(TypedDict):
    error: str | None
    error_description: str | None


@with_config(EXACT)
class JobErrorView(TypedDict):
    # A job read back from its stored JSON holds the code as text: checked against the enum.
    code: Annotated[ErrorCode, BeforeValidator(ErrorCode),
                    Field(description="Why the job failed (the codes are listed in `ErrorCode`).")]
    message: str
    field: Annotated[str | None, Field(description="The request field the error is about, as a dotted path.")]
    retryable: bool
    provider: NotRequired[Annotated[ProviderErrorView, Field(
        description="The provider's own `error` and `error_description` (`provider_error` only).")]]


@with_config(EXACT)
class NextActionView(TypedDict):
    type: Literal["redirect"]
    url: Annotated[str, Field(description="Where to send the end user's browser.")]


@with_config(EXACT)
class JobResultView(TypedDict):
    connector: ConnectorView
    next_action: NextActionView | None


@with_config(EXACT)
class JobLinksView(TypedDict):
    self: str
    connector: NotRequired[Annotated[str, Field(description="Present when the job has a connector.")]]


@with_config(EXACT)
class JobView(TypedDict):
    id: str
    type: JobType
    status: JobStatus
    connector_id: str | None
    attempts: int
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    progress: list[ProgressView]
    result: JobResultView | None
    error: JobErrorView | None
    links: JobLinksView


# -- the records the lookups need --------------------------------------------------------

@with_config(EXACT)
class PoolView(TypedDict):
    id: int
    name: str
    limit: int
    timeout: int | None
    created_at: Timestamp


@with_config(EXACT)
class PermitView(TypedDict):
    """A permit (§9): a rate-limit permit taken and, in a pool, a slot held until ``expires_at``."""

    id: Annotated[str, Field(description="`pmt_` and 32 hex digits: what `DELETE /permits/{permit}` frees.")]
    connector_id: str
    connection_pool_id: Annotated[int | None, Field(description="The pool whose slot is held; null without one.")]
    granted_at: Timestamp
    expires_at: Annotated[str, Field(pattern=TIMESTAMP_PATTERN, json_schema_extra={"format": "date-time"},
                                     description="When the slot lapses if it is not freed first (the pool's "
                                                 "`timeout`, default 30 s).")]


@with_config(EXACT)
class CertificateView(TypedDict):
    id: str
    name: str | None
    connector_id: str | None
    subject: str
    issuer: str
    fingerprint_sha256: str
    not_before: Timestamp
    not_after: Timestamp
    has_passphrase: bool
    created_at: Timestamp


@with_config(EXACT)
class SessionDefaultsView(TypedDict, total=False):
    """The authorise fields a session gives its connect page's connector (those it was given)."""

    name: str
    timezone: str
    date_format: str
    rate_limit_unit: RateLimitUnit
    rate_limit_duration: int
    connection_pool_id: int
    certificate_id: str


@with_config(EXACT)
class SessionView(TypedDict):
    id: str
    end_user_id: str | None
    return_url: str | None
    allowed_implementations: list[str] | None
    defaults: SessionDefaultsView | None
    connector_id: str | None
    # ``{AUTHQ_PUBLIC_URL}/connect/{token}`` in the creation's answer only (only the token's hash is kept).
    connect_url: str | None
    expires_at: Timestamp
    expired: bool
    created_at: Timestamp


# -- the audit log (§12) -----------------------------------------------------------------

AuditType = Literal["credentials.read", "connector.created", "connector.reauthorised", "connector.refreshed",
                    "connector.expired", "connector.deleted", "api_key.created", "api_key.revoked",
                    "webhook.created", "webhook.deleted"]


@with_config(EXACT)
class ActorView(TypedDict):
    api_key_id: Annotated[str | None, Field(description="The key the change was asked with; null when no key "
                                                        "was (a provider's callback, `authq keys`, the refresh "
                                                        "schedule).")]
    ip: Annotated[str | None, Field(description="The client address of that request; null when there was none.")]


@with_config(EXACT)
class AuditEventView(TypedDict):
    id: str
    type: AuditType
    at: Timestamp
    actor: ActorView
    connector_id: str | None
    details: Annotated[dict[str, object], Field(description="What changed (never a secret value).")]


# -- webhooks (§10) ----------------------------------------------------------------------

WebhookEventType = Literal["connector.authorised", "connector.failed", "connector.expired", "connector.deleted",
                           "job.succeeded", "job.failed", "ping"]
DeliveryStatus = Literal["pending", "delivered", "retrying", "failed"]


@with_config(EXACT)
class WebhookView(TypedDict):
    id: Annotated[str, Field(description="`whk_` and 32 hex digits.")]
    url: str
    events: Annotated[list[WebhookEventType], Field(description="The event types the endpoint hears.")]
    description: str | None
    disabled: Annotated[bool, Field(description="True once the endpoint answered `410 Gone`: nothing more is sent.")]
    created_at: Timestamp


@with_config(EXACT)
class WebhookCreatedView(WebhookView):
    secret: Annotated[str, Field(description="`whsec_` + base64 of 32 random bytes: the signing key. Shown in this "
                                             "answer only; keep it.")]


@with_config(EXACT)
class DeliveryView(TypedDict):
    event_id: Annotated[str, Field(description="`msg_…`: the message's `webhook-id`, the same on every attempt.")]
    type: WebhookEventType
    status: DeliveryStatus
    attempts: int
    last_status_code: Annotated[int | None, Field(description="The endpoint's status at the last attempt; null "
                                                              "when it gave none (timeout, refused connection).")]
    last_error: Annotated[str | None, Field(description="Why the last attempt did not deliver.")]
    next_attempt_at: Annotated[str | None, Field(pattern=TIMESTAMP_PATTERN, json_schema_extra={"format": "date-time"},
                                                 description="When the next attempt is due; null when none is.")]
    created_at: Timestamp
    delivered_at: Annotated[str | None, Field(pattern=TIMESTAMP_PATTERN, json_schema_extra={"format": "date-time"})]
