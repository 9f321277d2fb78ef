"""Round trips as a user makes them: ``clients`` clients, each submitting one job and waiting
for its end before it submits the next, until ``count`` jobs are done (a closed loop).

* ``wait`` (authq): ``POST /api/v1/oauth/authorise`` with ``Prefer: wait=30`` over HTTP
  (aiohttp, one connection per client). A job counts when the client holds its finished
  record: the submission's own answer (200) or, when that came back 202 because the wait
  ran out, a ``GET /api/v1/jobs/{id}`` with the same preference. Nothing is read from Redis.
* ``noop-wait`` (the reference): the no-op Celery task (``bench.noop``), sent with
  ``send_task`` by ``clients`` threads; each waits for its own task's reply with ``BLPOP``
  on a key of its own, which the task ``RPUSH``es: ``.delay().get()`` with the cheapest
  result there is (a push the client is already blocked on: no polling, no result backend).

Both report the jobs done per second from the first send to the last answer, and each job's
round trip (send -> the client holds its end). Run through ``python -m bench.loadgen``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from datetime import datetime
from typing import Any

from bench.report import percentile

WAIT_SECONDS = 30
FINISHED = ("succeeded", "failed")


def _ms(values_s: list[float]) -> dict[str, float | None]:
    ms = [v * 1000.0 for v in values_s]
    return {"p50": percentile(ms, 50), "p95": percentile(ms, 95), "p99": percentile(ms, 99),
            "max": max(ms) if ms else None, "n": len(ms)}


def _summary(count: int, done: int, statuses: Counter[str], latencies: list[float], first: float | None,
             last: float | None, errors: int) -> dict[str, Any]:
    span = (last - first) if first is not None and last is not None else None
    return {
        "mode": "roundtrip", "submitted": count, "succeeded": done, "all_done": done >= count,
        "states": dict(statuses), "errors": errors, "span_seconds": span,
        "throughput": (done / span) if span else None, "latency_ms": _ms(latencies),
    }


class Phases:
    """A round trip split by the finished record's own stamps (the API's and the worker's
    clocks are this machine's): send -> accepted (``created_at``) -> started -> finished ->
    the client holds the answer. Millisecond stamps: read the medians, not single jobs."""

    def __init__(self) -> None:
        self.parts: dict[str, list[float]] = {"accept": [], "queue": [], "run": [], "answer": []}

    def add(self, sent: float, received: float, job: dict[str, Any]) -> None:
        stamps = [job.get(k) for k in ("created_at", "started_at", "finished_at")]
        if None in stamps:
            return
        created, started, finished = (datetime.fromisoformat(str(v)).timestamp() for v in stamps)
        for name, value in zip(self.parts, (created - sent, started - created, finished - started,
                                            received - finished), strict=True):
            self.parts[name].append(max(0.0, value))

    def result(self) -> dict[str, Any]:
        return {name: _ms(values) for name, values in self.parts.items()}


async def run_wait(cfg: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    api, count, clients = cfg["api"], int(cfg["count"]), int(cfg["clients"])
    body = cfg["body"].encode()
    headers = {"Authorization": cfg["key"], "Content-Type": "application/json", "Prefer": f"wait={WAIT_SECONDS}"}
    poll_headers = {"Authorization": cfg["key"], "Prefer": f"wait={WAIT_SECONDS}"}
    deadline = time.monotonic() + float(cfg.get("timeout", 120))
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    ends: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, base_url=api) as session:

        async def one() -> str:
            """Submit one job and wait for its end: its status."""
            sent = time.time()
            async with session.post("/api/v1/oauth/authorise", data=body, headers=headers) as answer:
                job = (await answer.json())["data"] if answer.status in (200, 202) else None
            if job is None:
                return f"http {answer.status}"
            while job["status"] not in FINISHED and time.monotonic() < deadline:
                async with session.get(f"/api/v1/jobs/{job['id']}", headers=poll_headers) as answer:
                    job = (await answer.json())["data"]
            phases.add(sent, time.time(), job)
            return str(job["status"])

        phases = Phases()
        for _ in range(clients):  # untimed: each worker's first job pays for its connections and imports
            await one()
        phases = Phases()
        remaining = iter(range(count))
        first = time.perf_counter()
        cpu0 = time.process_time()

        async def client() -> None:
            nonlocal errors
            for _ in remaining:
                if time.monotonic() > deadline:
                    return
                sent = time.perf_counter()
                try:
                    status = await one()
                except (aiohttp.ClientError, ValueError, KeyError):
                    errors += 1
                    continue
                statuses[status or "?"] += 1
                if status == "succeeded":
                    now = time.perf_counter()
                    latencies.append(now - sent)
                    ends.append(now)

        await asyncio.gather(*(client() for _ in range(clients)))
        cpu = time.process_time() - cpu0
    return {**_summary(count, len(ends), statuses, latencies, first, max(ends, default=None), errors),
            "phases_ms": phases.result(), "client_cpu_seconds": cpu}


def run_noop_wait(cfg: dict[str, Any]) -> dict[str, Any]:
    import redis

    from bench.noop import NOOP, app, reply_key
    from tasks.jobs.queue_port import INTERACTIVE

    count, clients = int(cfg["count"]), int(cfg["clients"])
    deadline = time.monotonic() + float(cfg.get("timeout", 120))
    redis_client = redis.Redis.from_url(cfg["redis"], max_connections=clients + 4)
    lock = threading.Lock()
    latencies: list[float] = []
    ends: list[float] = []
    statuses: Counter[str] = Counter()
    remaining = iter(range(count))

    def one(index: int) -> bool:
        key = reply_key(index)
        app.send_task(NOOP, args=(index, key), queue=INTERACTIVE)
        return redis_client.blpop([key], timeout=WAIT_SECONDS) is not None

    def client() -> None:
        while time.monotonic() < deadline:
            with lock:
                index = next(remaining, None)
            if index is None:
                return
            sent = time.perf_counter()
            done = one(index)
            now = time.perf_counter()
            with lock:
                statuses["succeeded" if done else "timed out"] += 1
                if done:
                    latencies.append(now - sent)
                    ends.append(now)

    for warm in range(-clients, 0):  # untimed: Celery connects and declares its queues on the first publish
        one(warm)
    first = time.perf_counter()
    cpu0 = time.process_time()
    threads = [threading.Thread(target=client, name=f"client-{n}", daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(1.0, deadline - time.monotonic()))
    cpu = time.process_time() - cpu0
    redis_client.close()
    app.close()
    return {**_summary(count, len(ends), statuses, latencies, first, max(ends, default=None), 0),
            "client_cpu_seconds": cpu}
