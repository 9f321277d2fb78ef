"""Connectors the API has parsed, kept by their stored JSON.

Every proxied request, credentials read and permit reads its connector, and turning the stored
JSON into a ``Connector`` (pydantic validation of a record with its variables, credentials and
dates) was, after Redis itself, the largest single cost of those requests. The same bytes
always parse to the same record, so a record kept by its exact stored JSON is never stale: a
changed connector is stored as new bytes and parsed afresh. Kept records are shared between
requests, which is why ``Connector`` is frozen. The oldest kept is forgotten first.
"""

from __future__ import annotations

from tasks.model.records import Connector

KEPT = 2048  # records (a few KB each)


class ParsedConnectors:
    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._by_json: dict[bytes, Connector] = {}

    def __call__(self, raw: bytes) -> Connector:
        found = self._by_json.get(raw)
        if found is None:
            found = Connector.model_validate_json(raw)
            if len(self._by_json) >= self._kept:
                del self._by_json[next(iter(self._by_json))]
            self._by_json[raw] = found
        return found
