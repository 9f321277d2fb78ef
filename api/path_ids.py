"""Ids taken from a URL path: only their documented shape reaches the store (contract §3).

A record's Redis key is built from the id in the path, and other keys sit beside it
(``…:submission``, ``…:starts``, ``…:refresh-lock``): an id with anything after its 32 hex
digits would name one of those. Every view reads its path id through here, so an id of
another shape is answered exactly as an unknown one: 404.
"""

from __future__ import annotations

import re

from aiohttp import web

from tasks.errors import NotFound

# The route parameter -> (the prefix ``records.new_id`` gives that kind of record, its name in a 404).
KINDS: dict[str, tuple[str, str]] = {
    "job": ("job", "Job"),
    "connector": ("con", "Connector"),
    "certificate": ("crt", "Certificate"),
    "session": ("ses", "Session"),
    "webhook": ("whk", "Webhook"),
    "permit": ("pmt", "Permit"),
}
_SHAPES = {name: re.compile(prefix + r"_[0-9a-f]{32}") for name, (prefix, _) in KINDS.items()}
# ASCII digits only, and few enough for int(): str.isdigit() also accepts "²" (which int()
# rejects: a 500) and "١" (which int() reads as 1: an alias of pool 1).
_POOL_ID = re.compile(r"[1-9][0-9]{0,18}")


def has_shape(name: str, raw: str) -> bool:
    """Whether ``raw`` has the shape of an id of kind ``name`` (``connector``: ``con_`` and 32 hex digits)."""
    return _SHAPES[name].fullmatch(raw) is not None


def path_id(request: web.Request, name: str) -> str:
    """The id in the path parameter ``name``, or ``NotFound`` when it is not of its kind's shape."""
    raw = request.match_info[name]
    if _SHAPES[name].fullmatch(raw) is None:
        raise NotFound(KINDS[name][1])
    return raw


def pool_id(request: web.Request) -> int:
    """A connection pool's id: a positive integer in plain ASCII digits, else ``NotFound``."""
    raw = request.match_info["pool"]
    if _POOL_ID.fullmatch(raw) is None:
        raise NotFound("Connection pool")
    return int(raw)
