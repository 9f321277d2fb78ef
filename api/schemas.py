"""The shapes the API adds around the records' views (contract §3): envelopes, error bodies
and the operations endpoints' bodies, one definition each.

The records' views themselves are defined in ``tasks.model.views``. What builds these
(``api/responses.py``, ``api/views/ops.py``) is typed with them, and the API description
publishes them (``api/openapi.py``); as the views, they are ``TypedDict``\\ s with
``extra="forbid"``, so the published schemas are exact.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

from tasks.errors import RefusalCode
from tasks.flows.credentials_for_use import CredentialsForUseView
from tasks.model.catalog_view import ImplementationView
from tasks.model.views import (
    AuditEventView,
    CertificateView,
    ConnectorView,
    DeliveryView,
    JobView,
    PermitView,
    PoolView,
    SessionView,
    WebhookCreatedView,
    WebhookView,
)

EXACT = ConfigDict(extra="forbid")


# -- lists (§3) ------------------------------------------------------------------------------

# Functional syntax: a class body cannot name a key ``from``.
PageMeta = TypedDict("PageMeta", {"current_page": int, "per_page": int, "total": int, "last_page": int,
                                  "from": int | None, "to": int | None})
with_config(EXACT)(PageMeta)


@with_config(EXACT)
class PageLinks(TypedDict):
    first: str
    last: str
    prev: str | None
    next: str | None


# -- each record in its envelope: `{"data": view}`, or a page of views -------------------

@with_config(EXACT)
class JobResponse(TypedDict):
    data: JobView


@with_config(EXACT)
class ConnectorResponse(TypedDict):
    data: ConnectorView


@with_config(EXACT)
class ConnectorPage(TypedDict):
    data: list[ConnectorView]
    meta: PageMeta
    links: PageLinks


@with_config(EXACT)
class PoolResponse(TypedDict):
    data: PoolView


@with_config(EXACT)
class PoolPage(TypedDict):
    data: list[PoolView]
    meta: PageMeta
    links: PageLinks


@with_config(EXACT)
class PermitResponse(TypedDict):
    data: PermitView


@with_config(EXACT)
class CertificateResponse(TypedDict):
    data: CertificateView


@with_config(EXACT)
class CertificatePage(TypedDict):
    data: list[CertificateView]
    meta: PageMeta
    links: PageLinks


@with_config(EXACT)
class SessionResponse(TypedDict):
    data: SessionView


@with_config(EXACT)
class WebhookResponse(TypedDict):
    data: WebhookView


@with_config(EXACT)
class WebhookCreatedResponse(TypedDict):
    data: WebhookCreatedView


@with_config(EXACT)
class WebhookPage(TypedDict):
    data: list[WebhookView]
    meta: PageMeta
    links: PageLinks


@with_config(EXACT)
class DeliveryResponse(TypedDict):
    data: DeliveryView


@with_config(EXACT)
class DeliveryPage(TypedDict):
    data: list[DeliveryView]
    meta: PageMeta
    links: PageLinks


@with_config(EXACT)
class AuditEventPage(TypedDict):
    data: list[AuditEventView]
    meta: PageMeta
    links: PageLinks


@with_config(EXACT)
class ImplementationResponse(TypedDict):
    data: ImplementationView


@with_config(EXACT)
class ImplementationPage(TypedDict):
    data: list[ImplementationView]
    meta: PageMeta
    links: PageLinks


# -- errors ------------------------------------------------------------------------------

@with_config(EXACT)
class ErrorBody(TypedDict):
    message: str


@with_config(EXACT)
class CredentialsResponse(TypedDict):
    data: CredentialsForUseView


@with_config(EXACT)
class ConflictBody(TypedDict):
    message: str
    status: NotRequired[Annotated[str, Field(description="The connector's status, when it is the conflict.")]]


@with_config(EXACT)
class RefusalBody(TypedDict):
    message: str
    code: NotRequired[Annotated[RefusalCode,
                                Field(description="Which of the connector's limits held the request: the rate "
                                                  "limit (a provider's 429 included) or the connection pool. "
                                                  "Absent when `AUTHQ_API_RATE_LIMIT` refused it.")]]


@with_config(EXACT)
class ProxyFailureBody(TypedDict):
    message: str
    code: Annotated[str, Field(description="connector_not_authorised, no_base_url, url_not_allowed, "
                                           "path_not_allowed, body_too_large, provider_unreachable or "
                                           "provider_timeout.")]
    status: NotRequired[Annotated[str, Field(description="The connector's status, when it is not authorised.")]]


@with_config(EXACT)
class ValidationErrorBody(TypedDict):
    message: str
    errors: Annotated[dict[str, list[str]], Field(description="Messages by dotted field path, e.g. `variables.2.key`.")]


# -- operations --------------------------------------------------------------------------

@with_config(EXACT)
class Index(TypedDict):
    """``GET /``: where to go from here."""

    name: Literal["authq"]
    api: str
    docs: str
    openapi: str
    metrics: str
    demo: NotRequired[Annotated[str, Field(description="The demo provider, when it runs (`authq up --demo`).")]]


@with_config(EXACT)
class Health(TypedDict):
    status: Literal["ok"]


@with_config(EXACT)
class Ready(TypedDict):
    status: Literal["ready"]
    workers: int
    instance: Annotated[str, Field(description="This API process's id (`AUTHQ_INSTANCE_ID`, else random).")]


@with_config(EXACT)
class NotReady(TypedDict):
    status: Literal["not_ready"]
    reason: str
    instance: Annotated[str, Field(description="This API process's id (`AUTHQ_INSTANCE_ID`, else random).")]
