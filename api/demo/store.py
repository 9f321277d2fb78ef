"""What the demo provider issued, in Redis (``tasks/storage/schema.py``'s ``demo_*`` keys), each
under its own TTL: several API processes may share the port, so no state lives in one of them.

Credentials are kept by their SHA-256 (the schema hashes them), never as themselves: Redis holds
nothing that would let one use them. A code, a refresh token and a pending request are taken
with ``GETDEL``: single use, even when two requests race for one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from redis.asyncio import Redis

from tasks.storage import schema

PENDING_SECONDS = 600   # a page's request awaiting Approve or Deny
CODE_SECONDS = 60
REFRESH_SECONDS = 30 * 86400
WOO_KEY_SECONDS = 30 * 86400
Pending = Literal["consent", "store-request"]
PENDING_KEYS = {"consent": schema.demo_consent, "store-request": schema.demo_store_request}


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class DemoStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def _put(self, key: str, record: dict[str, Any], seconds: int) -> None:
        await self.redis.set(key, json.dumps(record), ex=seconds)

    async def _get(self, key: str) -> dict[str, Any] | None:
        raw = await self.redis.get(key)
        return json.loads(raw) if raw else None

    async def _take(self, key: str) -> dict[str, Any] | None:
        raw = await self.redis.getdel(key)
        return json.loads(raw) if raw else None

    async def hold(self, kind: Pending, request_id: str, record: dict[str, Any]) -> None:
        await self._put(PENDING_KEYS[kind](request_id), record, PENDING_SECONDS)

    async def take_pending(self, kind: Pending, request_id: str) -> dict[str, Any] | None:
        return await self._take(PENDING_KEYS[kind](request_id)) if request_id else None

    async def save_code(self, code: str, grant: dict[str, Any]) -> None:
        await self._put(schema.demo_code(code), grant, CODE_SECONDS)

    async def take_code(self, code: str) -> dict[str, Any] | None:
        return await self._take(schema.demo_code(code))

    async def save_access(self, token: str, grant: dict[str, Any], seconds: int) -> None:
        await self._put(schema.demo_access(token), grant, seconds)

    async def access(self, token: str) -> dict[str, Any] | None:
        return await self._get(schema.demo_access(token))

    async def save_refresh(self, token: str, grant: dict[str, Any]) -> None:
        await self._put(schema.demo_refresh(token), grant, REFRESH_SECONDS)

    async def take_refresh(self, token: str) -> dict[str, Any] | None:
        return await self._take(schema.demo_refresh(token))

    async def save_woo_key(self, consumer_key: str, consumer_secret: str, record: dict[str, Any]) -> None:
        await self._put(schema.demo_woo_key(consumer_key), {**record, "secret_sha256": digest(consumer_secret)},
                        WOO_KEY_SECONDS)

    async def woo_key(self, consumer_key: str) -> dict[str, Any] | None:
        return await self._get(schema.demo_woo_key(consumer_key))

    async def delete_woo_key(self, consumer_key: str) -> None:
        await self.redis.delete(schema.demo_woo_key(consumer_key))
