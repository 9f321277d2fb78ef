"""Webhook endpoints, the events they hear and the deliveries of those events (contract §10).

An event is one message, built once when it happens: its id (``msg_…``, the ``webhook-id`` of
every attempt) and its body (``{"type", "timestamp", "data"}``), the connector or the job
exactly as the API shows them (their ``view()``: no secret is in a view). A delivery is that
message on its way to one endpoint: it carries the body, so an attempt a day later sends the
bytes the event was, whatever happened to the connector since.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, get_args

from pydantic import Field, StrictStr, field_validator

from tasks.model.bodies import Body, normalised_return_url
from tasks.model.records import Record, iso, utcnow
from tasks.model.views import (
    ConnectorView,
    DeliveryStatus,
    DeliveryView,
    JobView,
    WebhookCreatedView,
    WebhookEventType,
    WebhookView,
)

EVENT_TYPES: tuple[WebhookEventType, ...] = get_args(WebhookEventType)
FINAL: frozenset[str] = frozenset({"delivered", "failed"})
MAX_URL = 2048
# A delivery (and its place in the endpoint's log) is kept this long after it was last written:
# longer than the default schedule's 39 hours, so a delivery is never forgotten mid-schedule.
DELIVERY_KEPT_SECONDS = 8 * 86400


def new_message_id(at: datetime) -> str:
    """``msg_`` and 32 hex digits: the milliseconds, then random (ids sort by time)."""
    return f"msg_{int(at.timestamp() * 1000):012x}{secrets.token_hex(10)}"


class WebhookIn(Body):
    url: Annotated[StrictStr, Field(max_length=MAX_URL, description="Where messages are posted: `https://` (or "
                                    "`http://` where AUTHQ_ALLOW_PRIVATE_NETWORKS allows it).")]
    events: Annotated[list[WebhookEventType], Field(min_length=1, max_length=len(EVENT_TYPES))] | None = Field(
        default=None, description="The event types to send (default: all of them).")
    description: Annotated[StrictStr, Field(max_length=255)] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        # The same rules as a session's return URL: absolute http(s), no user info, no control
        # characters or backslashes; the scheme's rule needs the settings (api/views/webhooks.py).
        try:
            return normalised_return_url(value)
        except ValueError as exc:
            raise ValueError(str(exc).replace("The return url", "The url")) from None

    @field_validator("events")
    @classmethod
    def _unique(cls, value: list[WebhookEventType] | None) -> list[WebhookEventType] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("The events must not repeat a type.")
        return value


class Webhook(Record):
    id: str
    tenant: str
    url: str
    events: list[WebhookEventType]
    description: str | None = None
    disabled: bool = False
    secret_sealed: str           # the signing secret, encrypted (tasks/security/sealing.py)
    created_at: datetime

    def view(self) -> WebhookView:
        return {"id": self.id, "url": self.url, "events": list(self.events), "description": self.description,
                "disabled": self.disabled, "created_at": iso(self.created_at)}

    def created_view(self, secret: str) -> WebhookCreatedView:
        return {**self.view(), "secret": secret}


class Delivery(Record):
    event_id: str
    webhook_id: str
    type: WebhookEventType
    body: str                    # the message, as sent on every attempt
    status: DeliveryStatus = "pending"
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime
    delivered_at: datetime | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def view(self) -> DeliveryView:
        return {"event_id": self.event_id, "type": self.type, "status": self.status, "attempts": self.attempts,
                "last_status_code": self.last_status_code, "last_error": self.last_error,
                "next_attempt_at": iso(self.next_attempt_at), "created_at": iso(self.created_at),
                "delivered_at": iso(self.delivered_at)}


@dataclass(frozen=True)
class Event:
    """One message, as every endpoint that hears it gets it."""

    id: str
    type: WebhookEventType
    body: str
    at: datetime

    @classmethod
    def new(cls, type_: WebhookEventType, data: dict[str, object]) -> Event:
        at = utcnow()
        body = json.dumps({"type": type_, "timestamp": iso(at), "data": data}, separators=(",", ":"))
        return cls(new_message_id(at), type_, body, at)

    @classmethod
    def of_connector(cls, type_: WebhookEventType, connector: ConnectorView, job_id: str | None) -> Event:
        return cls.new(type_, {"connector": connector, "job_id": job_id})

    @classmethod
    def of_job(cls, job: JobView) -> Event:
        return cls.new("job.succeeded" if job["status"] == "succeeded" else "job.failed", {"job": job})

    @classmethod
    def ping(cls, webhook_id: str) -> Event:
        return cls.new("ping", {"webhook_id": webhook_id})
