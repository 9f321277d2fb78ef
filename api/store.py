"""The asyncio adapter: the API sends the store's operations (``tasks/storage/commands.py``).

Only this module talks to Redis on the request path; views call it and render views. The
operations are the workers' (``tasks/storage/store.py`` sends them synchronously); here a
single command or script goes through the auto-pipeline (``api/pipelining.py``), so
concurrent requests share round trips: accepting a job is one script call, a poll one GET.
"""

from __future__ import annotations

from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import WatchError

from api.parsed_records import ParsedConnectors
from api.pipelining import AutoPipeline
from tasks.model.api_keys import ApiKey
from tasks.model.audit import AuditEvent
from tasks.model.connector_filter import ConnectorFilter
from tasks.model.records import Certificate, ConnectionPool, Connector, Job, Session
from tasks.model.views import AuditType
from tasks.storage import audit, commands, states
from tasks.storage.connector_list import connectors_matching
from tasks.storage.steps import CheckAndSet, Op, Script, Step, Transaction

T = TypeVar("T")


class ApiStore:
    def __init__(self, client: Redis) -> None:
        self.redis = client
        self.pipelined = AutoPipeline(client)
        self.parsed_connectors = ParsedConnectors()

    async def send(self, step: Step) -> Any:
        """One round trip; its reply."""
        if type(step) is tuple:
            return await self.pipelined.execute(*step)
        if isinstance(step, Script):
            return await self.pipelined.eval(step.lua.text, step.keys, step.args)
        if isinstance(step, Transaction):
            async with self.redis.pipeline(transaction=True) as pipe:
                for command in step.commands:
                    pipe.execute_command(*command)
                return await pipe.execute()
        assert isinstance(step, CheckAndSet)
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(step.key)
                writes = step.decide(await pipe.get(step.key))
                if writes is None:
                    return False
                pipe.multi()  # type: ignore[no-untyped-call]
                for command in writes.commands:
                    pipe.execute_command(*command)
                await pipe.execute()
                return True
            except WatchError:
                return None

    async def run(self, op: Op[T]) -> T:
        """Run an operation: send each of its round trips, hand it each reply; its result."""
        try:
            step = next(op)
            while True:  # a command, the commonest step, without another coroutine
                step = op.send(await (self.pipelined.execute(*step) if type(step) is tuple else self.send(step)))
        except StopIteration as done:
            result: T = done.value
            return result
        finally:
            op.close()

    # jobs
    async def create_job(self, job: Job, job_json: str, sealed_request: str,
                         message: tuple[str, str] | None = None, cap: int = 0) -> bool:
        return await self.run(commands.create_job(job, job_json, sealed_request, message, cap))

    async def job_json(self, tenant: str, job_id: str) -> bytes | None:
        return await self.run(commands.job_json(tenant, job_id))

    async def job(self, tenant: str, job_id: str) -> Job | None:
        return await self.run(commands.job(tenant, job_id))

    async def discard_job(self, tenant: str, job_id: str) -> None:
        await self.run(commands.discard_job(tenant, job_id))

    # connectors
    async def connector(self, tenant: str, connector_id: str) -> Connector | None:
        return await self.run(commands.connector(tenant, connector_id, self.parsed_connectors))

    async def connectors(self, tenant: str, page: int, per_page: int,
                         wanted: ConnectorFilter | None = None) -> tuple[list[Connector], int]:
        if wanted:
            return await self.run(connectors_matching(tenant, wanted, page, per_page))
        return await self.run(commands.connectors(tenant, page, per_page))

    async def delete_connector(self, tenant: str, connector_id: str, event: AuditEvent | None = None) -> bool:
        return await self.run(commands.delete_connector(tenant, connector_id, event))

    # connection pools
    async def next_pool_id(self, tenant: str) -> int:
        return await self.run(commands.next_pool_id(tenant))

    async def save_pool(self, pool: ConnectionPool) -> None:
        await self.run(commands.save_pool(pool))

    async def pool(self, tenant: str, pool_id: int) -> ConnectionPool | None:
        return await self.run(commands.pool(tenant, pool_id))

    async def pools(self, tenant: str, page: int, per_page: int) -> tuple[list[ConnectionPool], int]:
        return await self.run(commands.pools(tenant, page, per_page))

    async def delete_pool(self, tenant: str, pool_id: int) -> bool:
        return await self.run(commands.delete_pool(tenant, pool_id))

    # certificates
    async def save_certificate(self, cert: Certificate) -> None:
        await self.run(commands.save_certificate(cert))

    async def certificate(self, tenant: str, cert_id: str) -> Certificate | None:
        return await self.run(commands.certificate(tenant, cert_id))

    async def certificates(self, tenant: str, page: int, per_page: int) -> tuple[list[Certificate], int]:
        return await self.run(commands.certificates(tenant, page, per_page))

    async def delete_certificate(self, tenant: str, cert_id: str) -> bool:
        return await self.run(commands.delete_certificate(tenant, cert_id))

    # sessions
    async def save_session(self, session: Session, ttl_seconds: int, connect_token: str | None = None) -> None:
        await self.run(commands.save_session(session, ttl_seconds, connect_token))

    async def session_by_connect_token(self, token: str) -> Session | None:
        return await self.run(commands.session_by_connect_token(token))

    async def session(self, tenant: str, session_id: str) -> Session | None:
        return await self.run(commands.session(tenant, session_id))

    # API keys made with `authq keys create`
    async def api_key(self, key_hash: str) -> ApiKey | None:
        return await self.run(commands.api_key(key_hash))

    # the audit log (tasks/storage/audit.py)
    async def audit_events(self, tenant: str, page: int, per_page: int, connector_id: str | None = None,
                           type_: AuditType | None = None) -> tuple[list[AuditEvent], int]:
        return await self.run(audit.events(tenant, page, per_page, connector_id, type_))

    async def audit(self, tenant: str, event: AuditEvent) -> None:
        """Record an event that is itself the change (a credentials read): one script."""
        await self.send(audit.recorded(tenant, event))

    # single-use authorization states (tasks/storage/states.py)
    async def auth_state(self, raw: str) -> states.AuthState | None:
        return await self.run(states.auth_state(raw))

    async def claim_state(self, raw: str, state: states.AuthState, job_id: str) -> bool:
        return await self.run(states.claim_state(raw, state, job_id))

    async def state_claimed_by(self, raw: str) -> str | None:
        return await self.run(states.state_claimed_by(raw))

    async def release_state_claim(self, raw: str) -> None:
        await self.run(states.release_state_claim(raw))

    # operations
    async def workers_seen(self) -> int:
        return await self.run(commands.workers_seen())
