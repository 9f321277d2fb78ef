"""How a job talks to one connector's provider: its limits, its certificate, its client.

Looked up afresh at call time: a pool or certificate deleted (or a certificate expired)
since the connector was set up fails the call with the contract's code.
"""

from __future__ import annotations

from typing import Any

from tasks.flows import lookups
from tasks.jobs.context import JobContext
from tasks.model.records import Connector
from tasks.provider.connector_limits import Limits


def limits_for(ctx: JobContext, connector: Connector) -> Limits:
    pool = (lookups.connection_pool(ctx, connector.tenant, connector.connection_pool_id)
            if connector.connection_pool_id is not None else None)
    return Limits.of(connector, pool)


def http_options(ctx: JobContext, connector: Connector) -> dict[str, Any]:
    """Client options for every request made for ``connector`` (gate, guard, mTLS)."""
    certificate = (lookups.certificate(ctx, connector.tenant, connector.certificate_id)
                   if connector.certificate_id else None)
    return ctx.outbound.client_options(limits_for(ctx, connector), certificate, ctx.box)
