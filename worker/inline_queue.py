"""Publishing a job in the same Redis transaction that stores it.

When the broker *is* the store's Redis (the default), the API need not make a second
round trip through Celery's blocking producer: it adds the job's message (rendered by
``worker.wire``, as Celery would write it) to the ``MULTI`` that writes the job record. The
job is then accepted and queued atomically — there is no moment at which a 202'd job
exists without its message, or the reverse — and at the cost of one Redis write.
With any other broker (``amqp://``, another Redis) ``CeleryJobQueue`` is used instead.

Nothing of Celery is built or imported for this: no app, no producer, no connection.
"""

from __future__ import annotations

from tasks.jobs.queue_port import JobCopy
from worker.wire import InlineMessages, priority_lists


class RedisInlineQueue:
    def __init__(self) -> None:
        self._messages = InlineMessages()

    def inline_message(self, tenant: str, job_id: str, job_type: str, request_id: str | None = None,
                       copy: JobCopy | None = None) -> tuple[str, str]:
        """(Redis list, payload) to ``LPUSH`` in the caller's transaction."""
        return self._messages.render(tenant, job_id, job_type, request_id, copy)

    def depth_keys(self, queue: str) -> list[str]:
        """The lists holding ``queue``'s waiting messages (``worker.wire.priority_lists``)."""
        return priority_lists(queue)

    async def enqueue(self, tenant: str, job_id: str, job_type: str, request_id: str | None = None,
                      copy: JobCopy | None = None) -> None:
        raise RuntimeError("RedisInlineQueue publishes inside the store's transaction (inline_message)")

    async def close(self) -> None:
        """Nothing to close: the store's connection is the API's own."""
