"""API keys and their scopes (contract §3): what a key may do, and how ``AUTHQ_API_KEYS`` names them.

Three scopes: ``manage`` (every endpoint that reads or changes records: §5, §10, §12), ``proxy``
(the proxy and permits of §9) and ``credentials`` (reading credential values, §9). A key that
names none has ``manage`` and ``proxy``: a key that can read credential values is asked for,
never given by default.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal, get_args

from tasks.model.records import Record

Scope = Literal["manage", "proxy", "credentials"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
DEFAULT_SCOPES: tuple[Scope, ...] = ("manage", "proxy")


def parse_scopes(text: str, separator: str) -> list[Scope]:
    """The scopes named in ``text`` (``manage,proxy`` on the command line, ``manage+proxy`` in
    ``AUTHQ_API_KEYS``), in the contract's order, each once; ``ValueError`` naming an unknown one."""
    named = [part.strip() for part in text.split(separator)]
    if not any(named):
        raise ValueError(f"Name at least one scope ({', '.join(SCOPES)}).")
    unknown = [part for part in named if part not in SCOPES]
    if unknown:
        raise ValueError(f"Unknown API key scope {unknown[0]!r}: the scopes are {', '.join(SCOPES)}.")
    return [scope for scope in SCOPES if scope in named]


def static_key_id(raw: str) -> str:
    """The id of a key given in ``AUTHQ_API_KEYS``: derived from the key, so it is the same in every
    process and after every restart (an audit event names it), and tells nothing of the key
    (a hash of its own, not the hash the key is looked up by)."""
    return "key_" + hashlib.sha256(f"authq static api key\0{raw}".encode()).hexdigest()[:32]


class ApiKey(Record):
    """A key's record: made with ``authq keys create`` (stored by the key's SHA-256), or one of
    ``AUTHQ_API_KEYS`` (``static``, never stored). Records stored before scopes existed read back
    with the default ones, as an ``AUTHQ_API_KEYS`` entry without scopes does."""

    id: str
    tenant: str
    scopes: list[Scope] = list(DEFAULT_SCOPES)
    created_at: datetime | None = None   # None: a key of AUTHQ_API_KEYS
    static: bool = False

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


def parse_static_keys(text: str) -> dict[str, ApiKey]:
    """``AUTHQ_API_KEYS`` (``tenant:key`` or ``tenant:key:scope+scope``, comma separated) as
    key -> its record. A key holds no ``:`` (a tenant never does), so the third field is scopes."""
    keys: dict[str, ApiKey] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        tenant, sep, rest = item.partition(":")
        raw, _, scopes = rest.partition(":")
        tenant, raw = tenant.strip(), raw.strip()
        if not sep or not tenant or not raw:
            raise ValueError("AUTHQ_API_KEYS must be comma-separated tenant:key or tenant:key:scope+scope entries.")
        try:
            named = parse_scopes(scopes, "+") if ":" in rest else list(DEFAULT_SCOPES)
        except ValueError as exc:
            raise ValueError(f"AUTHQ_API_KEYS, tenant {tenant!r}: {exc}") from None
        keys[raw] = ApiKey(id=static_key_id(raw), tenant=tenant, scopes=named, static=True)
    return keys
