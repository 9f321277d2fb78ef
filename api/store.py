"""The API's view of Redis (asyncio): create and read the tenant's records, queue jobs.

Only this module talks to Redis on the request path; views call it and render views.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from api.pipelining import AutoPipeline
from tasks.model.records import ApiKey, Certificate, ConnectionPool, Connector, Job, Record, Session, utcnow
from tasks.storage import schema as keys
from tasks.storage import states

R = TypeVar("R", bound=Record)
READY_WINDOW_SECONDS = 30

# KEYS: job, submission, the tenant's active set[, the broker list]; ARGV: job JSON, sealed
# request, job id, cap (0 = none)[, Celery message]. The cap check and the writes are one step.
_ACCEPT = """
if tonumber(ARGV[4]) > 0 and redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
if #KEYS == 4 then
  redis.call('LPUSH', KEYS[4], ARGV[5])
end
return 1
"""


class ApiStore:
    def __init__(self, client: Redis) -> None:
        self.redis = client
        self.pipelined = AutoPipeline(client)  # the hot paths: concurrent requests share round trips

    async def _get(self, model: type[R], key: str) -> R | None:
        raw = await self.redis.get(key)
        return None if raw is None else model.model_validate_json(raw)

    async def _page(self, model: type[R], index: str, record_key, page: int, per_page: int) -> tuple[list[R], int]:  # type: ignore[no-untyped-def]
        total = await self.redis.zcard(index)
        start = (page - 1) * per_page
        if start >= total:  # past the end (and never an index Redis cannot take: page has no upper bound)
            return [], total
        ids = await self.redis.zrange(index, start, start + per_page - 1)
        if not ids:
            return [], total
        raws = await self.redis.mget([record_key(i.decode()) for i in ids])
        return [model.model_validate_json(r) for r in raws if r is not None], total

    # jobs
    async def create_job(self, job: Job, job_json: str, sealed_submission: str,
                         message: tuple[str, str] | None = None, cap: int = 0) -> bool:
        """Store the job and its sealed request, and with ``message`` queue it, atomically (one
        script, one round trip). False, and nothing written, when the tenant already has
        ``cap`` jobs queued or running (0: no cap). ``job_json``: ``job.stored_json()``."""
        job_keys = [keys.job(job.tenant, job.id), keys.submission(job.tenant, job.id), keys.active_jobs(job.tenant)]
        args = [job_json, sealed_submission, job.id, cap]
        if message is not None:
            job_keys.append(message[0])
            args.append(message[1])
        return bool(await self.pipelined.eval(_ACCEPT, job_keys, args))

    async def job_json(self, tenant: str, job_id: str) -> bytes | None:
        """The job's public view as stored: served as it is, without parsing."""
        return await self.pipelined.execute("GET", keys.job(tenant, job_id))

    @asynccontextmanager
    async def job_changes(self, tenant: str, job_id: str) -> AsyncIterator[PubSub]:
        """Subscribed to the job's change notices (one per save; the message is only a nudge to
        read the record again). Subscribe before the first read, and no change is missed."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(keys.job_events(tenant, job_id))
            yield pubsub
        finally:
            await pubsub.aclose()

    async def discard_job(self, tenant: str, job_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.job(tenant, job_id), keys.submission(tenant, job_id), keys.job_starts(tenant, job_id))
            pipe.srem(keys.active_jobs(tenant), job_id)
            await pipe.execute()


    async def job(self, tenant: str, job_id: str) -> Job | None:
        raw = await self.redis.get(keys.job(tenant, job_id))
        return None if raw is None else Job.from_stored(raw, tenant)

    # connectors
    async def connector(self, tenant: str, connector_id: str) -> Connector | None:
        return await self._get(Connector, keys.connector(tenant, connector_id))

    async def connectors(self, tenant: str, page: int, per_page: int) -> tuple[list[Connector], int]:
        return await self._page(Connector, keys.connectors(tenant), lambda i: keys.connector(tenant, i), page, per_page)

    async def delete_connector(self, tenant: str, connector_id: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.connector(tenant, connector_id))
            pipe.zrem(keys.connectors(tenant), connector_id)
            pipe.zrem(keys.EXPIRING, keys.expiring_member(tenant, connector_id))
            deleted, _, _ = await pipe.execute()
        return bool(deleted)

    # connection pools (integer ids, per tenant)
    async def next_pool_id(self, tenant: str) -> int:
        return int(await self.redis.incr(keys.pool_seq(tenant)))

    async def save_pool(self, pool: ConnectionPool) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.pool(pool.tenant, pool.id), pool.model_dump_json())
            pipe.zadd(keys.pools(pool.tenant), {str(pool.id): pool.id})
            await pipe.execute()

    async def pool(self, tenant: str, pool_id: int) -> ConnectionPool | None:
        return await self._get(ConnectionPool, keys.pool(tenant, pool_id))

    async def pools(self, tenant: str, page: int, per_page: int) -> tuple[list[ConnectionPool], int]:
        return await self._page(ConnectionPool, keys.pools(tenant), lambda i: keys.pool(tenant, i), page, per_page)

    async def delete_pool(self, tenant: str, pool_id: int) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.pool(tenant, pool_id))
            pipe.zrem(keys.pools(tenant), str(pool_id))
            deleted, _ = await pipe.execute()
        return bool(deleted)

    # certificates
    async def save_certificate(self, cert: Certificate) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.certificate(cert.tenant, cert.id), cert.model_dump_json())
            pipe.zadd(keys.certificates(cert.tenant), {cert.id: cert.created_at.timestamp()})
            await pipe.execute()

    async def certificate(self, tenant: str, cert_id: str) -> Certificate | None:
        return await self._get(Certificate, keys.certificate(tenant, cert_id))

    async def certificates(self, tenant: str, page: int, per_page: int) -> tuple[list[Certificate], int]:
        return await self._page(Certificate, keys.certificates(tenant), lambda i: keys.certificate(tenant, i),
                                page, per_page)

    async def delete_certificate(self, tenant: str, cert_id: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.certificate(tenant, cert_id))
            pipe.zrem(keys.certificates(tenant), cert_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    # sessions: kept a day past expiry so a job can tell "expired" from "never existed"
    async def save_session(self, session: Session, ttl_seconds: int) -> None:
        await self.redis.set(keys.session(session.tenant, session.id), session.model_dump_json(),
                             ex=ttl_seconds + 86400)

    async def session(self, tenant: str, session_id: str) -> Session | None:
        return await self._get(Session, keys.session(tenant, session_id))

    # API keys made with `authq keys create` (stored as sha256, never the key)
    async def api_key(self, key_hash: str) -> ApiKey | None:
        return await self._get(ApiKey, keys.api_key(key_hash))

    # single-use authorization states (see tasks/storage/states.py)
    async def auth_state(self, raw: str) -> states.AuthState | None:
        data = await self.redis.get(states.state_key(raw))
        if data is None:
            return None
        state = states.AuthState.model_validate_json(data)
        return None if state.expires_at <= utcnow() else state

    async def claim_state(self, raw: str, state: states.AuthState, job_id: str) -> bool:
        """Atomically make ``job_id`` the one user of the state; False when it was used."""
        return bool(await self.redis.set(states.claim_key(raw), job_id, nx=True, ex=states.ttl_of(state) + 86400))

    async def state_claimed_by(self, raw: str) -> str | None:
        value = await self.redis.get(states.claim_key(raw))
        return value.decode() if isinstance(value, bytes) else value

    async def release_state_claim(self, raw: str) -> None:
        await self.redis.delete(states.claim_key(raw))

    # operations
    async def workers_seen(self) -> int:
        return int(await self.redis.zcount(keys.WORKERS, time.time() - READY_WINDOW_SECONDS, "+inf"))
