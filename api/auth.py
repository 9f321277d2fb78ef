"""API keys: ``Authorization: <key>`` or ``Authorization: Bearer <key>``, and what each may do.

Keys are looked up by their SHA-256, never compared as strings: the keys from
``AUTHQ_API_KEYS`` sit in a dict by hash, those made with ``authq keys create`` in Redis by
hash. A lookup by hash leaks nothing about a key through timing.

Each endpoint declares the scope it needs (``Endpoint.scope``, default ``manage``); the
middleware answers 403 for a key without it before the handler runs, so before any record is
looked up: the answer is the same whatever id the path names.
"""

from __future__ import annotations

from aiohttp import web

from api.typedefs import CALLER, STATIC_KEYS, STORE, TENANT
from tasks.model.api_keys import ApiKey, Scope
from tasks.model.audit import Actor
from tasks.storage.schema import hash_api_key


def presented_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "").strip()
    if header.lower().startswith("bearer "):
        header = header[7:].strip()
    return header or None


def static_caller(request: web.Request) -> tuple[ApiKey | None, str | None]:
    """The record of the ``AUTHQ_API_KEYS`` key the request presents, else (None, the digest of
    the key it presents, None without one) for ``stored_caller``. No await: most requests of a
    deployment with static keys end here."""
    key = presented_key(request)
    if key is None:
        return None, None
    digest = hash_api_key(key)
    return request.app[STATIC_KEYS].get(digest), digest


async def stored_caller(request: web.Request, digest: str) -> ApiKey | None:
    """The record of a key made with ``authq keys create`` (None: unknown or revoked)."""
    return await request.app[STORE].api_key(digest)


def lacks_scope(caller: ApiKey, scope: Scope) -> str | None:
    """The 403's message when ``caller`` may not use an endpoint that needs ``scope``, else None."""
    return None if caller.allows(scope) else f"This API key lacks the {scope} scope."


def tenant(request: web.Request) -> str:
    """The tenant of an authenticated request (set by the middleware)."""
    return str(request[TENANT])


def actor_fields(request: web.Request) -> dict[str, str | None]:
    """Who makes this request, as the audit log names them (``Actor``'s fields, as a plain dict: a
    job's request carries them, on the accept path, where a model costs): the key's id (None on
    an endpoint that needs no key) and the client's address as the server saw it (a proxy in
    front is that address unless the server is told to trust its forwarding headers)."""
    caller = request.get(CALLER)
    return {"api_key_id": caller.id if caller is not None else None, "ip": request.remote}


def actor(request: web.Request) -> Actor:
    fields = actor_fields(request)  # (validated: with pydantic 2, cheaper than model_construct)
    return Actor(api_key_id=fields["api_key_id"], ip=fields["ip"])
