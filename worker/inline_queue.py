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
from kombu.transport.redis import Channel

from tasks.jobqueue import QUEUE_OF_TYPE

from .tasks import RUN_JOB


_TEMPLATE_ID = "00000000-0000-0000-0000-000000000000"


class RedisInlineQueue:
    def __init__(self, app: Celery) -> None:
        self.app = app
        # Celery builds one message as a template; each job then changes only the fields that
        # are per message (ids, arguments). ``as_task_v2`` on every request cost more than the
        # rest of the message (see bench/); tests/test_inline_queue.py holds the two equal.
        sample = app.amqp.as_task_v2(_TEMPLATE_ID, RUN_JOB, args=("", ""), kwargs={})
        self._headers = dict(sample.headers)
        self._properties = dict(sample.properties)
        self._embed = sample.body[2]
        self._content_type, self._encoding, _ = dumps(sample.body, serializer="json")

    def inline_message(self, tenant: str, job_id: str, job_type: str) -> tuple[str, str]:
        """(Redis list, payload) to ``LPUSH`` in the caller's transaction."""
        queue = QUEUE_OF_TYPE[job_type]
        task_id = str(uuid.uuid4())
        headers = {**self._headers, "id": task_id, "root_id": task_id, "argsrepr": repr((tenant, job_id))}
        body = json.dumps([[tenant, job_id], {}, self._embed]).encode()
        properties = {**self._properties, "correlation_id": task_id, "delivery_mode": 2,
                      "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
                      "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())}
        envelope = {"body": base64.b64encode(body).decode(), "content-encoding": self._encoding,
                    "content-type": self._content_type, "headers": headers, "properties": properties}
        return queue, json.dumps(envelope)

    def depth_keys(self, queue: str) -> list[str]:
        """kombu's Redis transport keeps a queue as one list per priority step (priority 0,
        the one authq uses, is the bare name); waiting messages are in these lists, while those
        a worker has taken (running, or held for a retry countdown) are not."""
        return [queue] + [f"{queue}{Channel.sep}{step}" for step in Channel.priority_steps if step]

    async def enqueue(self, tenant: str, job_id: str, job_type: str) -> None:
        raise RuntimeError("RedisInlineQueue publishes inside the store's transaction (inline_message)")

    async def close(self) -> None:
        self.app.close()
