"""Every error authq raises on purpose, in one place.

    AuthqError                    base: catch this to catch anything authq meant to raise
    ├── ConfigError               settings, secret key, catalog or Redis unusable: the process does not start
    ├── SecretUnreadable          a stored secret opens with none of AUTHQ_SECRET_KEY's keys (while running)
    ├── BodyUnreadable            a request body too large (413), not JSON (415) or not valid JSON (400)
    ├── RequestInvalid            a request breaks the contract's rules -> HTTP 422
    ├── NotFound                  no such record for this tenant -> HTTP 404
    ├── IdempotencyKeyInUse       the first request with this Idempotency-Key is still being accepted -> 409
    ├── TenantFull                the tenant has its cap of jobs in flight; nothing was kept -> HTTP 429
    ├── QueueUnavailable          the broker did not take the job; nothing was kept -> HTTP 503
    ├── CertificateParserBusy     every certificate-parsing slot stayed taken -> HTTP 503
    ├── EventsUnavailable         no subscription to a channel in time (the pub/sub connection is reconnecting) -> 503
    ├── Refused                   no permit of a connector's rate limit or pool within the wait asked for -> 429
    ├── NotAsKept                 the connector a request was decided on changed since it was read (decided again)
    ├── PathRefused               a proxied path would leave the implementation's base_url -> HTTP 400
    ├── DemoRefused               the demo provider refuses a request, in its protocol's terms (api/demo/)
    ├── RetryLater                not an error of the job: run it again after ``delay`` seconds
    │   ├── Deferred              a rate-limit permit or pool slot is not free yet (no attempt used)
    │   └── Taken                 another run holds the job's run lease (no attempt used)
    └── JobFailed                 a job ends ``failed`` with ``error.code``, one of ``ErrorCode``
        ├── ProviderError         the provider answered with an OAuth/HTTP error of its own
        ├── DestinationRefused    url_not_allowed: not a destination authq may reach (nothing sent)
        └── ProviderUnreachable   no usable answer: network error, 5xx or 429 from the provider: retryable
            ├── NotSent           the name did not resolve, or connecting failed (nothing sent)
            ├── ProviderDeclined  the provider answered 5xx or 429
            └── AnswerTooLong     the provider's answer is longer than authq reads

A ``JobFailed`` is an answer, not a crash: the job runner turns it into the job's
``error`` object. Anything else escaping a job (``SecretUnreadable`` included) is
unforeseen: retried, then failed ``internal_error``. The kinds of outbound failure
(``DestinationRefused``, ``NotSent``, ``ProviderDeclined``, ``AnswerTooLong``) are defined
beside the transport that tells them apart, in ``tasks/provider/failures.py`` and
``tasks/provider/answer_body.py``.

Not ``AuthqError`` subclasses, on purpose: two signals that never leave the provider package and
subclass the built-in exception their callers already catch, ``LookupTimeout``
(``tasks/provider/addresses.py``, an ``OSError``) and ``UnreadableKey``
(``tasks/provider/key_derivation.py``, a ``ValueError``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from tasks.telemetry.redaction import scrub_optional

if TYPE_CHECKING:   # (tasks.model.views imports this module)
    from tasks.model.views import AuditType


class ErrorCode(StrEnum):
    """A failed job's ``error.code``: the contract's codes, then authq's own."""

    SESSION_NOT_FOUND = "session_not_found"
    SESSION_EXPIRED = "session_expired"
    SESSION_FORBIDDEN = "session_forbidden"
    CERTIFICATE_NOT_FOUND = "certificate_not_found"
    CERTIFICATE_INVALID = "certificate_invalid"
    CERTIFICATE_EXPIRED = "certificate_expired"
    CONNECTION_POOL_NOT_FOUND = "connection_pool_not_found"
    PLATFORM_APP_NOT_FOUND = "platform_app_not_found"
    STATE_INVALID = "state_invalid"
    ACCESS_DENIED = "access_denied"                   # the end user refused
    PROVIDER_ERROR = "provider_error"                 # with the provider's own error and description
    PROVIDER_UNREACHABLE = "provider_unreachable"
    PROVIDER_RATE_LIMITED = "provider_rate_limited"
    CREDENTIALS_REJECTED = "credentials_rejected"
    URL_NOT_ALLOWED = "url_not_allowed"
    # authq's own, where the contract is silent:
    NOT_SUPPORTED = "not_supported"                   # e.g. a refresh of a connector with no token to refresh
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"         # started max_attempts times without finishing
    INTERNAL_ERROR = "internal_error"                 # unforeseen: the worker log has the details
    IMPLEMENTATION_NOT_FOUND = "implementation_not_found"  # left the catalog between submission and run
    VARIABLES_INVALID = "variables_invalid"           # the connector changed between submission and run
    CONNECTOR_NOT_FOUND = "connector_not_found"       # deleted before (or while) the job ran


class AuthqError(Exception):
    """Base of every deliberate authq error."""


class ConfigError(AuthqError):
    """The service cannot start as configured; the message says what to change."""


class SecretUnreadable(AuthqError):
    """A stored secret does not open with any configured key (a key removed too early, or the wrong one).

    Start-up turns this into a ``ConfigError`` (``tasks.security.key_check``); met while running,
    it is the record's problem, not the process's.
    """


class BodyUnreadable(AuthqError):
    """The request body cannot be read as JSON: answered ``status`` with ``message``."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


class RequestInvalid(AuthqError):
    """Validation failure, rendered as ``422 {"message", "errors": {path: [msg]}}``."""

    def __init__(self, errors: dict[str, list[str]], message: str | None = None) -> None:
        self.errors = errors
        first = next(iter(errors.values()), ["The given data was invalid."])[0]
        extra = sum(len(v) for v in errors.values()) - 1
        more = f" (and {extra} more error{'s' if extra > 1 else ''})" if extra > 0 else ""
        self.message = message or first + more
        super().__init__(self.message)

    @classmethod
    def one(cls, field: str, message: str) -> RequestInvalid:
        return cls({field: [message]})


class NotFound(AuthqError):
    """The record does not exist for this tenant (another tenant's record included)."""

    def __init__(self, what: str = "Resource") -> None:
        self.message = f"{what} not found."
        super().__init__(self.message)


class IdempotencyKeyInUse(AuthqError):
    """The first request with this ``Idempotency-Key`` is still being accepted (409)."""


class TenantFull(AuthqError):
    """The tenant has AUTHQ_MAX_QUEUED_PER_TENANT jobs queued or running; nothing was kept."""


class QueueUnavailable(AuthqError):
    """The broker did not take the job; nothing was kept."""


class CertificateParserBusy(AuthqError):
    """Every certificate-parsing slot stayed taken while the upload waited: try again shortly."""


class EventsUnavailable(AuthqError):
    """The API's pub/sub connection did not confirm a subscription in time (Redis is being
    reconnected to): answered like any Redis outage, 503 and ``Retry-After``."""


RefusalCode = Literal["rate_limited", "pool_exhausted"]


class PathRefused(AuthqError):
    """A proxied path that would leave the implementation's ``base_url`` (``tasks/flows/proxy_request.py``)."""


class DemoRefused(AuthqError):
    """The demo provider (``api/demo/``) refuses a request as its protocol says to: ``error`` (an
    RFC 6749 error code, or empty for the store), ``description``, the HTTP ``status`` and
    ``headers`` of the answer, and whether it is told to the client at its redirect URI
    (``redirect``) or only shown to the user (an unknown client or redirect URI)."""

    def __init__(self, error: str, description: str, *, status: int = 400, redirect: bool = False,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status
        self.redirect, self.headers = redirect, headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class Refused(AuthqError):
    """No permit for a connector's request in time (contract §9): ``code`` says which limit held
    it (``rate_limited``, a provider's block included, or ``pool_exhausted``) and ``retry_after``
    how many seconds until one could be free, as far as Redis can tell."""

    def __init__(self, code: RefusalCode, retry_after: float) -> None:
        self.code: RefusalCode = code
        self.retry_after = retry_after
        super().__init__(f"{code}: retry in {retry_after:.1f}s")


class NotAsKept(AuthqError):  # noqa: N818 (a state, not a failure)
    """The connector record a request was decided on, kept from an earlier read, is no longer
    the one stored (``api/governor.py``): no permit was taken, and the request is decided again
    on ``stored``, the record as stored now (None: the connector is gone)."""

    def __init__(self, stored: bytes | None) -> None:
        super().__init__("the connector changed since it was read")
        self.stored = stored


class RetryLater(AuthqError):
    """The job runner asks its host (Celery) to run the job again after ``delay`` seconds."""

    def __init__(self, delay: float, message: str | None = None) -> None:
        self.delay = delay
        super().__init__(message or f"retry in {delay:.1f}s")


class Deferred(RetryLater):
    """A permit is not free for ``delay`` seconds: defer the job; this is not a failed attempt."""

    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(delay)
        self.reason = reason


class Taken(RetryLater):
    """Another run holds the job's lease; it may be free in ``delay`` seconds. Not a start."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay, f"job lease held; free in at most {delay:.1f}s")

    @classmethod
    def after(cls, pttl_ms: int | None) -> Taken:
        """From the lease's remaining life (``PTTL``): at least a second."""
        return cls(max(1.0, pttl_ms / 1000) if pttl_ms and pttl_ms > 0 else 1.0)


class JobFailed(AuthqError):
    """A job's end with one of the ``ErrorCode``s."""

    retryable = False
    # What the failing job did to its connector all the same (the audit log's type; a refresh
    # refused by the provider expires it): written with the job's end.
    change: AuditType | None = None

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        field: str | None = None,
        *,
        retryable: bool | None = None,
        provider: dict[str, Any] | None = None,
    ) -> None:
        self.code = ErrorCode(code)  # (an unknown code is a ValueError here, not a surprise in the API)
        self.message = message
        self.field = field
        if retryable is not None:
            self.retryable = retryable
        self.provider = provider
        super().__init__(f"{code}: {message}")

    def as_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "retryable": self.retryable,
        }
        if self.provider is not None:
            error["provider"] = self.provider
        return error


class ProviderError(JobFailed):
    """The provider's own ``error`` and ``error_description`` are kept, scrubbed of token-like text."""

    def __init__(self, message: str, *, error: str | None, description: str | None = None) -> None:
        super().__init__(
            ErrorCode.PROVIDER_ERROR,
            scrub_optional(message) or message,
            provider={"error": scrub_optional(error), "error_description": scrub_optional(description)},
        )


class ProviderUnreachable(JobFailed):
    retryable = True

    def __init__(self, message: str, code: ErrorCode = ErrorCode.PROVIDER_UNREACHABLE,
                 retry_after: float | None = None) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after
