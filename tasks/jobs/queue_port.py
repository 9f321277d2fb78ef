"""How the API hands a job to the workers, without knowing what carries it.

The Celery implementation lives in ``worker/publisher.py``; the API is given one by its
entrypoint. Ids travel, and a copy of the job as accepted with its sealed request
(``JobCopy``): a worker runs a job that needs nobody else from the copy and ends it in one
round trip, if the stored job is still that copy (``tasks.jobs.runner``). The record in Redis
stays the truth: a stale or missing copy only means the job is read from Redis first.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

INTERACTIVE = "authq.interactive"   # authorise, reauthorise, authenticate, woo app auth: a user waits
BACKGROUND = "authq.background"     # refresh: nobody waits; scales apart

QUEUE_OF_TYPE = {
    "authorise": INTERACTIVE,
    "reauthorise": INTERACTIVE,
    "authenticate": INTERACTIVE,
    "woo_app_auth": INTERACTIVE,
    "refresh": BACKGROUND,
}




class JobCopy(NamedTuple):
    """The job as accepted (its stored JSON) and its sealed request, carried by its message."""

    job: str
    sealed: str


def message_kwargs(request_id: str | None, copy: JobCopy | None) -> dict[str, str | None]:
    """The task's keyword arguments (``worker.tasks.run_job_task``)."""
    kwargs: dict[str, str | None] = {"request_id": request_id}
    if copy is not None:
        kwargs.update(job=copy.job, sealed=copy.sealed)
    return kwargs


def kwargs_repr(request_id: str | None) -> str:
    """What Celery shows of the arguments (its logs, Flower): the request id, not the copy."""
    return repr({"request_id": request_id})


class JobQueue(Protocol):
    async def enqueue(self, tenant: str, job_id: str, job_type: str, request_id: str | None = None,
                      copy: JobCopy | None = None) -> None:
        """Publish the job; raise if the broker did not take it. ``request_id``: the submitting
        request's, logged with every line of the job's run; ``copy``: see ``JobCopy``."""

    async def close(self) -> None: ...


@runtime_checkable
class InlineJobQueue(JobQueue, Protocol):
    """A queue whose broker is the store's Redis: its message joins the store's transaction."""

    def inline_message(self, tenant: str, job_id: str, job_type: str, request_id: str | None = None,
                       copy: JobCopy | None = None) -> tuple[str, str]:
        """(Redis list, payload) to push in the same transaction as the job record."""

    def depth_keys(self, queue: str) -> list[str]:
        """The store's Redis lists that hold ``queue``'s waiting messages (their LLENs sum to its depth)."""
