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
import re

from celery import Celery
from kombu.serialization import dumps
from kombu.transport.redis import Channel

from tasks.jobs.queue_port import QUEUE_OF_TYPE, JobCopy, kwargs_repr, message_kwargs
from tasks.model.ids import unique_id
from worker.tasks import RUN_JOB

_TEMPLATE_ID = "00000000-0000-0000-0000-000000000000"
# The per-message fields, marked in the rendered envelope by a string no real value is:
# "\x00name\x00", which JSON renders as "\u0000name\u0000".
_FIELDS = ("task_id", "argsrepr", "kwargsrepr", "queue", "delivery_tag", "body")
_MARKED = re.compile(r'("\\u0000[a-z_]+\\u0000")')


def _marker(name: str) -> str:
    return f"\x00{name}\x00"


_FIELD_OF = {json.dumps(_marker(name)): name for name in _FIELDS}  # rendered marker -> field


class RedisInlineQueue:
    def __init__(self, app: Celery) -> None:
        self.app = app
        # Celery builds one message, once; it is rendered to JSON with markers where the
        # per-message fields go (ids, arguments, queue), and each job fills them in. Building
        # the message per request (``as_task_v2`` then ``json.dumps``) cost more than the rest
        # of accepting a job (see bench/); tests/test_inline_queue.py holds the two equal.
        sample = app.amqp.as_task_v2(_TEMPLATE_ID, RUN_JOB, args=("", ""), kwargs={})
        content_type, encoding, _ = dumps(sample.body, serializer="json")
        task_id = _marker("task_id")
        headers = {**sample.headers, "id": task_id, "root_id": task_id, "argsrepr": _marker("argsrepr"),
                   "kwargsrepr": _marker("kwargsrepr")}
        properties = {**sample.properties, "correlation_id": task_id, "delivery_mode": 2,
                      "delivery_info": {"exchange": "", "routing_key": _marker("queue")}, "priority": 0,
                      "body_encoding": "base64", "delivery_tag": _marker("delivery_tag")}
        envelope = {"body": _marker("body"), "content-encoding": encoding, "content-type": content_type,
                    "headers": headers, "properties": properties}
        # (literal JSON, None) or ("", field): the rendered envelope, cut at its markers
        self._template = [("", _FIELD_OF[piece]) if piece in _FIELD_OF else (piece, None)
                          for piece in _MARKED.split(json.dumps(envelope))]
        self._embed = json.dumps(sample.body[2])

    def inline_message(self, tenant: str, job_id: str, job_type: str, request_id: str | None = None,
                       copy: JobCopy | None = None) -> tuple[str, str]:
        """(Redis list, payload) to ``LPUSH`` in the caller's transaction."""
        queue = QUEUE_OF_TYPE[job_type]
        args = f"[{json.dumps(tenant)}, {json.dumps(job_id)}]"
        kwargs = message_kwargs(request_id, copy)
        body = base64.b64encode(f"[{args}, {json.dumps(kwargs)}, {self._embed}]".encode()).decode()
        values = {"task_id": json.dumps(unique_id()), "argsrepr": json.dumps(repr((tenant, job_id))),
                  "kwargsrepr": json.dumps(kwargs_repr(request_id)),
                  "queue": json.dumps(queue), "delivery_tag": json.dumps(unique_id()), "body": f'"{body}"'}
        return queue, "".join(values[field] if field else piece for piece, field in self._template)

    def depth_keys(self, queue: str) -> list[str]:
        """kombu's Redis transport keeps a queue as one list per priority step (priority 0,
        the one authq uses, is the bare name); waiting messages are in these lists, while those
        a worker has taken (running, or held for a retry countdown) are not."""
        return [queue] + [f"{queue}{Channel.sep}{step}" for step in Channel.priority_steps if step]

    async def enqueue(self, tenant: str, job_id: str, job_type: str, request_id: str | None = None,
                      copy: JobCopy | None = None) -> None:
        raise RuntimeError("RedisInlineQueue publishes inside the store's transaction (inline_message)")

    async def close(self) -> None:
        self.app.close()
