"""The net under the broker: an accepted job whose message is gone is queued again.

kombu's Redis transport takes a message off its queue (``BRPOP``) and only then records it
as delivered (the ``unacked`` hash): a worker SIGKILLed, or a Redis shut down, between the
two loses that message, and its job would stay ``queued`` for ever (the chaos run, with a
Redis restart under load, shows it). A job published after it was stored (a scheduled
refresh; any ``amqp://``-less deployment whose publisher died in between) has the same gap.

So every ``SWEEP_EVERY`` seconds one worker of the fleet (a Redis lock) looks at the jobs
that are not finished (every tenant's ``active-jobs`` set) and at every message there is:
each queue (all priority lists) and the ``unacked`` hash (delivered: running, or held for a
countdown). A job with no message, no run holding its lease, and older than ``MIN_AGE``, is
a suspect; a suspect still without a message and unchanged at the next sweep is published
again. The second look is what makes a message caught between two places (popped, not yet
recorded) never count as missing.

Publishing a job that does have a message somewhere nobody looked is harmless: a finished
job is left alone by ``run_job``, and the run lease keeps two deliveries from running it at
once. Only the Redis transport is swept; AMQP takes back unacked messages itself.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis
from celery import Celery
from kombu.transport.redis import Channel

from tasks.jobs.queue_port import QUEUE_OF_TYPE
from tasks.model.records import Job
from tasks.storage import schema
from worker.bootstrap import context_for

log = logging.getLogger("authq.worker")

SWEEP_EVERY = 30.0
MIN_AGE = 30.0           # seconds since the job was created before it can be a suspect
LOCK = schema.ORPHAN_SWEEP_LOCK
SUSPECTS = schema.ORPHAN_SUSPECTS             # hash: orphan_suspect(tenant, job_id) -> what the job looked like
UNACKED = Channel.unacked_key                 # kombu's defaults: authq sets no other names
PAGE = 1000
Publish = Callable[[str, str, str], None]      # (tenant, job_id, job_type)


def queue_lists() -> list[str]:
    """Every Redis list kombu keeps authq's queues in (one per priority step)."""
    names = sorted(set(QUEUE_OF_TYPE.values()))
    return [q for name in names
            for q in [name] + [f"{name}{Channel.sep}{step}" for step in Channel.priority_steps if step]]


def _job_of(envelope: dict[str, Any]) -> tuple[str, str] | None:
    """(tenant, job_id) of an ``authq.run_job`` message (protocol v2, base64 body)."""
    try:
        if envelope.get("headers", {}).get("task") != "authq.run_job":
            return None
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return str(args[0]), str(args[1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def jobs_with_a_message(client: redis.Redis) -> set[tuple[str, str]]:
    """Every (tenant, job_id) that has a message queued or delivered, as Redis has them now."""
    found: set[tuple[str, str]] = set()

    def add(raws: Iterable[bytes], unacked: bool) -> None:
        for raw in raws:
            try:
                item = json.loads(raw)
            except ValueError:
                continue
            job = _job_of(item[0] if unacked else item)
            if job:
                found.add(job)

    # Delivered first, then queued: a message restored in between is seen in its queue;
    # one taken in between is missed, and is found (delivered) at the next sweep.
    add(client.hvals(UNACKED), unacked=True)
    for name in queue_lists():
        start = 0
        while True:
            page = client.lrange(name, start, start + PAGE - 1)
            add(page, unacked=False)
            if len(page) < PAGE:
                break
            start += PAGE
    return found


def unfinished_jobs(client: redis.Redis) -> list[Job]:
    jobs: list[Job] = []
    for set_key in client.scan_iter(match=schema.active_jobs.pattern(), count=500):
        found = schema.active_jobs.parse(set_key)
        if found is None or found.tenant is None:
            continue
        tenant = found.tenant
        ids = [m.decode() for m in client.smembers(set_key)]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for raw in client.mget([schema.job(tenant, j) for j in chunk]):
                if raw is None:
                    continue
                job = Job.from_stored(raw, tenant)
                if not job.finished:
                    jobs.append(job)
    return jobs


def _looks(job: Job) -> str:
    return f"{job.status}/{job.attempts}/{len(job.progress)}"


def sweep(client: redis.Redis, publish: Publish, now: float | None = None) -> int:
    """One sweep (the caller holds the fleet's lock); returns how many jobs it queued again."""
    now = time.time() if now is None else now
    old = [j for j in unfinished_jobs(client) if now - j.created_at.timestamp() >= MIN_AGE]
    suspects: dict[str, str] = {}
    if old:
        leased = client.mget([schema.job_lease(j.tenant, j.id) for j in old])
        candidates = [j for j, lease in zip(old, leased) if lease is None]
        if candidates:
            present = jobs_with_a_message(client)
            suspects = {schema.orphan_suspect(j.tenant, j.id): _looks(j) for j in candidates
                        if (j.tenant, j.id) not in present}
    earlier = {k.decode(): v.decode() for k, v in client.hgetall(SUSPECTS).items()}
    requeued = 0
    by_key = {schema.orphan_suspect(j.tenant, j.id): j for j in old}
    for key, looks in suspects.items():
        if earlier.get(key) == looks:
            job = by_key[key]
            publish(job.tenant, job.id, job.type)
            requeued += 1
            log.warning("job had no message left in the broker; queued it again",
                        extra={"job_id": job.id, "tenant": job.tenant, "status": job.status,
                               "attempts": job.attempts})
    with client.pipeline() as pipe:
        pipe.delete(SUSPECTS)
        fresh = {k: v for k, v in suspects.items() if earlier.get(k) != v}  # the requeued start over
        if fresh:
            pipe.hset(SUSPECTS, mapping=fresh)
            pipe.expire(SUSPECTS, int(SWEEP_EVERY * 4))
        pipe.execute()
    return requeued


def start_sweeper(app: Celery, stop: threading.Event) -> None:
    """The sweeping thread of this worker (the lock makes one sweep per period fleet-wide)."""
    settings = app.authq_settings  # type: ignore[attr-defined]
    if settings.broker_url not in (None, settings.redis_url):
        return  # another broker (amqp://, another Redis): its messages are not ours to read

    def loop() -> None:
        from worker.tasks import publisher

        publish = publisher(app)
        while not stop.wait(SWEEP_EVERY):
            try:
                client = context_for(app).store.redis
                if client.set(LOCK, "1", nx=True, ex=max(1, int(SWEEP_EVERY * 0.9))):
                    sweep(client, publish)
            except Exception:  # noqa: BLE001 - Redis away or a bug: try again next period
                log.warning("orphan sweep failed", exc_info=True)

    threading.Thread(target=loop, name="authq-orphan-sweep", daemon=True).start()
