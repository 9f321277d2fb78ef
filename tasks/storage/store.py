"""The sync adapter: the workers send the store's operations (``commands.py``) over redis-py's sync client.

Synchronous on purpose: a Celery task is synchronous code, and blocking on Redis there is
correct. The API sends the same operations over its asyncio client (``api/store.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.exceptions import NoScriptError

from tasks.model.records import Certificate, ConnectionPool, Connector, Job, Session
from tasks.storage import commands
from tasks.storage.batch import Batch
from tasks.storage.commands import Start
from tasks.storage.steps import CheckAndSet, Op, Script, Step, Transaction

T = TypeVar("T")

__all__ = ["Start", "Store", "run"]


# (redis-py leaves execute_command, watch and multi unannotated: hence the ignores below.)
def send(client: redis.Redis, step: Step) -> Any:
    """One round trip; its reply."""
    if type(step) is tuple:
        return client.execute_command(*step)  # type: ignore[no-untyped-call]
    if isinstance(step, Script):
        try:
            return client.evalsha(step.lua.sha, len(step.keys), *step.keys, *step.args)
        except NoScriptError:  # a Redis restarted or flushed since: EVAL loads it again
            return client.eval(step.lua.text, len(step.keys), *step.keys, *step.args)
    if isinstance(step, Transaction):
        with client.pipeline(transaction=True) as pipe:
            for command in step.commands:
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            return pipe.execute()
    assert isinstance(step, CheckAndSet)
    with client.pipeline(transaction=True) as pipe:
        try:
            pipe.watch(step.key)  # type: ignore[no-untyped-call]
            writes = step.decide(pipe.get(step.key))
            if writes is None:
                return False
            pipe.multi()
            for command in writes.commands:
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            pipe.execute()
            return True
        except redis.WatchError:
            return None


def run(client: redis.Redis, op: Op[T]) -> T:
    """Run an operation: send each of its round trips, hand it each reply; its result."""
    try:
        step = next(op)
        while True:
            step = op.send(send(client, step))
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        op.close()


class Store:
    """The workers' store: each method runs the operation of the same name (``commands.py``)."""

    def __init__(self, client: redis.Redis, job_ttl_seconds: int) -> None:
        self.redis = client
        self.job_ttl = job_ttl_seconds

    def run(self, op: Op[T]) -> T:
        return run(self.redis, op)

    # jobs
    def create_job(self, job: Job, sealed_request: str, message: tuple[str, str] | None = None,
                   cap: int = 0) -> bool:
        return run(self.redis, commands.create_job(job, job.stored_json(), sealed_request, message, cap))

    def job(self, tenant: str, job_id: str) -> Job | None:
        return run(self.redis, commands.job(tenant, job_id))

    def start_job(self, tenant: str, job_id: str, lease_key: str | None = None, token: str = "",
                  lease_ms: int = 0) -> Start:
        return run(self.redis, commands.start_job(tenant, job_id, lease_key, token, lease_ms, self.job_ttl))

    def save_job(self, job: Job, also: Callable[[Batch], None] | None = None, kept_at_most: int | None = None,
                 inbox: str | None = None) -> bool:
        """``kept_at_most``: a finished job is kept no longer than this (else ``AUTHQ_JOB_TTL_SECONDS``);
        ``inbox``: the waiting API process's channel, told too."""
        ttl = self.job_ttl if kept_at_most is None else min(self.job_ttl, kept_at_most)
        return run(self.redis, commands.save_job(job, ttl, also, inbox))

    # connectors
    def connector(self, tenant: str, connector_id: str) -> Connector | None:
        return run(self.redis, commands.connector(tenant, connector_id))

    def write_connector(self, into: Batch, connector: Connector) -> None:
        commands.write_connector(into, connector)

    def save_connector(self, connector: Connector) -> None:
        run(self.redis, commands.save_connector(connector))

    def replace_connector_if(self, connector: Connector, expected_version: int) -> bool:
        return run(self.redis, commands.replace_connector_if(connector, expected_version))

    def replace_connector_if_exists(self, connector: Connector) -> bool:
        return run(self.redis, commands.replace_connector_if_exists(connector))

    # the records a job reads
    def session(self, tenant: str, session_id: str) -> Session | None:
        return run(self.redis, commands.session(tenant, session_id))

    def certificate(self, tenant: str, certificate_id: str) -> Certificate | None:
        return run(self.redis, commands.certificate(tenant, certificate_id))

    def pool(self, tenant: str, pool_id: int) -> ConnectionPool | None:
        return run(self.redis, commands.pool(tenant, pool_id))

    def heartbeat(self, worker_name: str) -> None:
        run(self.redis, commands.heartbeat(worker_name))
