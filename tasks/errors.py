"""Every error authq raises on purpose, in one place.

    AuthqError                  base: catch this to catch anything authq meant to raise
    ├── ConfigError             settings, secret key or catalog unusable: a start-up error
    ├── RequestInvalid          a request breaks the contract's rules -> HTTP 422
    ├── NotFound                no such record for this tenant -> HTTP 404
    ├── RetryLater              not an error of the job: run it again after ``delay`` seconds
    │   └── Deferred            a rate-limit permit or pool slot is not free yet (no attempt used)
    └── JobFailed               a job ends ``failed`` with ``error.code`` (contract §6)
        ├── ProviderError       the provider answered with an OAuth/HTTP error of its own
        └── ProviderUnreachable network error, 5xx or 429 from the provider: retryable

A ``JobFailed`` is an answer, not a crash: the job runner turns it into the job's
``error`` object. Anything else escaping a job is a bug and is retried, then failed.
"""

from __future__ import annotations

from typing import Any

from tasks.telemetry.redaction import scrub_optional


class AuthqError(Exception):
    """Base of every deliberate authq error."""


class ConfigError(AuthqError):
    """The service cannot start as configured; the message says what to change."""


class RequestInvalid(AuthqError):
    """Validation failure, rendered as ``422 {"message", "errors": {path: [msg]}}``."""

    def __init__(self, errors: dict[str, list[str]], message: str | None = None) -> None:
        self.errors = errors
        first = next(iter(errors.values()), ["The given data was invalid."])[0]
        extra = sum(len(v) for v in errors.values()) - 1
        self.message = message or (first if extra <= 0 else f"{first} (and {extra} more error{'s' if extra > 1 else ''})")
        super().__init__(self.message)

    @classmethod
    def one(cls, field: str, message: str) -> "RequestInvalid":
        return cls({field: [message]})


class NotFound(AuthqError):
    """The record does not exist for this tenant (another tenant's record included)."""

    def __init__(self, what: str = "Resource") -> None:
        self.message = f"{what} not found."
        super().__init__(self.message)


class RetryLater(AuthqError):
    """The job runner asks its host (Celery) to run the job again after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        super().__init__(f"retry in {delay:.1f}s")


class Deferred(RetryLater):
    """A permit is not free for ``delay`` seconds: defer the job; this is not a failed attempt."""

    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(delay)
        self.reason = reason


class JobFailed(AuthqError):
    """A job's end with one of the contract's error codes."""

    retryable = False

    def __init__(
        self,
        code: str,
        message: str,
        field: str | None = None,
        *,
        retryable: bool | None = None,
        provider: dict[str, Any] | None = None,
    ) -> None:
        self.code = code
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
            "provider_error",
            scrub_optional(message) or message,
            provider={"error": scrub_optional(error), "error_description": scrub_optional(description)},
        )


class ProviderUnreachable(JobFailed):
    retryable = True

    def __init__(self, message: str, code: str = "provider_unreachable", retry_after: float | None = None) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after
