"""API keys made with ``authq keys create``: stored as SHA-256 only, shown once; listed, revoked;
and when each key was last used.

A key's record lives at ``schema.api_key(sha256)``; ``schema.API_KEYS`` maps its id to that
hash (to list and revoke by id). When a key was last used is kept apart, in
``schema.API_KEYS_USED`` (id -> unix time), for every key, ``AUTHQ_API_KEYS``' included: an API
process writes it at most once a minute a key (``touch``, behind ``api/key_usage.py``), so a
busy key costs no write per request.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from tasks.errors import ConfigError, NotFound
from tasks.model.api_keys import DEFAULT_SCOPES, ApiKey, Scope
from tasks.model.audit import NOBODY, AuditEvent
from tasks.model.records import new_id, utcnow
from tasks.storage import audit, schema
from tasks.storage.steps import Lua, Op, Script

TENANT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
TOUCH_EVERY_SECONDS = 60

# KEYS: API_KEYS_USED; ARGV: the key's id, now (unix seconds), the interval. Written only when the
# stored time is older than the interval: several API processes still write a key once a minute.
_TOUCH = Lua("""
local last = redis.call('HGET', KEYS[1], ARGV[1])
if last and tonumber(ARGV[2]) - tonumber(last) < tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
""")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def create_key(client: redis.Redis, tenant: str, scopes: Sequence[Scope] = DEFAULT_SCOPES) -> tuple[ApiKey, str]:
    """Make a key for ``tenant``; returns the record and the key itself (shown once, never stored).
    The key and its ``api_key.created`` event are written in one transaction."""
    if not TENANT_NAME.match(tenant):
        raise ConfigError("A tenant name is 1-64 characters of letters, digits, '_', '.' or '-'.")
    raw = f"aq_{secrets.token_urlsafe(32)}"
    record = ApiKey(id=new_id("key"), tenant=tenant, scopes=list(scopes), created_at=utcnow())
    digest = schema.hash_api_key(raw)
    event = AuditEvent.new("api_key.created", NOBODY, None, api_key_id=record.id, scopes=list(record.scopes))
    with client.pipeline() as pipe:
        pipe.set(schema.api_key(digest), record.model_dump_json())
        pipe.hset(schema.API_KEYS, record.id, digest)
        audit.record(pipe, tenant, event)
        pipe.execute()
    return record, raw


def revoke_key(client: redis.Redis, key_id: str) -> ApiKey:
    """Revoke a key made with ``authq keys create``: from now on it answers 401. The record goes
    with its ``api_key.revoked`` event, in one transaction. ``NotFound`` for an unknown id."""
    digest = client.hget(schema.API_KEYS, key_id)
    raw = None if digest is None else client.get(schema.api_key(_text(digest)))
    if digest is None or raw is None:
        raise NotFound("API key")
    record = ApiKey.model_validate_json(raw)
    event = AuditEvent.new("api_key.revoked", NOBODY, None, api_key_id=record.id, scopes=list(record.scopes))
    with client.pipeline() as pipe:
        pipe.delete(schema.api_key(_text(digest)))
        pipe.hdel(schema.API_KEYS, key_id)
        pipe.hdel(schema.API_KEYS_USED, key_id)
        audit.record(pipe, record.tenant, event)
        pipe.execute()
    return record


def count_keys(client: redis.Redis) -> int:
    return int(client.hlen(schema.API_KEYS))


@dataclass(frozen=True)
class ListedKey:
    """A key as ``authq keys list`` shows it: its record (never the key) and when it was last used."""

    key: ApiKey
    last_used_at: datetime | None


def list_keys(client: redis.Redis, static: Iterable[ApiKey] = (), tenant: str | None = None) -> list[ListedKey]:
    """The stored keys and ``static`` ones (``AUTHQ_API_KEYS``'), of ``tenant`` when given: the
    static ones first, then by creation."""
    digests = client.hgetall(schema.API_KEYS)
    raws = client.mget([schema.api_key(_text(d)) for d in digests.values()]) if digests else []
    stored = sorted((ApiKey.model_validate_json(r) for r in raws if r is not None),
                    key=lambda k: (k.created_at or datetime.min.replace(tzinfo=UTC), k.id))
    keys = [k for k in [*static, *stored] if tenant is None or k.tenant == tenant]
    used = client.hmget(schema.API_KEYS_USED, [k.id for k in keys]) if keys else []
    return [ListedKey(k, None if u is None else datetime.fromtimestamp(float(u), UTC))
            for k, u in zip(keys, used, strict=True)]


def touch(key_id: str, now: float) -> Op[bool]:
    """Note that the key was used at ``now`` (unix seconds), unless it was noted less than a
    minute ago: whether this call wrote it."""
    return bool((yield Script(_TOUCH, [schema.API_KEYS_USED], [key_id, repr(now), TOUCH_EVERY_SECONDS])))
