"""The response bodies of the contract (§3, §6, §7), as pydantic models, for the API description.

Requests are validated by ``tasks.model.bodies``; what leaves the service is built by the
records' ``view()`` methods (``tasks.model.records``). These models describe those views exactly
(every key always present, nothing extra: ``extra="forbid"``), and
``tests/test_openapi.py`` validates real answers of the app against them, so the description
cannot drift from what the API returns.
"""

from __future__ import annotations

from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from tasks.errors import ErrorCode
from tasks.model.records import ConnectorStatus, JobStatus, JobType

TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"
Timestamp = Annotated[str, Field(pattern=TIMESTAMP_PATTERN, json_schema_extra={"format": "date-time"},
                                 description="UTC, ISO 8601 with `Z`.")]


class View(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- the job (§6) ------------------------------------------------------------------------

class ProgressView(View):
    step: str
    at: Timestamp


class ProviderErrorView(View):
    error: str | None
    error_description: str | None


class JobErrorView(View):
    code: ErrorCode = Field(description="Why the job failed (the codes are listed in `ErrorCode`).")
    message: str
    field: str | None = Field(description="The request field the error is about, as a dotted path.")
    retryable: bool
    provider: ProviderErrorView | None = Field(
        default=None, description="The provider's own `error` and `error_description` (`provider_error` only).")


class NextActionView(View):
    type: Literal["redirect"]
    url: str = Field(description="Where to send the end user's browser.")


class JobLinksView(View):
    self: str
    connector: str | None = Field(default=None, description="Present when the job has a connector.")


# -- the connector (§7) ------------------------------------------------------------------

class PivotView(View):
    alias: str | None
    configurable: bool
    required: bool
    advanced: bool


class VariableView(View):
    id: str
    key: str
    value: str | None = Field(description="Always null for a secret variable; see `has_value`.")
    has_value: bool
    label: str | None
    secret: bool
    locked: bool
    pivot: PivotView


class RateLimitView(View):
    unit: Literal["second", "minute", "hour", "day"]
    duration: int = Field(description="Requests allowed per `unit`.")


class CredentialsView(View):
    token_type: str | None
    scopes: list[str]
    expires_at: Timestamp | None


class ConnectorView(View):
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


class JobResultView(View):
    connector: ConnectorView
    next_action: NextActionView | None


class JobView(View):
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

class PoolView(View):
    id: int
    name: str
    limit: int
    timeout: int | None
    created_at: Timestamp


class CertificateView(View):
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


class SessionView(View):
    id: str
    end_user_id: str | None
    return_url: str | None
    allowed_implementations: list[str] | None
    expires_at: Timestamp
    expired: bool
    created_at: Timestamp


# -- envelopes (§3) ----------------------------------------------------------------------

T = TypeVar("T")


class Data(View, Generic[T]):
    data: T


class PageMeta(View):
    current_page: int
    per_page: int
    total: int
    last_page: int
    from_: int | None = Field(alias="from")
    to: int | None


class PageLinks(View):
    first: str
    last: str
    prev: str | None
    next: str | None


class Page(View, Generic[T]):
    data: list[T]
    meta: PageMeta
    links: PageLinks


class JobResponse(Data[JobView]):
    pass


class ConnectorResponse(Data[ConnectorView]):
    pass


class ConnectorPage(Page[ConnectorView]):
    pass


class PoolResponse(Data[PoolView]):
    pass


class PoolPage(Page[PoolView]):
    pass


class CertificateResponse(Data[CertificateView]):
    pass


class CertificatePage(Page[CertificateView]):
    pass


class SessionResponse(Data[SessionView]):
    pass


# -- errors ------------------------------------------------------------------------------

class ErrorBody(View):
    message: str


class ValidationErrorBody(View):
    message: str
    errors: dict[str, list[str]] = Field(
        description="Messages by dotted field path, e.g. `variables.2.key`.")


# -- operations --------------------------------------------------------------------------

class Health(View):
    status: Literal["ok"]


class Ready(View):
    status: Literal["ready"]
    workers: int


class NotReady(View):
    status: Literal["not_ready"]
    reason: str

