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
from tasks.jobs.queue_port import BACKGROUND, INTERACTIVE, QUEUE_OF_TYPE
from tasks.storage import job_counters as fleet

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
    async with client.pipeline(transaction=False) as pipe:
        for key in fleet.HASHES:
            pipe.hgetall(key)
        for keys in depth_keys.values():
            for key in keys:
                pipe.llen(key)
        replies = await pipe.execute()
    data = fleet.parse(JOB_TYPES, *replies[:4])
    lengths = iter(replies[4:])

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
    families: list[Metric] = [jobs, durations, retries, waits]
    if depth_keys:
        depth = GaugeMetricFamily("authq_queue_depth", "Jobs waiting in the broker for a worker, by queue.",
                                  labels=["queue"])
        for name, keys in depth_keys.items():
            depth.add_metric([name], float(sum(next(lengths) for _ in keys)))
        families.append(depth)
    return families


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
