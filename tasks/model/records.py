"""The records authq keeps in Redis, and how each is shown (contract §6, §7).

A stored record may hold ciphertext (``*_sealed`` fields, see ``tasks/security/sealing.py``);
a view never does. ``view()`` on each record is the only way a record leaves the service;
what it builds is defined once, in ``views.py``.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any, cast, overload

from pydantic import BaseModel, ConfigDict, PrivateAttr

from tasks.model.views import (
    CertificateView,
    ConnectorStatus,
    ConnectorView,
    CredentialsView,
    JobErrorView,
    JobLinksView,
    JobResultView,
    JobStatus,
    JobType,
    JobView,
    PivotView,
    PoolView,
    ProgressView,
    RateLimitUnit,
    RateLimitView,
    SessionDefaultsView,
    SessionView,
    VariableView,
)
from tasks.security.sealing import SecretBox

# A job is stored as its view in compact JSON: one encoder, not one built per call as
# json.dumps(separators=...) does.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode

FINISHED: frozenset[str] = frozenset({"succeeded", "failed"})


def utcnow() -> datetime:
    """Now, to the millisecond: the precision records are shown and stored with."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@overload
def iso(moment: datetime) -> str: ...
@overload
def iso(moment: None) -> None: ...
@overload
def iso(moment: datetime | None) -> str | None: ...
def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id(prefix: str) -> str:
    """Opaque, unguessable ids: a type prefix (for humans) and 128 random bits."""
    return f"{prefix}_{secrets.token_hex(16)}"


class Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Pivot(Record):
    alias: str | None = None
    configurable: bool = False
    required: bool = False
    advanced: bool = False

    def view(self) -> PivotView:
        return {"alias": self.alias, "configurable": self.configurable, "required": self.required,
                "advanced": self.advanced}


class Variable(Record):
    id: str
    key: str
    value: str | None = None            # plaintext, for variables that are not secret
    value_sealed: str | None = None     # ciphertext, for secret ones
    label: str | None = None
    secret: bool = False
    locked: bool = False
    pivot: Pivot = Pivot()
    # (sealed, clear) of a secret this process has just sealed (a job building its connector),
    # so the job need not open it again. Private: never dumped, never stored; and used only
    # while value_sealed is still that ciphertext (a copy may have replaced it).
    _sealed_here: tuple[str, str] | None = PrivateAttr(default=None)

    def clear_value(self, box: SecretBox) -> str | None:
        """The value in the clear: the sealed one opened (unless just sealed here), or the plain one."""
        if self.value_sealed:
            here = self._sealed_here
            return here[1] if here is not None and here[0] == self.value_sealed else box.open(self.value_sealed)
        return self.value

    @property
    def has_value(self) -> bool:
        return bool(self.value_sealed) or self.value not in (None, "")

    def view(self) -> VariableView:
        return {
            "id": self.id,
            "key": self.key,
            "value": None if self.secret else self.value,
            "has_value": self.has_value,
            "label": self.label,
            "secret": self.secret,
            "locked": self.locked,
            "pivot": self.pivot.view(),
        }


class RateLimit(Record):
    unit: RateLimitUnit
    duration: int

    def view(self) -> RateLimitView:
        return {"unit": self.unit, "duration": self.duration}


class Credentials(Record):
    """What the connector may show of its credentials; the values are sealed apart."""

    token_type: str | None = None
    scopes: list[str] = []
    expires_at: datetime | None = None

    def view(self) -> CredentialsView:
        return {"token_type": self.token_type, "scopes": self.scopes, "expires_at": iso(self.expires_at)}


class Connector(Record):
    # Frozen: the API shares parsed connectors between requests (``api/parsed_records.py``); a
    # change is a ``model_copy(update=...)``, saved.
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    tenant: str
    name: str
    authentication_implementation_id: str
    type: str
    system: str
    status: ConnectorStatus = "pending"
    timezone: str
    date_format: str
    rate_limit: RateLimit
    connection_pool_id: int | None = None
    certificate_id: str | None = None
    session_id: str | None = None
    platform_app_key: str | None = None
    variables: list[Variable] = []
    credentials: Credentials = Credentials()
    credentials_sealed: str | None = None   # the token/keys themselves, encrypted
    credential_version: int = 0
    authorised_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    def variable(self, key: str) -> Variable | None:
        return next((v for v in self.variables if v.key == key), None)

    @property
    def never_authorised(self) -> bool:
        """No credentials were ever stored: its authorise is waiting (``pending``) or failed."""
        return self.authorised_at is None and self.status in ("pending", "failed")

    def view(self) -> ConnectorView:
        return {
            "id": self.id,
            "name": self.name,
            "authentication_implementation_id": self.authentication_implementation_id,
            "type": self.type,
            "system": self.system,
            "status": self.status,
            "timezone": self.timezone,
            "date_format": self.date_format,
            "rate_limit": self.rate_limit.view(),
            "connection_pool_id": self.connection_pool_id,
            "certificate_id": self.certificate_id,
            "session_id": self.session_id,
            "variables": [v.view() for v in self.variables],
            "credentials": self.credentials.view(),
            "authorised_at": iso(self.authorised_at),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


# Steps that start a call to the provider (seconds, perhaps retried) are stored the moment
# they begin, so a poller sees what the job is waiting on. Any other step is local work
# (a Redis lookup, building the connector: microseconds) and is stored with the job's next
# write: a job that never leaves the machine is written once, when it ends.
PROVIDER_STEPS = frozenset({"token_request", "token_exchange", "credential_check", "token_refresh"})


class ProgressStep(Record):
    step: str
    at: datetime
    attempt: int = 1   # the job's start it was made in (records older than the field: the first)

    def view(self) -> ProgressView:
        return {"step": self.step, "at": iso(self.at), "attempt": self.attempt}


class Job(Record):
    id: str
    tenant: str
    type: JobType
    status: JobStatus = "queued"
    connector_id: str | None = None
    attempts: int = 0
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: list[ProgressStep] = []
    # What the job's flow returned and how it failed, already in their public shapes
    # (``JobResultView``, ``JobErrorView``) and kept as they are: a stored job is read back
    # without validating its connector again.
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def stored_json(self) -> str:
        """A job is stored as its public view (compact JSON), so a poll can serve the bytes
        as they are; the tenant is not in it: it is in the key, and the task's arguments."""
        return _compact_json(self.view())

    @staticmethod
    def stored_finished(raw: bytes) -> bool:
        """Whether a stored job (``stored_json``) has ended, read without parsing it: the view
        puts ``id``, ``type`` and ``status`` before anything a flow wrote, so the first
        ``"status":`` in it is the job's own."""
        start = raw.index(b'"status":"') + 10
        return raw[start:raw.index(b'"', start)].decode() in FINISHED

    @classmethod
    def from_stored(cls, raw: bytes | str, tenant: str) -> Job:
        return cls.model_validate({**json.loads(raw), "tenant": tenant})

    def view(self) -> JobView:
        links: JobLinksView = {"self": f"/api/v1/jobs/{self.id}"}
        if self.connector_id:
            links["connector"] = f"/api/v1/connectors/{self.connector_id}"
        return {
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "connector_id": self.connector_id,
            "attempts": self.attempts,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "progress": [p.view() for p in self.progress],
            "result": cast("JobResultView | None", self.result),
            "error": cast("JobErrorView | None", self.error),
            "links": links,
        }


class ConnectionPool(Record):
    id: int
    tenant: str
    name: str
    limit: int
    timeout: int | None = None
    created_at: datetime

    def view(self) -> PoolView:
        return {"id": self.id, "name": self.name, "limit": self.limit, "timeout": self.timeout,
                "created_at": iso(self.created_at)}


class Certificate(Record):
    id: str
    tenant: str
    name: str | None = None
    connector_id: str | None = None
    certificate_pem: str                # the public certificate chain: not a secret
    key_sealed: str                     # the private key PEM, opened once at upload (PKCS#8), sealed
    key_was_encrypted: bool = False     # it was uploaded encrypted (its passphrase is not kept)
    # Only in records stored before keys were kept opened: the key as given and its passphrase.
    passphrase_sealed: str | None = None
    subject: str
    issuer: str
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    created_at: datetime

    def view(self) -> CertificateView:
        return {
            "id": self.id, "name": self.name, "connector_id": self.connector_id,
            "subject": self.subject, "issuer": self.issuer,
            "fingerprint_sha256": self.fingerprint_sha256,
            "not_before": iso(self.not_before), "not_after": iso(self.not_after),
            "has_passphrase": self.key_was_encrypted or self.passphrase_sealed is not None,
            "created_at": iso(self.created_at),
        }


class Session(Record):
    id: str
    tenant: str
    end_user_id: str | None = None
    return_url: str | None = None
    allowed_implementations: list[str] | None = None
    # Authorise fields for the connector its connect page makes (``SessionDefaultsIn``, as given).
    defaults: dict[str, Any] | None = None
    connector_id: str | None = None      # the connector its connect page re-authorises
    # SHA-256 of the connect page's token (``tasks/storage/schema.py``: ``connect_token``); the
    # token itself is shown once, in the creation's ``connect_url``, and kept nowhere.
    connect_token_sha256: str | None = None
    expires_at: datetime
    created_at: datetime

    def expired(self, now: datetime | None = None) -> bool:
        return (now or utcnow()) >= self.expires_at

    def view(self, connect_url: str | None = None) -> SessionView:
        return {
            "id": self.id, "end_user_id": self.end_user_id, "return_url": self.return_url,
            "allowed_implementations": self.allowed_implementations,
            "defaults": cast("SessionDefaultsView | None", self.defaults),
            "connector_id": self.connector_id, "connect_url": connect_url,
            "expires_at": iso(self.expires_at), "expired": self.expired(),
            "created_at": iso(self.created_at),
        }
