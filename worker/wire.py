"""Celery's wire format, as authq writes and reads it without Celery: the one module that knows it.

Three things depend on how Celery (task protocol 2) and kombu's Redis transport lay out a
message, rather than on an API either promises to keep:

- rendering a job's message (``InlineMessages``): the API pushes it in the transaction that
  stores the job, when the broker is the store's Redis, instead of calling Celery's producer;
- reading the messages there are (``jobs_with_a_message``): every priority list of every
  queue (``priority_lists``) and the transport's ``unacked`` hash, for the orphan sweep;
- the ack emulation's internals the heartbeat touches (``renew_deliveries``): the consumer
  channel's ``QoS`` and its private ``_delivered`` and ``_dirty``.

They were checked against the releases in ``CHECKED_AGAINST``, the series pinned in
pyproject.toml; tests/unit/worker/test_wire.py fails when the installed versions differ, when
a message rendered here is not the one Celery's producer writes, when a real Celery worker
does not run it as sent, or when the internals are not where and what this module expects.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import time
from collections.abc import Iterable
from typing import Any

import redis
from kombu.transport.redis import Channel

from tasks.jobs.queue_port import QUEUE_OF_TYPE, JobCopy, kwargs_repr, message_kwargs
from tasks.model.ids import unique_id

# Release series (major.minor) whose wire format and internals this module was checked against.
CHECKED_AGAINST = {"celery": "5.7", "kombu": "5.7"}

RUN_JOB = "authq.run_job"   # the task's name: what a message asks a worker to run
DELIVER_WEBHOOK = "authq.deliver_webhook"   # one attempt of one webhook delivery (always Celery's producer)
QUEUES = sorted(set(QUEUE_OF_TYPE.values()))
UNACKED = Channel.unacked_key   # hash: delivery tag -> [message, exchange, routing key]
# kombu's defaults: authq sets none of the transport options that rename these.
_PRIORITY_STEPS = [step for step in Channel.priority_steps if step]
_PAGE = 1000


def priority_lists(queue: str) -> list[str]:
    """The Redis lists kombu keeps ``queue`` in, one per priority step; priority 0 (the one
    authq publishes) is the bare name. Waiting messages are in these lists; those a worker
    has taken (running, or held for a retry countdown) are in ``UNACKED``."""
    return [queue] + [f"{queue}{Channel.sep}{step}" for step in _PRIORITY_STEPS]


# --- rendering ------------------------------------------------------------------------------

# The per-message fields, marked in the rendered envelope by a string no real value is:
# "\x00name\x00", which JSON renders as "\u0000name\u0000".
_FIELDS = ("task_id", "argsrepr", "kwargsrepr", "queue", "delivery_tag", "body")
_MARKED = re.compile(r'("\\u0000[a-z_]+\\u0000")')


def _marker(name: str) -> str:
    return f"\x00{name}\x00"


_FIELD_OF = {json.dumps(_marker(name)): name for name in _FIELDS}  # rendered marker -> field


def origin() -> str:
    """Who sent the message, as Celery names a process that is not a worker (``anon_nodename``)."""
    return f"gen{os.getpid()}@{socket.gethostname()}"


class InlineMessages:
    """``authq.run_job`` messages exactly as ``send_task`` through kombu's Redis transport
    writes them to a queue's list.

    The envelope is rendered to JSON once, with markers where the per-message fields go (ids,
    arguments, queue), and each message fills them in: building it per request (Celery's
    ``as_task_v2``, then ``json.dumps``) cost more than the rest of accepting a job (bench/).
    """

    def __init__(self) -> None:
        task_id = _marker("task_id")
        headers: dict[str, Any] = {
            "lang": "py", "task": RUN_JOB, "id": task_id, "shadow": None, "eta": None, "expires": None,
            "group": None, "group_index": None, "retries": 0, "timelimit": [None, None],
            "root_id": task_id, "parent_id": None, "argsrepr": _marker("argsrepr"),
            "kwargsrepr": _marker("kwargsrepr"), "origin": origin(),
            # None: the task's own setting (results ignored) applies, as with send_task
            "ignore_result": None, "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {}}
        # reply_to is empty: nothing answers (no result backend).
        properties: dict[str, Any] = {"correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
                      "delivery_info": {"exchange": "", "routing_key": _marker("queue")}, "priority": 0,
                      "body_encoding": "base64", "delivery_tag": _marker("delivery_tag")}
        envelope = {"body": _marker("body"), "content-encoding": "utf-8", "content-type": "application/json",
                    "headers": headers, "properties": properties}
        # (literal JSON, None) or ("", field): the rendered envelope, cut at its markers
        self._template = [("", _FIELD_OF[piece]) if piece in _FIELD_OF else (piece, None)
                          for piece in _MARKED.split(json.dumps(envelope))]
        self._embed = json.dumps({"callbacks": None, "errbacks": None, "chain": None, "chord": None})

    def render(self, tenant: str, job_id: str, job_type: str, request_id: str | None = None,
               copy: JobCopy | None = None) -> tuple[str, str]:
        """(Redis list, payload) to ``LPUSH``: the job's message on its type's queue."""
        queue = QUEUE_OF_TYPE[job_type]
        args = f"[{json.dumps(tenant)}, {json.dumps(job_id)}]"
        kwargs = message_kwargs(request_id, copy)
        body = base64.b64encode(f"[{args}, {json.dumps(kwargs)}, {self._embed}]".encode()).decode()
        values = {"task_id": json.dumps(unique_id()), "argsrepr": json.dumps(repr((tenant, job_id))),
                  "kwargsrepr": json.dumps(kwargs_repr(request_id)),
                  "queue": json.dumps(queue), "delivery_tag": json.dumps(unique_id()), "body": f'"{body}"'}
        return queue, "".join(values[field] if field else piece for piece, field in self._template)


# --- reading --------------------------------------------------------------------------------

def job_of(envelope: Any) -> tuple[str, str] | None:
    """(tenant, job_id) of an ``authq.run_job`` message (protocol 2); None for anything else."""
    try:
        if envelope["headers"]["task"] != RUN_JOB:
            return None
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return str(args[0]), str(args[1])
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None


def jobs_with_a_message(client: redis.Redis) -> set[tuple[str, str]]:
    """Every (tenant, job_id) that has a message queued or delivered, as Redis has them now."""
    found: set[tuple[str, str]] = set()

    def add(raws: Iterable[bytes | str], delivered: bool) -> None:
        for raw in raws:
            try:
                item = json.loads(raw)
                job = job_of(item[0] if delivered else item)  # delivered: [message, exchange, routing key]
            except (ValueError, KeyError, IndexError, TypeError):
                continue
            if job:
                found.add(job)

    # Delivered first, then queued: a message restored in between is seen in its queue;
    # one taken in between is missed, and is found (delivered) at the next sweep.
    add(client.hvals(UNACKED), delivered=True)
    for name in (name for queue in QUEUES for name in priority_lists(queue)):
        start = 0
        while True:
            page = client.lrange(name, start, start + _PAGE - 1)
            add(page, delivered=False)
            if len(page) < _PAGE:
                break
            start += _PAGE
    return found


# --- the ack emulation the heartbeat renews -------------------------------------------------

def _unacked_tags(qos: Any) -> list[str]:
    # The consumer's thread changes these while we read them: copy, and try again if it
    # changed under us (the next beat is a few seconds away anyway).
    for _ in range(5):
        try:
            dirty = set(qos._dirty)       # acked, not yet removed from _delivered
            return [tag for tag in list(qos._delivered) if tag not in dirty]
        except RuntimeError:
            continue
    return []


def renew_deliveries(consumer: Any) -> int:
    """Re-score the messages a Celery worker's consumer holds unacked in the Redis transport's
    index (``unacked_index``: delivery tag -> time of delivery), as if delivered now; returns
    how many. ``ZADD XX``: a message acked meanwhile is never brought back.

    Other transports (AMQP) redeliver when the consumer's connection closes: nothing to do.
    """
    channel = getattr(getattr(consumer, "task_consumer", None), "channel", None)
    qos = getattr(channel, "qos", None)
    index_key = getattr(qos, "unacked_index_key", None) if qos is not None else None
    if channel is None or not index_key:
        return 0
    tags = _unacked_tags(qos)
    if not tags:
        return 0
    now = time.time()
    with channel.conn_or_acquire() as client:  # a client on the channel's own (thread-safe) pool
        client.zadd(index_key, {tag: now for tag in tags}, xx=True)
    return len(tags)
