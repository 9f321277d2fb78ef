"""Publishing a job in the same Redis transaction that stores it.

When the broker *is* the store's Redis (the default), the API need not make a second
round trip through Celery's blocking producer: it adds the Celery message (protocol v2,
as kombu's Redis transport lays it out) to the ``MULTI`` that writes the job record. The
job is then accepted and queued atomically — there is no moment at which a 202'd job
exists without its message, or the reverse — and at the cost of one Redis write.
With any other broker (``amqp://``, another Redis) ``CeleryJobQueue`` is used instead.
"""

from __future__ import annotations

import base64
import json
import uuid

from celery import Celery
from kombu.serialization import dumps

from tasks.jobqueue import QUEUE_OF_TYPE

from .tasks import RUN_JOB


class RedisInlineQueue:
    def __init__(self, app: Celery) -> None:
        self.app = app

    def inline_message(self, tenant: str, job_id: str, job_type: str) -> tuple[str, str]:
        """(Redis list, payload) to ``LPUSH`` in the caller's transaction."""
        queue = QUEUE_OF_TYPE[job_type]
        task_id = str(uuid.uuid4())
        message = self.app.amqp.as_task_v2(task_id, RUN_JOB, args=(tenant, job_id), kwargs={})
        content_type, encoding, body = dumps(message.body, serializer="json")
        raw = body.encode() if isinstance(body, str) else body
        properties = dict(message.properties)
        properties.update({
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        })
        envelope = {"body": base64.b64encode(raw).decode(), "content-encoding": encoding,
                    "content-type": content_type, "headers": message.headers, "properties": properties}
        return queue, json.dumps(envelope)

    async def enqueue(self, tenant: str, job_id: str, job_type: str) -> None:
        raise RuntimeError("RedisInlineQueue publishes inside the store's transaction (inline_message)")

    async def close(self) -> None:
        self.app.close()
