"""How the API hands a job to the workers, without knowing what carries it.

The Celery implementation lives in ``worker/publisher.py``; the API is given one by its
entrypoint. Only ids travel: the task re-reads everything else from Redis.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

INTERACTIVE = "authq.interactive"   # authorise, reauthorise, authenticate, woo app auth: a user waits
BACKGROUND = "authq.background"     # refresh: nobody waits; scales apart

QUEUE_OF_TYPE = {
    "authorise": INTERACTIVE,
    "reauthorise": INTERACTIVE,
    "authenticate": INTERACTIVE,
    "woo_app_auth": INTERACTIVE,
    "refresh": BACKGROUND,
}


class JobQueue(Protocol):
    async def enqueue(self, tenant: str, job_id: str, job_type: str, request_id: str | None = None) -> None:
        """Publish the job; raise if the broker did not take it. ``request_id``: the submitting
        request's, logged with every line of the job's run."""

    async def close(self) -> None: ...


@runtime_checkable
class InlineJobQueue(JobQueue, Protocol):
    """A queue whose broker is the store's Redis: its message joins the store's transaction."""

    def inline_message(self, tenant: str, job_id: str, job_type: str,
                       request_id: str | None = None) -> tuple[str, str]:
        """(Redis list, payload) to push in the same transaction as the job record."""

    def depth_keys(self, queue: str) -> list[str]:
        """The store's Redis lists that hold ``queue``'s waiting messages (their LLENs sum to its depth)."""
