"""``GET /metrics``: real app, real Redis, real Celery workers, the loopback provider.

What is proven: the page is valid Prometheus text (parsed by prometheus-client's own parser),
needs no API key and lists every series the operations docs name; a finished job moves the
fleet's ``authq_jobs_total`` and the ``authq_job_duration_seconds`` histogram (counted by the
worker into Redis, served by the API); a retried job moves ``authq_job_retries_total``; HTTP
requests are counted by route *template* (never the raw path) and status, an unknown path as
``unmatched``; the queue depth is shown for both queues; and a Redis that cannot take the
counts never fails the job being counted.

The job series are fleet-wide and other tests run jobs too, so the job tests compare before
and after and ask for an increase of at least one.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tasks.errors import RetryLater
from tasks.jobs.runner import run_job
from tasks.storage import job_counters as fleet
from tasks.storage.job_counters import JobMetrics
from tests.support.helpers import authorise_body, poll_job
from tests.support.jobs import make_context, queue_job

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
NAMED = {
    "authq_http_requests_total", "authq_http_request_duration_seconds_bucket",
    "authq_http_request_duration_seconds_sum", "authq_http_request_duration_seconds_count",
    "authq_jobs_total", "authq_job_duration_seconds_bucket", "authq_job_duration_seconds_sum",
    "authq_job_duration_seconds_count", "authq_queue_depth", "authq_job_retries_total",
    "authq_rate_limit_waits_total",
}


async def scrape(client) -> Samples:  # type: ignore[no-untyped-def]
    answer = await client.get("/metrics")  # no API key: an operations endpoint
    assert answer.status == 200, await answer.text()
    assert answer.headers["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(await answer.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def job_body(provider):  # type: ignore[no-untyped-def]
    body = authorise_body()
    body["variables"][0]["value"] = provider.base_url  # type: ignore[index]
    return body


async def run_authorise(client, tenant, provider) -> dict:  # type: ignore[no-untyped-def]
    answer = await client.post("/api/v1/oauth/authorise", json=job_body(provider), headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    return await poll_job(client, tenant, (await answer.json())["data"]["id"])


async def scrape_until(client, moved, timeout: float = 5.0) -> Samples:  # type: ignore[no-untyped-def]
    """The worker counts right after it stores the job's end, so a poll can see the end a few
    milliseconds before the count: scrape until ``moved(samples)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        samples = await scrape(client)
        if moved(samples) or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.05)


async def test_metrics_lists_the_named_series(client, workers):
    assert (await client.get("/healthz")).status == 200  # so the HTTP series has a sample
    samples = await scrape(client)
    names = {name for name, _ in samples}
    assert names >= NAMED, NAMED - names
    for queue in ("authq.interactive", "authq.background"):
        assert value(samples, "authq_queue_depth", queue=queue) >= 0
        assert ("authq_queue_depth", (("queue", queue),)) in samples
    # Every job type and outcome is there from the start (at 0 if nothing happened yet).
    for job_type in ("authorise", "reauthorise", "authenticate", "woo_app_auth", "refresh"):
        for outcome in ("succeeded", "failed"):
            assert ("authq_jobs_total", (("outcome", outcome), ("type", job_type))) in samples
        assert ("authq_job_duration_seconds_bucket", (("le", "+Inf"), ("type", job_type))) in samples
        assert ("authq_job_retries_total", (("type", job_type),)) in samples
    assert value(samples, "authq_redis_up") == 1.0


async def test_a_finished_job_moves_the_job_counters_and_the_duration_histogram(
        client, tenant, workers, fresh_provider):
    before = await scrape(client)
    done = await run_authorise(client, tenant, fresh_provider)
    assert done["status"] == "succeeded", done

    def moved(samples: Samples) -> bool:
        return (value(samples, "authq_job_duration_seconds_count", type="authorise")
                > value(before, "authq_job_duration_seconds_count", type="authorise"))

    after = await scrape_until(client, moved)
    succeeded = dict(name="authq_jobs_total", type="authorise", outcome="succeeded")
    assert value(after, **succeeded) - value(before, **succeeded) >= 1
    for series in ("authq_job_duration_seconds_count",):
        assert value(after, series, type="authorise") - value(before, series, type="authorise") >= 1
    assert value(after, "authq_job_duration_seconds_sum", type="authorise") > value(
        before, "authq_job_duration_seconds_sum", type="authorise")
    assert value(after, "authq_job_duration_seconds_bucket", type="authorise", le="+Inf") - value(
        before, "authq_job_duration_seconds_bucket", type="authorise", le="+Inf") >= 1

    # A well-formed histogram: cumulative buckets, ascending, +Inf equal to the count.
    buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in after.items()
                     if name == "authq_job_duration_seconds_bucket" and dict(labels)["type"] == "authorise")
    assert buckets[-1][0] == float("inf") and len(buckets) >= 2
    counts = [v for _, v in buckets]
    assert counts == sorted(counts)
    assert buckets[-1][1] == value(after, "authq_job_duration_seconds_count", type="authorise")


async def test_a_retried_job_moves_the_retry_counter(client, tenant, workers, fresh_provider):
    before = await scrape(client)
    fresh_provider.script.append(503)  # the first check fails with a 5xx: retried, then passes
    done = await run_authorise(client, tenant, fresh_provider)
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    after = await scrape_until(client, lambda s: value(s, "authq_job_retries_total", type="authorise")
                               > value(before, "authq_job_retries_total", type="authorise"))
    assert value(after, "authq_job_retries_total", type="authorise") - value(
        before, "authq_job_retries_total", type="authorise") >= 1


async def test_http_requests_are_counted_by_route_template_and_status(client, tenant):
    # This app's counters are its own (a registry per app), so the counts here are exact.
    for job_id in ("job_missing_one", "job_missing_two"):
        answer = await client.get(f"/api/v1/jobs/{job_id}", headers=tenant.headers)
        assert answer.status == 404
    assert (await client.get("/api/v1/jobs/job_x")).status == 401  # no key
    assert (await client.get("/no/such/path")).status == 404
    samples = await scrape(client)
    route = "/api/v1/jobs/{job}"
    assert value(samples, "authq_http_requests_total", route=route, method="GET", status="404") == 2
    assert value(samples, "authq_http_requests_total", route=route, method="GET", status="401") == 1
    assert value(samples, "authq_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert value(samples, "authq_http_request_duration_seconds_count", route=route, method="GET") == 3
    routes = {dict(labels).get("route") for name, labels in samples if name.startswith("authq_http_")}
    assert not any("missing" in r or r == "/no/such/path" for r in routes if r), routes  # never a raw path


def test_a_metrics_failure_never_fails_the_job(redis_client, tenant, fresh_provider):
    """Retries and waits are counted on their own, through a Redis that refuses connections
    here: the job still retries and then succeeds (its end is counted with the job's own write)."""
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    ctx = make_context(redis_client)
    ctx.metrics = JobMetrics(redis.Redis(host="127.0.0.1", port=dead_port, socket_connect_timeout=0.5))
    fresh_provider.script.append(503)
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)
    with pytest.raises(RetryLater):
        run_job(ctx, tenant.name, job.id)
    waiting = ctx.store.job(tenant.name, job.id)
    assert waiting is not None and waiting.status == "retrying"
    ended = run_job(ctx, tenant.name, job.id)
    assert ended is not None and ended.status == "succeeded", ended and ended.error
    assert ctx.store.job(tenant.name, job.id) == ended


def test_a_job_end_and_its_counts_are_one_write(redis_client, tenant, fresh_provider):
    """The duration lands in exactly one bucket per job; the reader makes them cumulative."""
    before = fleet.parse(("authorise",), *(redis_client.hgetall(k) for k in fleet.HASHES))
    ctx = make_context(redis_client)
    ctx.metrics = JobMetrics(redis_client)
    job = queue_job(ctx, tenant.name, fresh_provider.base_url)
    ended = run_job(ctx, tenant.name, job.id)
    assert ended is not None and ended.status == "succeeded"
    after = fleet.parse(("authorise",), *(redis_client.hgetall(k) for k in fleet.HASHES))
    assert after.jobs[("authorise", "succeeded")] - before.jobs[("authorise", "succeeded")] == 1
    grown = {bound: after.durations["authorise"].buckets[bound] - before.durations["authorise"].buckets[bound]
             for bound in fleet.BUCKETS}
    seconds = (ended.finished_at - ended.started_at).total_seconds()
    assert grown == {bound: (1.0 if seconds <= bound else 0.0) for bound in fleet.BUCKETS}
    assert after.durations["authorise"].count - before.durations["authorise"].count == 1


def test_the_reader_adds_up_per_bucket_counts():
    durations = {b"authorise|0.05": b"3", b"authorise|1.0": b"2", b"authorise|sum": b"1.5",
                 b"authorise|count": b"6"}  # one job took longer than the last bound: only in count
    parsed = fleet.parse(("authorise",), {}, durations, {}, {})
    buckets = parsed.durations["authorise"].buckets
    assert buckets[0.05] == 3 and buckets[0.1] == 3 and buckets[0.5] == 3
    assert buckets[1.0] == 5 and buckets[300.0] == 5 and parsed.durations["authorise"].count == 6
