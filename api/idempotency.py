"""``Idempotency-Key`` on submissions (contract §3).

Per tenant and key, kept 24 h: the same key with the same request answers the same job
with the first answer's status code; with a different request, 422; while the first is
still being accepted, 409. Only requests that were accepted are remembered: a 4xx or a
503 leaves the key free to use again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from tasks.errors import IdempotencyKeyInUse, RequestInvalid
from tasks.storage import schema

HEADER = "Idempotency-Key"
KEEP_SECONDS = 24 * 3600
ACCEPTING_SECONDS = 60   # a first request that died mid-accept frees its key after this


def fingerprint(request: web.Request, body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()


@dataclass
class Replay:
    job_id: str
    status: int


async def reserve(client: Redis, request: web.Request, tenant: str,
                  body: dict[str, Any]) -> tuple[str, str] | Replay | None:
    """None without a key; a ``Replay`` of the first answer; or the (record key, print) now held."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    if not raw.strip() or len(raw) > 255:
        raise RequestInvalid({HEADER: ["The Idempotency-Key header must be 1-255 characters."]})
    record_key, printed = schema.idempotency(tenant, raw), fingerprint(request, body)
    if await client.set(record_key, json.dumps({"fingerprint": printed}), nx=True, ex=ACCEPTING_SECONDS):
        return record_key, printed
    stored = await client.get(record_key)
    if stored is None:  # expired between the two calls: take it now
        return await reserve(client, request, tenant, body)
    first = json.loads(stored)
    if first["fingerprint"] != printed:
        raise RequestInvalid({HEADER: ["This Idempotency-Key was used with a different request."]})
    if "job_id" not in first:
        raise IdempotencyKeyInUse
    return Replay(first["job_id"], int(first["status"]))


async def remember(client: Redis, held: tuple[str, str], job_id: str, status: int) -> None:
    record_key, printed = held
    await client.set(record_key, json.dumps({"fingerprint": printed, "job_id": job_id, "status": status}),
                     ex=KEEP_SECONDS)


async def release(client: Redis, held: tuple[str, str]) -> None:
    await client.delete(held[0])
