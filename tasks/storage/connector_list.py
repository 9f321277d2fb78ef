"""The filtered list of a tenant's connectors (``GET /connectors?filter[…]=…``).

It reads every connector of the tenant, in slices of ``SLICE`` (oldest first, as the
unfiltered list orders them): a filtered list costs one read of the tenant's connectors. An
index per field would save that only for a list that need not count its matches, and would
be one more thing every connector write keeps right.
"""

from __future__ import annotations

from tasks.model.connector_filter import ConnectorFilter
from tasks.model.records import Connector
from tasks.storage import schema
from tasks.storage.steps import Op

SLICE = 500  # connectors per MGET


def connectors_matching(tenant: str, wanted: ConnectorFilter, number: int,
                        per_page: int) -> Op[tuple[list[Connector], int]]:
    """Page ``number`` (from 1) of the tenant's connectors that ``wanted`` matches, and how many match."""
    ids = [i.decode() if isinstance(i, bytes) else str(i) for i in (yield ("ZRANGE", schema.connectors(tenant), 0, -1))]
    start = (number - 1) * per_page
    page: list[Connector] = []
    total = 0
    for at in range(0, len(ids), SLICE):
        raws = yield ("MGET", *[schema.connector(tenant, i) for i in ids[at:at + SLICE]])
        for raw in raws:
            if raw is None:  # deleted since the index was read
                continue
            connector = Connector.model_validate_json(raw)
            if wanted.matches(connector):
                if start <= total < start + per_page:
                    page.append(connector)
                total += 1
    return page, total
