"""API keys: ``Authorization: <key>`` or ``Authorization: Bearer <key>``.

Keys are looked up by their SHA-256, never compared as strings: the keys from
``AUTHQ_API_KEYS`` sit in a dict by hash, those made with ``authq keys create`` in Redis by
hash. A lookup by hash leaks nothing about a key through timing.
"""

from __future__ import annotations

from aiohttp import web

from api.typedefs import STATIC_KEYS, STORE, TENANT
from tasks.storage.schema import hash_api_key


def presented_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "").strip()
    if header.lower().startswith("bearer "):
        header = header[7:].strip()
    return header or None


async def tenant_of(request: web.Request) -> str | None:
    key = presented_key(request)
    if key is None:
        return None
    digest = hash_api_key(key)
    tenant = request.app[STATIC_KEYS].get(digest)
    if tenant is not None:
        return str(tenant)
    stored = await request.app[STORE].api_key(digest)
    return stored.tenant if stored else None


def tenant(request: web.Request) -> str:
    """The tenant of an authenticated request (set by the middleware)."""
    return str(request[TENANT])
