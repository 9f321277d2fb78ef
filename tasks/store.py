"""The worker's view of Redis: read records, write connectors and jobs.

Synchronous on purpose: a Celery task is synchronous code, and blocking on Redis there
is correct. The API has its own asyncio twin (``api/store.py``) over the same keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import redis

from . import keys
from .records import Certificate, ConnectionPool, Connector, Job, Record, Session

R = TypeVar("R", bound=Record)


class Store:
    def __init__(self, client: redis.Redis, job_ttl_seconds: int) -> None:
        self.redis = client
        self.job_ttl = job_ttl_seconds

    def _get(self, model: type[R], key: str) -> R | None:
        raw = self.redis.get(key)
        return None if raw is None else model.model_validate_json(raw)

    def job(self, tenant: str, job_id: str) -> Job | None:
        raw = self.redis.get(keys.job(tenant, job_id))
        return None if raw is None else Job.from_stored(raw, tenant)

    def job_keys(self, tenant: str, job_id: str) -> list[str]:
        """The keys ``parse_job_and_submission`` reads: the job, and its sealed request."""
        return [keys.job(tenant, job_id), keys.submission(tenant, job_id)]

    def parse_job_and_submission(self, tenant: str, raw_job: bytes | None,
                                 raw_submission: bytes | None) -> tuple[Job | None, str | None]:
        job = None if raw_job is None else Job.from_stored(raw_job, tenant)
        return job, raw_submission.decode() if isinstance(raw_submission, bytes) else raw_submission

    def job_and_submission(self, tenant: str, job_id: str) -> tuple[Job | None, str | None]:
        """The job and its sealed request, in one round trip."""
        return self.parse_job_and_submission(tenant, *self.redis.mget(self.job_keys(tenant, job_id)))

    def save_job(self, job: Job, also: Callable[[redis.client.Pipeline], None] | None = None) -> None:
        """Store the job and tell its watchers; ``also`` adds writes (metrics, a connector) to
        the same transaction, so they land with the job's new state or not at all."""
        # A finished job (and its sealed submission) is kept for job_ttl, then expires.
        ttl = self.job_ttl if job.finished else None
        with self.redis.pipeline() as pipe:
            if also is not None:
                also(pipe)
            pipe.set(keys.job(job.tenant, job.id), job.stored_json(), ex=ttl)
            if ttl:
                pipe.expire(keys.submission(job.tenant, job.id), ttl)
                pipe.srem(keys.active_jobs(job.tenant), job.id)  # idempotent: a re-save changes nothing
            pipe.publish(keys.job_events(job.tenant, job.id), job.status)
            pipe.execute()

    def connector(self, tenant: str, connector_id: str) -> Connector | None:
        return self._get(Connector, keys.connector(tenant, connector_id))

    def write_connector(self, pipe: redis.client.Pipeline, connector: Connector) -> None:
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
        with self.redis.pipeline() as pipe:
            self.write_connector(pipe, connector)
            pipe.execute()

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
