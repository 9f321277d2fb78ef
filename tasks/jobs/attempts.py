"""How a job's attempts are counted, spaced and given up on: the backoff between attempts, the
bound on deferrals (contract §8), and the failures a job ends with when it will not run again."""

from __future__ import annotations

from typing import Any

from tasks.errors import Deferred, ErrorCode, JobFailed
from tasks.model.records import Job
from tasks.storage import schema

MAX_BACKOFF = 60.0
# A job is deferred at most this long in all (contract §8), in steps of at most a minute (the
# worker's countdown is capped the same: worker/timings.MAX_COUNTDOWN).
DEFERRED_AT_MOST = 3600.0
DEFER_STEP_AT_MOST = 60.0
WAITING_FOR = {"provider_rate_limited": "the provider's Retry-After", "rate_limit": "the connector's rate limit",
               "connection_pool": "a slot of the connector's connection pool",
               "refresh_lock": "the connector's refresh lock"}


def backoff(attempt: int, hint: float | None = None) -> float:
    """Exponential backoff (1, 2, 4 … s, capped), or the provider's Retry-After when larger."""
    delay = min(MAX_BACKOFF, 2.0 ** max(0, attempt - 1))
    return min(MAX_BACKOFF, max(delay, hint or 0.0))


def attempts(n: int) -> str:
    return f"{n} attempt{'' if n == 1 else 's'}"


def gave_up(failure: JobFailed, tried: int) -> JobFailed:
    """A retryable failure met on the last attempt: the job will not run again, and says so."""
    return JobFailed(failure.code, f"{failure.message.rstrip('.')}; gave up after {attempts(tried)}.",
                     failure.field, retryable=False, provider=failure.provider)


def gave_up_waiting(deferred_so_far: float, deferred: Deferred) -> JobFailed:
    """A job that would be deferred more than ``DEFERRED_AT_MOST`` in all: failed, not deferred again."""
    return JobFailed(ErrorCode.PROVIDER_RATE_LIMITED,
                     f"Gave up waiting for {WAITING_FOR.get(deferred.reason, deferred.reason)}: the job was deferred "
                     f"{deferred_so_far:.0f} s and would wait {deferred.delay:.0f} s more "
                     f"(at most {DEFERRED_AT_MOST:.0f} s in all).", retryable=False)


def kept_at_most(job: Job, body: dict[str, Any]) -> int | None:
    """A refresh the scan queued by itself is kept a short while once it ends; any other job
    ``AUTHQ_JOB_TTL_SECONDS`` (None)."""
    return schema.SCHEDULED_JOB_KEPT_SECONDS if job.type == "refresh" and body.get("scheduled") is True else None
