"""The platform's use of its connectors, counted for ``/metrics`` (contract §9, operations):
proxied requests by system and status class, the time spent waiting for a permit, permits
granted and refused, credential reads.

Counted fleet-wide, without a Redis round trip on the hot path: each API process counts in
memory (a dict increment) and a background task adds what it counted to one Redis hash every
``FLUSH_SECONDS`` (one pipelined ``HINCRBY``/``HINCRBYFLOAT`` per series that moved). A scrape
flushes its own process first, so what one process answers is exact for itself and at most a
second behind for the others. Counts of a process killed without warning are lost for its last
second at most.

Labels are bounded and hold nothing secret: the implementation's ``system`` (a name from the
catalog), a status class, a refusal code, where a permit was asked (``proxy`` or ``permits``), an
outcome. Never a connector id, a tenant, a path or a header.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.typedefs import GOVERNOR, REDIS
from tasks.errors import Refused
from tasks.model.records import Connector
from tasks.provider.permits import Grant
from tasks.storage import schema

log = logging.getLogger("authq.api")

FLUSH_SECONDS = 1.0
UNKNOWN_SYSTEM = "unknown"   # a connector whose implementation the catalog no longer has
# Seconds a request waited for a permit (a grant at once is under the first bound).
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
BUCKET_LABELS = tuple(repr(bound) for bound in WAIT_BUCKETS)
# The series, as the first element of a field's JSON array; the labels follow.
PROXIED, PERMITS, WAIT_BUCKET, WAIT_SUM, WAIT_COUNT, CREDENTIAL_READS = (
    "proxied", "permits", "wait_le", "wait_sum", "wait_count", "credential_reads")


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


class UsageMetrics:
    """This process's counts since the last flush, and the task that flushes them."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, ...]] = Counter()
        self._sums: defaultdict[tuple[str, ...], float] = defaultdict(float)
        self._lock = asyncio.Lock()  # one flush at a time (the loop's and a scrape's)

    # -- counting (the hot path: no I/O, no await) ----------------------------------------

    def proxied(self, system: str, status: int, code: str = "") -> None:
        """One proxied request answered: ``code`` is authq's own failure or refusal (empty: the
        provider's answer, passed on)."""
        self._counts[(PROXIED, system, status_class(status), code)] += 1

    def permit(self, via: str, outcome: str, waited: float) -> None:
        """One permit asked (``via``: ``proxy`` or ``permits``): ``granted`` or the refusal's code,
        after ``waited`` seconds; the wait histogram is of granted permits."""
        counts = self._counts
        counts[(PERMITS, via, outcome)] += 1
        if outcome != "granted":
            return
        index = bisect.bisect_left(WAIT_BUCKETS, waited)  # the first bound >= waited
        if index < len(WAIT_BUCKETS):  # above the last bound: counted in the count only (the +Inf bucket)
            counts[(WAIT_BUCKET, via, BUCKET_LABELS[index])] += 1
        counts[(WAIT_COUNT, via)] += 1
        self._sums[(WAIT_SUM, via)] += waited

    def credential_read(self, system: str, outcome: str) -> None:
        self._counts[(CREDENTIAL_READS, system, outcome)] += 1

    # -- flushing ---------------------------------------------------------------------------

    async def flush(self, client: Redis) -> None:
        """Add what was counted to the fleet's hash. On a Redis error the counts are kept for
        the next flush (added back to whatever was counted meanwhile)."""
        async with self._lock:
            counts, sums = self._counts, self._sums
            if not counts and not sums:
                return
            self._counts, self._sums = Counter(), defaultdict(float)
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for fields, n in counts.items():
                        pipe.hincrby(schema.USAGE_METRICS, json.dumps(fields), n)
                    for fields, value in sums.items():
                        pipe.hincrbyfloat(schema.USAGE_METRICS, json.dumps(fields), value)
                    await pipe.execute()
            except (RedisError, OSError):
                self._counts.update(counts)
                for fields, value in sums.items():
                    self._sums[fields] += value
                raise

    async def run(self, client: Redis) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush(client)
            except (RedisError, OSError) as exc:
                log.warning("usage metrics not flushed; kept for the next try",
                            extra={"error_type": type(exc).__name__})


USAGE = web.AppKey("usage_metrics", UsageMetrics)


async def counted_permit(request: web.Request, via: str, tenant: str, connector: Connector, *, max_wait: float,
                         record: bool = True, kept: str | None = None) -> Grant:
    """The governor's permit (``Governor.acquire``), its outcome and wait counted."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        grant = await request.app[GOVERNOR].acquire(tenant, connector, max_wait=max_wait, record=record, kept=kept)
    except Refused as exc:
        request.app[USAGE].permit(via, exc.code, loop.time() - started)
        raise
    request.app[USAGE].permit(via, "granted", loop.time() - started)
    return grant


def setup_usage_metrics(app: web.Application) -> None:
    """Counting from now; flushing once the Redis client is there (append after it is made)."""
    app[USAGE] = UsageMetrics()
    app.cleanup_ctx.append(_flushing)


async def _flushing(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.get_running_loop().create_task(app[USAGE].run(app[REDIS]), name="usage-metrics-flush")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with contextlib.suppress(RedisError, OSError):  # the last second's counts, on the way out
        await app[USAGE].flush(app[REDIS])


# -- reading (GET /metrics) -----------------------------------------------------------------
VIAS = ("proxy", "permits")
PERMIT_OUTCOMES = ("granted", "rate_limited", "pool_exhausted")
READ_OUTCOMES = ("served", "not_authorised", "unreachable")


def usage_families(stored: dict[Any, Any]) -> list[Metric]:
    """The fleet's usage series from the hash (as HGETALL returns it); known labels shown at 0."""
    proxied: dict[tuple[str, ...], float] = {}
    permits = {(via, outcome): 0.0 for via in VIAS for outcome in PERMIT_OUTCOMES}
    reads: dict[tuple[str, ...], float] = {}
    buckets = {via: {bound: 0.0 for bound in WAIT_BUCKETS} for via in VIAS}
    sums = {via: 0.0 for via in VIAS}
    counts = {via: 0.0 for via in VIAS}
    for raw_field, raw_value in stored.items():
        kind, *labels = json.loads(raw_field)
        value = float(raw_value)
        if kind == PROXIED:
            proxied[tuple(labels)] = value
        elif kind == PERMITS:
            permits[(labels[0], labels[1])] = value
        elif kind == CREDENTIAL_READS:
            reads[tuple(labels)] = value
        elif kind == WAIT_BUCKET:
            buckets.setdefault(labels[0], {})[float(labels[1])] = value
        elif kind == WAIT_SUM:
            sums[labels[0]] = value
        elif kind == WAIT_COUNT:
            counts[labels[0]] = value
    requests = CounterMetricFamily(
        "authq_proxy_requests", "Proxied requests answered (all API processes), by the implementation's system, the "
        "status class the client got and, when authq answered itself, its code (empty: the provider's answer).",
        labels=["system", "class", "code"])
    for labels, value in sorted(proxied.items()):
        requests.add_metric(list(labels), value)
    granted = CounterMetricFamily(
        "authq_permits", "Permits asked of a connector's rate limit and pool (all API processes), by where "
        "(`proxy`, `permits`) and outcome (`granted`, or the refusal's code).", labels=["via", "outcome"])
    for labels, value in sorted(permits.items()):
        granted.add_metric(list(labels), value)
    waits = HistogramMetricFamily(
        "authq_permit_wait_seconds", "Seconds a granted permit was waited for (all API processes), by where.",
        labels=["via"])
    for via in sorted(buckets):
        cumulative, points = 0.0, []
        for bound in sorted(buckets[via]):
            cumulative += buckets[via][bound]
            points.append((floatToGoString(bound), cumulative))
        waits.add_metric([via], [*points, ("+Inf", counts.get(via, 0.0))], sum_value=sums.get(via, 0.0))
    credential_reads = CounterMetricFamily(
        "authq_credential_reads", "Credentials reads (all API processes), by the implementation's system and "
        "outcome: `served`, `not_authorised` (409), `unreachable` (503: a refresh did not happen in time).",
        labels=["system", "outcome"])
    for labels, value in sorted(reads.items()):
        credential_reads.add_metric(list(labels), value)
    return [requests, granted, waits, credential_reads]
