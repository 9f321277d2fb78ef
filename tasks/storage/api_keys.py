"""API keys made with ``authq keys create``: stored as SHA-256 only, shown once."""

from __future__ import annotations

import re
import secrets

import redis

from tasks.errors import ConfigError, NotFound
from tasks.model.records import ApiKey, new_id, utcnow
from tasks.storage import schema

TENANT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def create_key(client: redis.Redis, tenant: str) -> tuple[ApiKey, str]:
    """Make a key for ``tenant``; returns the record and the key itself (shown once, never stored)."""
    if not TENANT_NAME.match(tenant):
        raise ConfigError("A tenant name is 1-64 characters of letters, digits, '_', '.' or '-'.")
    raw = f"aq_{secrets.token_urlsafe(32)}"
    record = ApiKey(id=new_id("key"), tenant=tenant, created_at=utcnow())
    digest = schema.hash_api_key(raw)
    with client.pipeline() as pipe:
        pipe.set(schema.api_key(digest), record.model_dump_json())
        pipe.hset(schema.API_KEYS, record.id, digest)
        pipe.execute()
    return record, raw


def revoke_key(client: redis.Redis, key_id: str) -> None:
    digest = client.hget(schema.API_KEYS, key_id)
    if digest is None:
        raise NotFound("API key")
    with client.pipeline() as pipe:
        pipe.delete(schema.api_key(digest.decode() if isinstance(digest, bytes) else digest))
        pipe.hdel(schema.API_KEYS, key_id)
        pipe.execute()


def count_keys(client: redis.Redis) -> int:
    return int(client.hlen(schema.API_KEYS))
