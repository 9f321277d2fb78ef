"""What authq asks of Redis, each operation defined once: its keys, its commands, its scripts.

Operations are generators of round trips (``steps.py``); the workers send them with the sync
adapter (``store.py``), the API with the asyncio one (``api/store.py``). Both adapters call
the same definition, so a job is created the same way whoever creates it: the tenant's cap,
the record, its sealed request, the active set and (when the broker is the store) its message,
in one script.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, get_args

from tasks.model.api_keys import ApiKey
from tasks.model.audit import AuditEvent
from tasks.model.records import Certificate, ConnectionPool, Connector, Job, Record, Session
from tasks.model.views import ConnectorStatus
from tasks.model.webhooks import Event
from tasks.storage import audit, schema, webhook_subscriptions, webhooks
from tasks.storage.batch import Batch
from tasks.storage.steps import CheckAndSet, Lua, Op, Script, Transaction

R = TypeVar("R", bound=Record)
CONNECTOR_STATUSES: tuple[str, ...] = get_args(ConnectorStatus)
READY_WINDOW_SECONDS = 30       # a worker is counted as up this long after its last heartbeat
SESSION_KEPT_SECONDS = 86400    # past its expiry, so a job can tell "expired" from "never existed"

# KEYS: job, submission, the tenant's active set[, the broker list]; ARGV: job JSON, sealed
# request, job id, cap (0 = none)[, Celery message]. The cap check and the writes are one step.
ACCEPT = Lua("""
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
""")

# KEYS: the job, its sealed request, its start count, its deferred seconds[, its lease]
# ARGV: the lease's token ('' for no lease), the lease's life (ms), the count's life (s)
START = Lua("""
if ARGV[1] ~= '' and not redis.call('set', KEYS[5], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0, redis.call('pttl', KEYS[5])}
end
local job = redis.call('get', KEYS[1])
if not job then return {1, false, false, 0, false} end
local starts = redis.call('incr', KEYS[3])
if starts == 1 then redis.call('expire', KEYS[3], ARGV[3]) end
return {1, job, redis.call('get', KEYS[2]), starts, redis.call('get', KEYS[4])}
""")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def read(model: type[R], key: str) -> Op[R | None]:
    raw = yield ("GET", key)
    return None if raw is None else model.model_validate_json(raw)


def page(model: type[R], index: str, record_key: Callable[[str], str], number: int,
         per_page: int) -> Op[tuple[list[R], int]]:
    """Page ``number`` (from 1) of an index (a zset of ids), and the index's size."""
    total = int((yield ("ZCARD", index)))
    start = (number - 1) * per_page
    if start >= total:  # past the end (and never an index Redis cannot take: page has no upper bound)
        return [], total
    ids = yield ("ZRANGE", index, start, start + per_page - 1)
    if not ids:
        return [], total
    raws = yield ("MGET", *[record_key(_text(i)) for i in ids])
    return [model.model_validate_json(r) for r in raws if r is not None], total


def _deleted(tx: Transaction) -> Op[bool]:
    """Run ``tx``, whose first command deletes the record: whether there was one."""
    replies = yield tx
    return bool(replies[0])


# --- jobs ---------------------------------------------------------------------------------------

def create_job(job: Job, job_json: str, sealed_request: str, message: tuple[str, str] | None = None,
               cap: int = 0) -> Op[bool]:
    """Store the job and its sealed request, and with ``message`` (broker list, payload) queue it,
    atomically (one script, one round trip). False, and nothing written, when the tenant already
    has ``cap`` jobs queued or running (0: no cap). ``job_json``: ``job.stored_json()``."""
    keys = [schema.job(job.tenant, job.id), schema.submission(job.tenant, job.id), schema.active_jobs(job.tenant)]
    args: list[str | int] = [job_json, sealed_request, job.id, cap]
    if message is not None:
        keys.append(message[0])
        args.append(message[1])
    return bool((yield Script(ACCEPT, keys, args)))


def job_json(tenant: str, job_id: str) -> Op[bytes | None]:
    """The job's public view as stored: served as it is, without parsing."""
    if not schema.is_id(job_id):
        return None
    raw: bytes | None = yield ("GET", schema.job(tenant, job_id))
    return raw


def job(tenant: str, job_id: str) -> Op[Job | None]:
    raw = yield from job_json(tenant, job_id)
    return None if raw is None else Job.from_stored(raw, tenant)


@dataclass
class Start:
    """What ``start_job`` found: another run's lease (its ``PTTL``), or the job to run."""

    taken_ms: int | None = None
    job: Job | None = None
    sealed: str | None = None   # the job's sealed request
    starts: int = 0             # this start included
    deferred: float = 0.0       # seconds the job was deferred so far, in all (stored in ms)


def start_job(tenant: str, job_id: str, lease_key: str | None, token: str, lease_ms: int,
              job_ttl: int) -> Op[Start]:
    """Start a run: take the lease (if given), read the job and its sealed request, and count
    the start, in one atomic round trip. A start is counted before the job runs, so a run that
    kills its worker still counts (``max_attempts`` ends a poison job)."""
    keys = [schema.job(tenant, job_id), schema.submission(tenant, job_id), schema.job_starts(tenant, job_id),
            schema.job_deferred(tenant, job_id)]
    reply = yield Script(START, keys + ([lease_key] if lease_key else []),
                         [token if lease_key else "", lease_ms, job_ttl])
    if not reply[0]:
        return Start(taken_ms=int(reply[1]))
    _, raw_job, sealed, starts, deferred = reply
    return Start(job=None if raw_job is None else Job.from_stored(raw_job, tenant),
                 sealed=None if sealed is None else _text(sealed), starts=int(starts),
                 deferred=0.0 if deferred is None else int(deferred) / 1000)


def save_job(job: Job, job_ttl: int, also: Callable[[Batch], None] | None = None,
             inbox: str | None = None) -> Op[bool]:
    """Store the job and tell its watchers, in one atomic batch; ``also`` adds writes (metrics,
    a connector, the lease's release) that land with the job's new state or not at all, and
    perhaps guards (``Batch.expect``): False if one failed and nothing was written. ``inbox``:
    the channel of the API process waiting for the job (``tasks/jobs/waiter.py``), told too."""
    # A finished job (and its start count) is kept for job_ttl, then expires. Its sealed request
    # is deleted in the same write: nothing runs the job again, and a tenant's ended jobs must
    # not keep every request they were sent for a week.
    ttl = job_ttl if job.finished else None
    batch = Batch()
    if also is not None:
        also(batch)
    stored = job.stored_json()
    batch.set(schema.job(job.tenant, job.id), stored, ex=ttl)
    if ttl:
        batch.delete(schema.submission(job.tenant, job.id))
        batch.delete(schema.job_deferred(job.tenant, job.id))
        batch.expire(schema.job_starts(job.tenant, job.id), ttl)
        batch.srem(schema.active_jobs(job.tenant), job.id)  # idempotent: a re-save changes nothing
    # The job as stored: a waiter or an event stream has the new state without reading it back.
    channel = schema.job_events(job.tenant, job.id)
    batch.publish(channel, stored)
    if inbox is not None:
        batch.publish(inbox, f"{channel}\n{stored}")  # routed to the job's waiters by api/event_hub.py
    return (yield from batch.op())


def discard_job(tenant: str, job_id: str) -> Op[None]:
    """Remove a job that was never queued (its broker refused it)."""
    tx = Transaction()
    tx.delete(schema.job(tenant, job_id), schema.submission(tenant, job_id), schema.job_starts(tenant, job_id),
              schema.job_deferred(tenant, job_id))
    tx.srem(schema.active_jobs(tenant), job_id)
    yield tx


# --- connectors ---------------------------------------------------------------------------------

def connector(tenant: str, connector_id: str,
              parse: Callable[[bytes], Connector] = Connector.model_validate_json) -> Op[Connector | None]:
    """``parse``: how the stored JSON becomes a record (the API's keeps what it parsed)."""
    if not schema.is_id(connector_id):
        return None
    raw = yield ("GET", schema.connector(tenant, connector_id))
    return None if raw is None else parse(raw)


def connectors(tenant: str, number: int, per_page: int) -> Op[tuple[list[Connector], int]]:
    return (yield from page(Connector, schema.connectors(tenant), lambda i: schema.connector(tenant, i),
                            number, per_page))


def count_status(into: Batch | Transaction, tenant: str, connector_id: str, status: str | None) -> None:
    """Count the connector under ``status`` only (None: under none, it is deleted): the
    ``authq_connectors`` gauge, right whatever the status was before."""
    member = schema.expiring_member(tenant, connector_id)
    for each in CONNECTOR_STATUSES:
        if each == status:
            into.sadd(schema.connectors_by_status(each), member)
        else:
            into.srem(schema.connectors_by_status(each), member)


def write_connector(into: Batch | Transaction, connector: Connector) -> None:
    """Queue the connector's writes (its record, the tenant's index, the refresh schedule, its
    status's count)."""
    into.set(schema.connector(connector.tenant, connector.id), connector.model_dump_json())
    count_status(into, connector.tenant, connector.id, connector.status)
    into.zadd(schema.connectors(connector.tenant), {connector.id: connector.created_at.timestamp()}, nx=True)
    expires = connector.credentials.expires_at
    if connector.status == "authorised" and expires is not None:   # the refresh scan reads these
        into.zadd(schema.refresh_schedule(connector.tenant), {connector.id: expires.timestamp()})
        # The tenant's entry never later than its schedule's earliest (the scan raises it again).
        into.zadd(schema.REFRESH_TENANTS, {connector.tenant: expires.timestamp()}, lt=True)
    else:
        into.zrem(schema.refresh_schedule(connector.tenant), connector.id)
        # And from an earlier version's schedule, not yet adopted: adopting it would bring back
        # a refresh for a connector that is no longer authorised.
        into.zrem(schema.EXPIRING, schema.expiring_member(connector.tenant, connector.id))


def save_connector(connector: Connector) -> Op[bool]:
    batch = Batch()
    write_connector(batch, connector)
    return (yield from batch.op())


def _replacing(connector: Connector) -> Transaction:
    tx = Transaction()
    write_connector(tx, connector)
    return tx


def replace_connector_if(connector: Connector, expected_version: int) -> Op[bool]:
    """Write ``connector`` only if the stored one still has ``expected_version`` (CAS)."""
    def decide(raw: bytes | str | None) -> Transaction | None:
        if raw is None or Connector.model_validate_json(raw).credential_version != expected_version:
            return None
        return _replacing(connector)

    return bool((yield CheckAndSet(schema.connector(connector.tenant, connector.id), decide)))


def replace_connector_if_exists(connector: Connector) -> Op[bool]:
    """Write ``connector`` over the stored one; False, writing nothing, if it was deleted."""
    key = schema.connector(connector.tenant, connector.id)
    while True:
        written = yield CheckAndSet(key, lambda raw: None if raw is None else _replacing(connector))
        if written is not None:
            return bool(written)
        # changed meanwhile (a refresh, or a delete): look again


def delete_connector(tenant: str, connector_id: str, event: AuditEvent | None = None) -> Op[bool]:
    """Delete the connector and, with it, write ``event`` (its ``connector.deleted``) and its
    ``connector.deleted`` webhook message for every endpoint that hears it: all or, when there is
    no such connector, none. Whether there was one."""
    if not schema.is_id(connector_id):
        return False
    raw = yield ("GET", schema.connector(tenant, connector_id))
    if raw is None:
        return False
    subscribers = (yield from webhook_subscriptions.read(tenant)).subscribers
    batch = Batch()
    # The record read is the one deleted (a write since: the delete is tried again on what it wrote).
    batch.expect(schema.connector(tenant, connector_id), raw)
    if subscribers:
        shown = Connector.model_validate_json(raw).view()
        webhooks.record_events(batch, tenant, subscribers, [Event.of_connector("connector.deleted", shown, None)])
    count_status(batch, tenant, connector_id, None)
    batch.delete(schema.connector(tenant, connector_id))
    batch.zrem(schema.connectors(tenant), connector_id)
    batch.zrem(schema.refresh_schedule(tenant), connector_id)
    batch.zrem(schema.EXPIRING, schema.expiring_member(tenant, connector_id))  # not yet adopted
    if event is not None:
        audit.record(batch, tenant, event)
    if (yield from batch.op()):
        return True
    return (yield from delete_connector(tenant, connector_id, event))  # changed (or deleted) meanwhile: again


# --- connection pools (integer ids, per tenant) -------------------------------------------------

def next_pool_id(tenant: str) -> Op[int]:
    return int((yield ("INCR", schema.pool_seq(tenant))))


def save_pool(pool: ConnectionPool) -> Op[None]:
    tx = Transaction()
    tx.set(schema.pool(pool.tenant, pool.id), pool.model_dump_json())
    tx.zadd(schema.pools(pool.tenant), {str(pool.id): pool.id})
    yield tx


def pool(tenant: str, pool_id: int) -> Op[ConnectionPool | None]:
    return (yield from read(ConnectionPool, schema.pool(tenant, pool_id)))


def pools(tenant: str, number: int, per_page: int) -> Op[tuple[list[ConnectionPool], int]]:
    return (yield from page(ConnectionPool, schema.pools(tenant), lambda i: schema.pool(tenant, i),
                            number, per_page))


def delete_pool(tenant: str, pool_id: int) -> Op[bool]:
    tx = Transaction()
    tx.delete(schema.pool(tenant, pool_id))
    tx.zrem(schema.pools(tenant), str(pool_id))
    return (yield from _deleted(tx))


# --- certificates, sessions, API keys -----------------------------------------------------------

def save_certificate(cert: Certificate) -> Op[None]:
    tx = Transaction()
    tx.set(schema.certificate(cert.tenant, cert.id), cert.model_dump_json())
    tx.zadd(schema.certificates(cert.tenant), {cert.id: cert.created_at.timestamp()})
    yield tx


def certificate(tenant: str, cert_id: str) -> Op[Certificate | None]:
    if not schema.is_id(cert_id):
        return None
    return (yield from read(Certificate, schema.certificate(tenant, cert_id)))


def certificates(tenant: str, number: int, per_page: int) -> Op[tuple[list[Certificate], int]]:
    return (yield from page(Certificate, schema.certificates(tenant), lambda i: schema.certificate(tenant, i),
                            number, per_page))


def delete_certificate(tenant: str, cert_id: str) -> Op[bool]:
    if not schema.is_id(cert_id):
        return False
    tx = Transaction()
    tx.delete(schema.certificate(tenant, cert_id))
    tx.zrem(schema.certificates(tenant), cert_id)
    return (yield from _deleted(tx))


def save_session(session: Session, ttl_seconds: int, connect_token: str | None = None) -> Op[None]:
    """Store the session; with ``connect_token``, also what finds it by that token (by its SHA-256,
    expiring with the session: the page's link is valid while the session is)."""
    tx = Transaction()
    tx.set(schema.session(session.tenant, session.id), session.model_dump_json(), ex=ttl_seconds + SESSION_KEPT_SECONDS)
    if connect_token is not None:
        tx.set(schema.connect_token(connect_token), f"{session.tenant}/{session.id}", ex=ttl_seconds)
    yield tx


def session_by_connect_token(token: str) -> Op[Session | None]:
    """The session whose connect page ``token`` opens, unless it expired or never was."""
    owner = yield ("GET", schema.connect_token(token))
    if owner is None:
        return None
    tenant, session_id = schema.member_parts(owner)
    found = yield from session(tenant, session_id)
    if found is None or found.expired() or found.connect_token_sha256 != schema.sha256(token):
        return None
    return found


def session(tenant: str, session_id: str) -> Op[Session | None]:
    if not schema.is_id(session_id):
        return None
    return (yield from read(Session, schema.session(tenant, session_id)))


def api_key(key_hash: str) -> Op[ApiKey | None]:
    """An API key made with ``authq keys create`` (stored by its SHA-256, never the key)."""
    return (yield from read(ApiKey, schema.api_key(key_hash)))


# --- workers ------------------------------------------------------------------------------------

def heartbeat(worker_name: str) -> Op[None]:
    yield ("ZADD", schema.WORKERS, time.time(), worker_name)


def workers_seen() -> Op[int]:
    """Workers that sent a heartbeat in the last ``READY_WINDOW_SECONDS``."""
    return int((yield ("ZCOUNT", schema.WORKERS, time.time() - READY_WINDOW_SECONDS, "+inf")))
