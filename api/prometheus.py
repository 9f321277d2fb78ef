"""``GET /metrics``: Prometheus text for this API process and for the whole worker fleet.

Two sources, one page:

- HTTP requests, counted by a middleware into a ``CollectorRegistry`` of this app (never the
  process-global default one: an app is built many times in one test process). The route
  label is the matched route's template (``/api/v1/jobs/{job}``), never the raw path, so the
  number of series stays bounded; a request that matched no route counts as ``unmatched``.
- Jobs, retries, rate-limit waits and queue depths, read from Redis when scraped: workers
  count into Redis hashes (``tasks/storage/job_counters.py``), so any one API shows every worker's jobs.
  Queue depth is the length of the broker's Redis lists, known only when the broker is the
  store's Redis; with another broker (``amqp://``) ``authq_queue_depth`` is left out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from redis.exceptions import RedisError

from api.typedefs import INLINE_QUEUE, REDIS
from api.usage_metrics import USAGE, usage_families
from tasks.jobs.queue_port import BACKGROUND, INTERACTIVE, QUEUE_OF_TYPE
from tasks.storage import job_counters as fleet
from tasks.storage import schema, webhook_queue
from tasks.storage.commands import CONNECTOR_STATUSES

log = logging.getLogger("authq.api")
QUEUES = (INTERACTIVE, BACKGROUND)
JOB_TYPES = tuple(QUEUE_OF_TYPE)
UNMATCHED = "unmatched"
# Any other method (a client may send any token) is counted as "other": bounded labels.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass
class HttpMetrics:
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        self.requests = Counter("authq_http_requests", "HTTP requests answered, by route template, method and status.",
                                ["route", "method", "status"], registry=self.registry)
        self.duration = Histogram("authq_http_request_duration_seconds",
                                  "Time to answer an HTTP request (an event stream: its whole life), "
                                  "by route template.",
                                  ["route", "method"], registry=self.registry)
        # Label children by (route, method, status), looked up once: ``labels()`` validates
        # and locks on every call. As bounded as the labels themselves.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(route, method, str(status)), self.duration.labels(route, method))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


METRICS = web.AppKey("metrics", HttpMetrics)


def setup_metrics(app: web.Application) -> None:
    app[METRICS] = HttpMetrics()


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def http_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: counts the status the client got, errors rendered by the inner ones."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # redirects and the like, raised rather than returned
        status = exc.status
        raise
    except asyncio.CancelledError:  # the client went away first (nginx's "client closed request")
        status = 499
        raise
    finally:
        method = request.method if request.method in METHODS else "other"
        request.app[METRICS].observe(route_of(request), method, status, time.perf_counter() - started)


class _Page:
    """What one scrape renders: this app's registry, then the fleet's families."""

    def __init__(self, registry: CollectorRegistry, families: Iterable[Metric]) -> None:
        self.registry = registry
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()
        yield from self.families


async def fleet_families(request: web.Request) -> list[Metric]:
    client = request.app[REDIS]
    queue = request.app.get(INLINE_QUEUE)
    depth_keys = {name: queue.depth_keys(name) for name in QUEUES} if queue is not None else {}
    await request.app[USAGE].flush(client)  # this process's own counts, exact on its own page
    async with client.pipeline(transaction=False) as pipe:
        for key in fleet.HASHES:
            pipe.hgetall(key)
        pipe.hgetall(schema.WEBHOOK_OUTCOMES)
        pipe.hgetall(schema.WEBHOOK_DURATIONS)
        for status in CONNECTOR_STATUSES:
            pipe.scard(schema.connectors_by_status(status))
        for keys in depth_keys.values():
            for key in keys:
                pipe.llen(key)
        pipe.hgetall(schema.USAGE_METRICS)
        replies = await pipe.execute()
    usage = replies.pop()
    data = fleet.parse(JOB_TYPES, *replies[:4])
    outcomes, seconds = replies[4], replies[5]
    statuses = replies[6:6 + len(CONNECTOR_STATUSES)]
    lengths = iter(replies[6 + len(CONNECTOR_STATUSES):])

    jobs = CounterMetricFamily("authq_jobs", "Jobs ended, by type and outcome (all workers).",
                               labels=["type", "outcome"])
    for (job_type, outcome), value in sorted(data.jobs.items()):
        jobs.add_metric([job_type, outcome], value)
    durations = HistogramMetricFamily("authq_job_duration_seconds",
                                      "Seconds from a job's first start to its end (all workers).", labels=["type"])
    for job_type, duration in sorted(data.durations.items()):
        buckets = [(floatToGoString(bound), count) for bound, count in sorted(duration.buckets.items())]
        durations.add_metric([job_type], buckets + [("+Inf", duration.count)], sum_value=duration.sum)
    retries = CounterMetricFamily("authq_job_retries", "Job attempts that ended in a retry, by type (all workers).",
                                  labels=["type"])
    for job_type, value in sorted(data.retries.items()):
        retries.add_metric([job_type], value)
    waits = CounterMetricFamily("authq_rate_limit_waits",
                                "Jobs deferred to wait for a permit "
                                "(rate limit, pool slot, provider 429, refresh lock).",
                                labels=["reason"])
    for reason, value in sorted(data.waits.items()):
        waits.add_metric([reason], value)
    families: list[Metric] = [jobs, durations, retries, waits, *webhook_families(outcomes, seconds),
                              connector_gauge(statuses), *usage_families(usage)]
    if depth_keys:
        depth = GaugeMetricFamily("authq_queue_depth", "Jobs waiting in the broker for a worker, by queue.",
                                  labels=["queue"])
        for name, keys in depth_keys.items():
            depth.add_metric([name], float(sum(next(lengths) for _ in keys)))
        families.append(depth)
    return families


def webhook_families(outcomes: dict[Any, Any], seconds: dict[Any, Any]) -> list[Metric]:
    """``authq_webhook_deliveries_total{outcome}`` and ``authq_webhook_delivery_seconds``."""
    counted = {outcome: 0.0 for outcome in webhook_queue.OUTCOMES}
    counted.update({_text(k): float(v) for k, v in outcomes.items()})
    deliveries = CounterMetricFamily("authq_webhook_deliveries",
                                     "Webhook delivery attempts, by outcome: delivered, retried (to be tried again), "
                                     "failed (the last attempt), gone (410: the endpoint is disabled).",
                                     labels=["outcome"])
    for outcome, value in sorted(counted.items()):
        deliveries.add_metric([outcome], value)
    per_bucket = {bound: 0.0 for bound in webhook_queue.BUCKETS}
    total = count = 0.0
    for raw_field, raw_value in seconds.items():
        name = _text(raw_field)
        if name == "sum":
            total = float(raw_value)
        elif name == "count":
            count = float(raw_value)
        else:
            per_bucket[float(name)] = per_bucket.get(float(name), 0.0) + float(raw_value)
    cumulative, buckets = 0.0, []
    for bound in sorted(per_bucket):
        cumulative += per_bucket[bound]
        buckets.append((floatToGoString(bound), cumulative))
    histogram = HistogramMetricFamily("authq_webhook_delivery_seconds",
                                      "Seconds a webhook delivery attempt took, from connecting to the answer.")
    histogram.add_metric([], [*buckets, ("+Inf", count)], sum_value=total)
    return [deliveries, histogram]


def connector_gauge(counts: list[Any]) -> Metric:
    gauge = GaugeMetricFamily("authq_connectors", "Connectors by status (all tenants).", labels=["status"])
    for status, value in zip(CONNECTOR_STATUSES, counts, strict=True):
        gauge.add_metric([status], float(value))
    return gauge


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def metrics(request: web.Request) -> web.StreamResponse:
    up = GaugeMetricFamily("authq_redis_up", "1 when the fleet metrics could be read from Redis on this scrape.")
    try:
        families = await fleet_families(request)
        up.add_metric([], 1.0)
    except (RedisError, OSError) as exc:
        log.warning("fleet metrics unavailable", extra={"error_type": type(exc).__name__})
        families = []
        up.add_metric([], 0.0)
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encoder(_Page(request.app[METRICS].registry, [*families, up]))
    return web.Response(body=body, headers={"Content-Type": content_type})
