"""What the demo provider issued, in Redis, each under its own TTL and by the SHA-256 of the
credential (never the credential itself: Redis holds nothing that would let one use it).

    authq:demo:consent:{id}          string  an authorization request awaiting Approve/Deny (10 min)
    authq:demo:code:{sha256}         string  an authorization code (60 s, single use: GETDEL)
    authq:demo:access:{sha256}       string  an access token's grant (its lifetime)
    authq:demo:refresh:{sha256}      string  a refresh token's grant (30 days, single use: GETDEL)
    authq:demo:woo-request:{id}      string  a store authorisation awaiting Approve/Deny (10 min)
    authq:demo:woo-key:{sha256 ck}   string  a consumer key's record (with the SHA-256 of its secret)
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from redis.asyncio import Redis

PREFIX = "authq:demo"
PENDING_SECONDS = 600
CODE_SECONDS = 60
REFRESH_SECONDS = 30 * 86400
WOO_KEY_SECONDS = 30 * 86400


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class DemoStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def _put(self, kind: str, name: str, record: dict[str, Any], seconds: int) -> None:
        await self.redis.set(f"{PREFIX}:{kind}:{name}", json.dumps(record), ex=seconds)

    async def _get(self, kind: str, name: str) -> dict[str, Any] | None:
        raw = await self.redis.get(f"{PREFIX}:{kind}:{name}")
        return json.loads(raw) if raw else None

    async def _take(self, kind: str, name: str) -> dict[str, Any] | None:
        """Read and delete in one step: a second taker gets None (single use)."""
        raw = await self.redis.getdel(f"{PREFIX}:{kind}:{name}")
        return json.loads(raw) if raw else None

    # Requests waiting for the user's decision, by an unguessable id the form carries.
    async def hold(self, kind: str, request_id: str, record: dict[str, Any]) -> None:
        await self._put(kind, request_id, record, PENDING_SECONDS)

    async def take_pending(self, kind: str, request_id: str) -> dict[str, Any] | None:
        return await self._take(kind, request_id)

    async def pending(self, kind: str, request_id: str) -> dict[str, Any] | None:
        return await self._get(kind, request_id)

    # Credentials, by their digest.
    async def save_code(self, code: str, grant: dict[str, Any]) -> None:
        await self._put("code", digest(code), grant, CODE_SECONDS)

    async def take_code(self, code: str) -> dict[str, Any] | None:
        return await self._take("code", digest(code))

    async def save_access(self, token: str, grant: dict[str, Any], seconds: int) -> None:
        await self._put("access", digest(token), grant, seconds)

    async def access(self, token: str) -> dict[str, Any] | None:
        return await self._get("access", digest(token))

    async def save_refresh(self, token: str, grant: dict[str, Any]) -> None:
        await self._put("refresh", digest(token), grant, REFRESH_SECONDS)

    async def take_refresh(self, token: str) -> dict[str, Any] | None:
        return await self._take("refresh", digest(token))

    async def save_woo_key(self, consumer_key: str, consumer_secret: str, record: dict[str, Any]) -> None:
        await self._put("woo-key", digest(consumer_key), {**record, "secret_sha256": digest(consumer_secret)},
                        WOO_KEY_SECONDS)

    async def woo_key(self, consumer_key: str) -> dict[str, Any] | None:
        return await self._get("woo-key", digest(consumer_key))

    async def delete_woo_key(self, consumer_key: str) -> None:
        await self.redis.delete(f"{PREFIX}:woo-key:{digest(consumer_key)}")
