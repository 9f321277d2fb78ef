"""The worker's view of Redis: read records, write connectors and jobs.

Synchronous on purpose: a Celery task is synchronous code, and blocking on Redis there
is correct. The API has its own asyncio twin (``api/store.py``) over the same keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis

from tasks.model.records import Certificate, ConnectionPool, Connector, Job, Record, Session
from tasks.storage import schema as keys
from tasks.storage.batch import Batch, batch_script

R = TypeVar("R", bound=Record)


# KEYS: the job, its sealed request, its start count[, its lease]
# ARGV: the lease's token ('' for no lease), the lease's life (ms), the count's life (s)
_START = """
if ARGV[1] ~= '' and not redis.call('set', KEYS[4], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0, redis.call('pttl', KEYS[4])}
end
local job = redis.call('get', KEYS[1])
if not job then return {1, false, false, 0} end
local starts = redis.call('incr', KEYS[3])
if starts == 1 then redis.call('expire', KEYS[3], ARGV[3]) end
return {1, job, redis.call('get', KEYS[2]), starts}
"""


@dataclass
class Start:
    """What ``start_job`` found: another run's lease (its ``PTTL``), or the job to run."""

    taken_ms: int | None = None
    job: Job | None = None
    sealed: str | None = None   # the job's sealed request
    starts: int = 0             # this start included


class Store:
    def __init__(self, client: redis.Redis, job_ttl_seconds: int) -> None:
        self.redis = client
        self.job_ttl = job_ttl_seconds
        self._start = client.register_script(_START)
        self._batch_script = batch_script(client)

    def _get(self, model: type[R], key: str) -> R | None:
        raw = self.redis.get(key)
        return None if raw is None else model.model_validate_json(raw)

    def job(self, tenant: str, job_id: str) -> Job | None:
        raw = self.redis.get(keys.job(tenant, job_id))
        return None if raw is None else Job.from_stored(raw, tenant)

    def start_job(self, tenant: str, job_id: str, lease_key: str | None = None, token: str = "",
                  lease_ms: int = 0) -> Start:
        """Start a run: take the lease (if given), read the job and its sealed request, and
        count the start, in one atomic round trip. A start is counted before the job runs, so
        a run that kills its worker still counts (``max_attempts`` ends a poison job)."""
        job_keys = [keys.job(tenant, job_id), keys.submission(tenant, job_id), keys.job_starts(tenant, job_id)]
        reply = self._start(keys=job_keys + ([lease_key] if lease_key else []),
                            args=[token if lease_key else "", lease_ms, self.job_ttl])
        if not reply[0]:
            return Start(taken_ms=int(reply[1]))
        _, raw_job, sealed, starts = reply
        return Start(job=None if raw_job is None else Job.from_stored(raw_job, tenant),
                     sealed=sealed.decode() if isinstance(sealed, bytes) else sealed, starts=int(starts))

    def batch(self) -> Batch:
        return Batch(self._batch_script)

    def save_job(self, job: Job, also: Callable[[Batch], None] | None = None) -> bool:
        """Store the job and tell its watchers, in one atomic batch; ``also`` adds writes
        (metrics, a connector, the lease's release) that land with the job's new state or not
        at all, and perhaps guards (``Batch.expect``): False if one failed and nothing was written."""
        # A finished job (and what hangs off it) is kept for job_ttl, then expires.
        ttl = self.job_ttl if job.finished else None
        batch = self.batch()
        if also is not None:
            also(batch)
        batch.set(keys.job(job.tenant, job.id), job.stored_json(), ex=ttl)
        if ttl:
            batch.expire(keys.submission(job.tenant, job.id), ttl)
            batch.expire(keys.job_starts(job.tenant, job.id), ttl)
            batch.srem(keys.active_jobs(job.tenant), job.id)  # idempotent: a re-save changes nothing
        batch.publish(keys.job_events(job.tenant, job.id), job.status)
        return batch.execute()

    def connector(self, tenant: str, connector_id: str) -> Connector | None:
        return self._get(Connector, keys.connector(tenant, connector_id))

    def write_connector(self, pipe: redis.client.Pipeline | Batch, connector: Connector) -> None:
        """Queue the connector's writes on ``pipe`` (its record, the tenant's index, the refresh schedule)."""
        pipe.set(keys.connector(connector.tenant, connector.id), connector.model_dump_json())
        pipe.zadd(keys.connectors(connector.tenant), {connector.id: connector.created_at.timestamp()}, nx=True)
        member = keys.expiring_member(connector.tenant, connector.id)
        expires = connector.credentials.expires_at
        if connector.status == "authorised" and expires is not None:
            pipe.zadd(keys.EXPIRING, {member: expires.timestamp()})  # the refresh scheduler reads this
        else:
            pipe.zrem(keys.EXPIRING, member)

    def save_connector(self, connector: Connector) -> None:
        batch = self.batch()
        self.write_connector(batch, connector)
        batch.execute()

    def replace_connector_if(self, connector: Connector, expected_version: int) -> bool:
        """Write ``connector`` only if the stored one still has ``expected_version`` (CAS)."""
        key = keys.connector(connector.tenant, connector.id)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                raw = pipe.get(key)
                if raw is None or Connector.model_validate_json(raw).credential_version != expected_version:
                    return False
                pipe.multi()
                self.write_connector(pipe, connector)
                pipe.execute()
                return True
            except redis.WatchError:
                return False

    def replace_connector_if_exists(self, connector: Connector) -> bool:
        """Write ``connector`` over the stored one; False, writing nothing, if it was deleted."""
        key = keys.connector(connector.tenant, connector.id)
        while True:
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    if not pipe.exists(key):
                        return False
                    pipe.multi()
                    self.write_connector(pipe, connector)
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue  # changed meanwhile (a refresh, or a delete): look again

    def create_job(self, job: Job, sealed_submission: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.set(keys.job(job.tenant, job.id), job.stored_json())
            pipe.set(keys.submission(job.tenant, job.id), sealed_submission)
            pipe.sadd(keys.active_jobs(job.tenant), job.id)
            pipe.execute()

    def session(self, tenant: str, session_id: str) -> Session | None:
        return self._get(Session, keys.session(tenant, session_id))

    def certificate(self, tenant: str, certificate_id: str) -> Certificate | None:
        return self._get(Certificate, keys.certificate(tenant, certificate_id))

    def pool(self, tenant: str, pool_id: int) -> ConnectionPool | None:
        return self._get(ConnectionPool, keys.pool(tenant, pool_id))

    def heartbeat(self, worker_name: str) -> None:
        self.redis.zadd(keys.WORKERS, {worker_name: time.time()})
