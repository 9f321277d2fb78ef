"""The net under the broker: an accepted job whose message is gone is queued again.

kombu's Redis transport takes a message off its queue (``BRPOP``) and only then records it
as delivered (the ``unacked`` hash): a worker SIGKILLed, or a Redis shut down, between the
two loses that message, and its job would stay ``queued`` for ever (the chaos run, with a
Redis restart under load, shows it). A job published after it was stored (a scheduled
refresh; any ``amqp://``-less deployment whose publisher died in between) has the same gap.

So every ``SWEEP_EVERY`` seconds one worker of the fleet (a Redis lock) looks at the jobs
that are not finished (every tenant's ``active-jobs`` set) and at every message there is:
each queue (all priority lists) and the ``unacked`` hash (delivered: running, or held for a
countdown), as ``worker.wire.jobs_with_a_message`` reads them. A job with no message, no
run holding its lease, and older than ``MIN_AGE``, is a suspect; a suspect still without a
message and unchanged at the next sweep is published again. The second look is what makes
a message caught between two places (popped, not yet recorded) never count as missing.

Publishing a job that does have a message somewhere nobody looked is harmless: a finished
job is left alone by ``run_job``, and the run lease keeps two deliveries from running it at
once. Only the Redis transport is swept; AMQP takes back unacked messages itself.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from redis.typing import EncodableT, FieldT

from tasks.jobs.scheduling import Publish
from tasks.model.records import Job
from tasks.storage import schema
from worker.bootstrap import WorkerRuntime
from worker.wire import jobs_with_a_message

log = logging.getLogger("authq.worker")

SWEEP_EVERY = 30.0
MIN_AGE = 30.0           # seconds since the job was created before it can be a suspect
LOCK = schema.ORPHAN_SWEEP_LOCK
SUSPECTS = schema.ORPHAN_SUSPECTS             # hash: orphan_suspect(tenant, job_id) -> what the job looked like


def unfinished_jobs(client: redis.Redis) -> list[Job]:
    jobs: list[Job] = []
    for set_key in client.scan_iter(match=schema.active_jobs.pattern(), count=500):
        found = schema.active_jobs.parse(set_key)
        if found is None or found.tenant is None:
            continue
        tenant = found.tenant
        ids = [_text(m) for m in client.smembers(set_key)]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for raw in client.mget([schema.job(tenant, j) for j in chunk]):
                if raw is None:
                    continue
                job = Job.from_stored(raw, tenant)
                if not job.finished:
                    jobs.append(job)
    return jobs


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _looks(job: Job) -> str:
    return f"{job.status}/{job.attempts}/{len(job.progress)}"


def sweep(client: redis.Redis, publish: Publish, now: float | None = None) -> int:
    """One sweep (the caller holds the fleet's lock); returns how many jobs it queued again."""
    now = time.time() if now is None else now
    old = [j for j in unfinished_jobs(client) if now - j.created_at.timestamp() >= MIN_AGE]
    suspects: dict[str, str] = {}
    if old:
        leased = client.mget([schema.job_lease(j.tenant, j.id) for j in old])
        candidates = [j for j, lease in zip(old, leased, strict=True) if lease is None]
        if candidates:
            present = jobs_with_a_message(client)
            suspects = {schema.orphan_suspect(j.tenant, j.id): _looks(j) for j in candidates
                        if (j.tenant, j.id) not in present}
    earlier = {_text(k): _text(v) for k, v in client.hgetall(SUSPECTS).items()}
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
        # the requeued start over (typed as redis-py's hset takes it: its Mapping's key type is invariant)
        fresh: dict[FieldT, EncodableT] = {k: v for k, v in suspects.items() if earlier.get(k) != v}
        if fresh:
            pipe.hset(SUSPECTS, mapping=fresh)
            pipe.expire(SUSPECTS, int(SWEEP_EVERY * 4))
        pipe.execute()
    return requeued


def sweep_periodically(runtime: WorkerRuntime, publish: Publish, stop: threading.Event) -> None:
    """Until ``stop``: this worker's sweeps (the lock makes one sweep per period fleet-wide).
    Only for a broker that is the store's Redis: another broker's messages are not ours to read."""
    while not stop.wait(SWEEP_EVERY):
        try:
            client = runtime.context().store.redis
            if client.set(LOCK, "1", nx=True, ex=max(1, int(SWEEP_EVERY * 0.9))):
                sweep(client, publish)
        except Exception:  # noqa: BLE001 - Redis away or a bug: try again next period
            log.warning("orphan sweep failed", exc_info=True)
