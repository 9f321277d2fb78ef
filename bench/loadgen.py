"""The load generator: always a process of its own, never the thing measured.

``python -m bench.loadgen CONFIG.json`` runs one measurement described by a JSON file and
prints one JSON line of results. Modes:

* ``http``: a closed loop of ``concurrency`` aiohttp clients for ``duration`` seconds (used
  when ``wrk`` is not installed; the bench prefers wrk, which costs less CPU).
* ``jobs``: authorise jobs through authq's HTTP API — ``count`` of them with ``concurrency``
  submitters (closed loop: throughput), or ``rate`` per second for ``duration`` seconds
  (open loop, paced: latency). When a job *succeeded* is read from its record's
  ``finished_at`` (stamped by the worker when it saves the final state, to the millisecond);
  the records are fetched from Redis once they are done, so no client poll interval is
  added to the figures.
* ``noop``: the same shapes with the no-op Celery task (``bench.noop``), submitted with
  Celery's ``send_task``; completion times come from the task's own RPUSH.
* ``wait`` and ``noop-wait``: round trips as a user makes them, each client waiting for its
  job's end (``Prefer: wait``; ``.delay().get()``): ``bench.roundtrip``.

Latency is measured from the *scheduled* send time in the open loop (so a loaded client that
falls behind cannot hide latency), from the actual send time in the closed loop.
Every loop here is bounded by a count and a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter, deque
from datetime import datetime
from typing import Any

from bench import roundtrip
from bench.report import percentile

PENDING_BATCH = 200
POLL_EVERY = 0.05


def _pause(pids: list[int]) -> None:
    """Drain mode: the bench's own worker processes are stopped (SIGSTOP) while the jobs are
    queued, and continued (SIGCONT) all at once; the drain is timed from then."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)


def _resume(pids: list[int]) -> float:
    at = time.time()
    for pid in pids:
        os.kill(pid, signal.SIGCONT)
    return at


def _ms_summary(values_s: list[float]) -> dict[str, float | None]:
    ms = [v * 1000.0 for v in values_s]
    return {"p50": percentile(ms, 50), "p95": percentile(ms, 95), "p99": percentile(ms, 99),
            "max": max(ms) if ms else None, "n": len(ms)}


# --- http (closed loop) ------------------------------------------------------------------

async def run_http(cfg: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    url, method = cfg["url"], cfg["method"]
    body = cfg.get("body", "").encode() or None
    headers = cfg.get("headers", {})
    ids = cfg.get("ids") or []
    concurrency, duration = int(cfg["concurrency"]), float(cfg["duration"])
    statuses: Counter[int] = Counter()
    errors = 0
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = loop.time()
        stop_at = started + duration

        async def client(k: int) -> None:
            nonlocal errors
            n = k
            while loop.time() < stop_at:
                target = url.replace("{id}", ids[n % len(ids)]) if ids else url
                n += concurrency
                t = time.perf_counter()
                try:
                    async with session.request(method, target, data=body, headers=headers) as answer:
                        await answer.read()
                        statuses[answer.status] += 1
                except aiohttp.ClientError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t)

        await asyncio.wait_for(asyncio.gather(*(client(k) for k in range(concurrency))), duration + 30)
        elapsed = loop.time() - started
    total = sum(statuses.values())
    good = sum(c for s, c in statuses.items() if 200 <= s < 300)
    return {"requests": total, "seconds": elapsed, "rate": total / elapsed if elapsed else 0.0,
            "non_2xx": total - good, "errors": errors, "statuses": {str(k): v for k, v in statuses.items()},
            "latency_ms": _ms_summary(latencies)}


# --- jobs through authq ------------------------------------------------------------------

def _parse_time(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).timestamp()


async def _wait_jobs(client: Any, key_of: Any, ids: list[str], deadline: float) -> bool:
    """Until every job has a finished_at (or the deadline). Checks the oldest pending ones first:
    the queue is FIFO, so this reads little while most are still queued."""
    pending = deque(ids)
    while pending and time.monotonic() < deadline:
        batch = [pending[i] for i in range(min(PENDING_BATCH, len(pending)))]
        raws = await client.mget([key_of(i) for i in batch])
        unfinished = {i for i, raw in zip(batch, raws, strict=True) if raw is None or b'"finished_at":null' in raw}
        for _ in range(len(batch)):
            job_id = pending.popleft()
            if job_id in unfinished:
                pending.append(job_id)
        if unfinished:
            await asyncio.sleep(POLL_EVERY)
    return not pending


async def run_jobs(cfg: dict[str, Any]) -> dict[str, Any]:
    import aiohttp
    from redis.asyncio import Redis

    from tasks.storage import schema

    api, tenant = cfg["api"], cfg["tenant"]
    body = cfg["body"].encode()
    headers = {"Authorization": cfg["key"], "Content-Type": "application/json"}
    count, rate = cfg.get("count"), cfg.get("rate")
    duration = float(cfg.get("duration", 0))
    timeout = float(cfg.get("timeout", 120))
    released: float | None = None        # drain mode: when the paused workers were continued
    sent: dict[str, float] = {}          # job id -> submit time (scheduled, in the open loop)
    order: list[str] = []
    statuses: Counter[int] = Counter()
    errors = 0
    url = f"{api}/api/v1/oauth/authorise"
    deadline = time.monotonic() + timeout
    connector = aiohttp.TCPConnector(limit=int(cfg.get("concurrency", 256)))
    redis = Redis.from_url(cfg["redis"])
    async with aiohttp.ClientSession(connector=connector) as session:
        # One job first, untimed: each worker's first job pays for its connections and imports.
        async with session.post(url, data=body, headers=headers) as answer:
            first = await answer.json()
            if "data" not in first:
                raise SystemExit(f"loadgen: the first authorise answered {answer.status}: {first}")
            warm = first["data"]["id"]
        await _wait_jobs(redis, lambda i: schema.job(tenant, i), [warm], time.monotonic() + 30)

        async def post(t_submit: float) -> None:
            nonlocal errors
            try:
                async with session.post(url, data=body, headers=headers) as answer:
                    statuses[answer.status] += 1
                    if answer.status in (200, 202):
                        job_id = (await answer.json())["data"]["id"]
                        sent[job_id] = t_submit
                        order.append(job_id)
                    else:
                        await answer.read()
            except aiohttp.ClientError:
                errors += 1

        if rate:  # open loop: the i-th job is sent at t0 + i/rate, whatever the others do
            n = int(rate * duration)
            t0 = time.time() + 0.2
            inflight: list[asyncio.Task[None]] = []
            for i in range(n):
                scheduled = t0 + i / rate
                delay = scheduled - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if time.monotonic() > deadline:
                    break
                inflight.append(asyncio.create_task(post(scheduled)))
            if inflight:
                await asyncio.wait(inflight, timeout=max(1.0, deadline - time.monotonic()))
        else:  # closed loop: `concurrency` submitters share `count` jobs
            remaining = iter(range(int(count)))

            async def submitter() -> None:
                for _ in remaining:
                    if time.monotonic() > deadline:
                        return
                    await post(time.time())

            pids = cfg.get("pause_pids") or []
            _pause(pids)
            try:
                await asyncio.gather(*(submitter() for _ in range(int(cfg["concurrency"]))))
            finally:
                released = _resume(pids) if pids else None
    submitted_until = time.time()

    try:
        done = await _wait_jobs(redis, lambda i: schema.job(tenant, i), order, deadline)
        records: list[dict[str, Any]] = []
        for start in range(0, len(order), 500):
            chunk = order[start:start + 500]
            raws = await redis.mget([schema.job(tenant, i) for i in chunk])
            records += [json.loads(r) for r in raws if r is not None]
    finally:
        await redis.aclose()
    return _jobs_result(sent, records, statuses, errors, done, submitted_until, released, cfg)


def _jobs_result(sent: dict[str, float], records: list[dict[str, Any]], statuses: Counter[int], errors: int,
                 done: bool, submitted_until: float, released: float | None, cfg: dict[str, Any]) -> dict[str, Any]:
    latency, accept, queue_wait, run = [], [], [], []
    finished: list[float] = []
    states: Counter[str] = Counter()
    for rec in records:
        states[rec["status"]] += 1
        end = _parse_time(rec.get("finished_at"))
        if rec["status"] != "succeeded" or end is None:
            continue
        start = _parse_time(rec.get("started_at"))
        created = _parse_time(rec.get("created_at"))
        t_submit = sent[rec["id"]]
        finished.append(end)
        latency.append(end - t_submit)
        if start is not None and created is not None:
            accept.append(created - t_submit)   # client send -> the API stamps the job
            queue_wait.append(start - created)  # stamped -> a worker starts it
            run.append(end - start)             # started -> succeeded (the worker's run_job)
    first = released if released is not None else (min(sent.values()) if sent else None)
    last = max(finished) if finished else None
    span = (last - first) if first is not None and last is not None else None
    return {
        "mode": "rate" if cfg.get("rate") else "count", "rate": cfg.get("rate"), "submitted": len(sent),
        "succeeded": len(finished), "all_done": done, "states": dict(states),
        "http_statuses": {str(k): v for k, v in statuses.items()}, "errors": errors,
        "submit_seconds": (submitted_until - first) if first is not None else None,
        "span_seconds": span, "throughput": (len(finished) / span) if span else None,
        "drain": released is not None,
        "latency_ms": _ms_summary(latency), "accept_ms": _ms_summary(accept), "queue_wait_ms": _ms_summary(queue_wait),
        "run_ms": _ms_summary(run),
    }


# --- no-op Celery tasks ------------------------------------------------------------------

def run_noop(cfg: dict[str, Any]) -> dict[str, Any]:
    import redis

    from bench.noop import DONE_KEY, NOOP, app
    from tasks.jobs.queue_port import INTERACTIVE

    count, rate = cfg.get("count"), cfg.get("rate")
    duration = float(cfg.get("duration", 0))
    timeout = float(cfg.get("timeout", 120))
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(cfg["redis"])
    client.delete(DONE_KEY)
    sent: dict[int, float] = {}
    released: float | None = None
    # One send first, untimed: Celery connects and declares its queues on the first publish.
    app.send_task(NOOP, args=(-1,), queue=INTERACTIVE)
    while client.llen(DONE_KEY) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    client.delete(DONE_KEY)
    if rate:
        n = int(rate * duration)
        t0 = time.time() + 0.2
        for i in range(n):
            scheduled = t0 + i / rate
            delay = scheduled - time.time()
            if delay > 0:
                time.sleep(delay)
            if time.monotonic() > deadline:
                break
            app.send_task(NOOP, args=(i,), queue=INTERACTIVE)
            sent[i] = scheduled
    else:
        pids = cfg.get("pause_pids") or []
        _pause(pids)
        try:
            for i in range(int(count)):
                if time.monotonic() > deadline:
                    break
                sent[i] = time.time()
                app.send_task(NOOP, args=(i,), queue=INTERACTIVE)
        finally:
            released = _resume(pids) if pids else None
    submitted_until = time.time()
    while client.llen(DONE_KEY) < len(sent) and time.monotonic() < deadline:
        time.sleep(POLL_EVERY)
    done_at: dict[int, float] = {}
    for item in client.lrange(DONE_KEY, 0, -1):
        index, at = item.decode().split()
        done_at[int(index)] = float(at)
    client.delete(DONE_KEY)
    client.close()
    app.close()
    latency = [done_at[i] - sent[i] for i in sent if i in done_at]
    first = released if released is not None else (min(sent.values()) if sent else None)
    last = max(done_at.values()) if done_at else None
    span = (last - first) if first is not None and last is not None else None
    return {
        "mode": "rate" if rate else "count", "rate": rate, "submitted": len(sent), "succeeded": len(done_at),
        "all_done": len(done_at) >= len(sent), "submit_seconds": (submitted_until - first) if first else None,
        "span_seconds": span, "throughput": (len(done_at) / span) if span else None,
        "drain": released is not None, "latency_ms": _ms_summary(latency),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.loadgen CONFIG.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as handle:
        cfg = json.load(handle)
    mode = cfg["mode"]
    if mode == "http":
        result = asyncio.run(run_http(cfg))
    elif mode == "jobs":
        result = asyncio.run(run_jobs(cfg))
    elif mode == "noop":
        result = run_noop(cfg)
    elif mode == "wait":
        result = asyncio.run(roundtrip.run_wait(cfg))
    elif mode == "noop-wait":
        result = roundtrip.run_noop_wait(cfg)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
