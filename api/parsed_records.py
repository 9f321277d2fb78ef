"""Connectors the API has parsed, kept by their stored JSON, and the latest read of each.

Every proxied request, credentials read and permit reads its connector, and turning the stored
JSON into a ``Connector`` (pydantic validation of a record with its variables, credentials and
dates) was, after Redis itself, the largest single cost of those requests. The same bytes
always parse to the same record, so a record kept by its exact stored JSON is never stale: a
changed connector is stored as new bytes and parsed afresh. Kept records are shared between
requests, which is why ``Connector`` is frozen. The oldest kept is forgotten first.

The latest record read of each connector is also kept, with the SHA-1 of its JSON: the proxy
decides a request on it and has the permit script check, in the same round trip, that it is
still the one stored (``tasks/provider/permits.py`` ``take_if_current``); reading the record
first was a round trip of every proxied request's three.
"""

from __future__ import annotations

import hashlib
from typing import TypeVar

from tasks.model.records import Connector

KEPT = 2048  # records (a few KB each)
K = TypeVar("K")
V = TypeVar("V")


def digest(raw: bytes) -> str:
    """What a kept record is checked by: the SHA-1 of its stored JSON, as Redis's ``sha1hex`` gives it."""
    return hashlib.sha1(raw).hexdigest()


class ParsedConnectors:
    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._by_json: dict[bytes, tuple[Connector, str]] = {}
        self._latest: dict[tuple[str, str], tuple[Connector, str]] = {}

    def __call__(self, raw: bytes) -> Connector:
        found = self._by_json.get(raw)
        if found is None:
            found = (Connector.model_validate_json(raw), digest(raw))
            keep(self._by_json, raw, found, self._kept)
        keep(self._latest, (found[0].tenant, found[0].id), found, self._kept)
        return found[0]

    def latest(self, tenant: str, connector_id: str) -> tuple[Connector, str] | None:
        """The record this process last read of the connector and its JSON's SHA-1 (it may have
        changed since: check it is current before acting on it), or None."""
        return self._latest.get((tenant, connector_id))


def keep(into: dict[K, V], key: K, value: V, kept: int) -> None:
    """``into[key] = value``, forgetting the oldest entry first when ``into`` holds ``kept`` already."""
    if key not in into and len(into) >= kept:
        del into[next(iter(into))]
    into[key] = value
