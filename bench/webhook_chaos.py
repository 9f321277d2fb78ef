"""Chaos run for webhooks: jobs through the real API with a webhook subscribed, while workers are
SIGKILLed and Redis restarts; then every job's event is looked for at the receiver.

    flock -x /work/cpu.lock .venv/bin/python bench/webhook_chaos.py --jobs 1000 --kills 3

The machinery is ``bench/chaos.py``'s (its own Redis with the append-only file on, ``authq api``,
worker processes, a loopback provider, the kills and the restart at random points of the run).
Before the jobs, one endpoint of a receiver on loopback (tests/support/webhook_receiver.py, which
verifies every message with the ``standardwebhooks`` package) is registered for every event type.
Once every accepted job has ended, it waits (bounded) until the receiver has a ``job.succeeded``
or ``job.failed`` message for each, and reports:

- missing: jobs that ended with no job event at the receiver (the outbox must make this 0);
- duplicates: messages received beyond one per ``webhook-id`` (at least once allows them);
- unverified: messages the library's verification refused (must be 0);
- the deliveries log (``GET /webhooks/{id}/deliveries``, every page) against the receiver: every
  message received is ``delivered`` there, and nothing there is still pending or failed.

Writes ``bench/webhook-chaos-results.json``; exit status 1 if an event is missing, a message was
unverified or the log disagrees.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.chaos import EndWatcher, Processes, Provider, Run, catalog_with_local, report, say  # noqa: E402
from tasks.settings import DEFAULT_WORKER_CONCURRENCY  # noqa: E402
from tests.support.webhook_receiver import Receiver, start_receiver  # noqa: E402

RESULTS = ROOT / "bench" / "webhook-chaos-results.json"
ENDPOINT = "chaos"


async def register(procs: Processes, receiver: Receiver, events: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": receiver.url(ENDPOINT)}
    if events is not None:
        body["events"] = events
    async with (aiohttp.ClientSession() as session,
                session.post(f"{procs.base}/api/v1/webhooks", json=body,
                             headers={"Authorization": procs.api_key}) as answer):
        assert answer.status == 201, await answer.text()
        created: dict[str, Any] = (await answer.json())["data"]
    receiver.expect(ENDPOINT, created["secret"])
    return created


async def deliveries_log(procs: Processes, webhook_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        page = 1
        while True:
            async with session.get(f"{procs.base}/api/v1/webhooks/{webhook_id}/deliveries",
                                   params={"page": page, "per_page": 100},
                                   headers={"Authorization": procs.api_key}) as answer:
                assert answer.status == 200, await answer.text()
                body = await answer.json()
            out += body["data"]
            if body["links"]["next"] is None:
                return out
            page += 1


def job_events(receiver: Receiver) -> dict[str, set[str]]:
    """Job id -> the webhook-ids of its job.* messages received."""
    seen: dict[str, set[str]] = {}
    for message in receiver.of(ENDPOINT):
        if message.type in ("job.succeeded", "job.failed"):
            seen.setdefault(message.body["data"]["job"]["id"], set()).add(message.id)
    return seen


async def main_async(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="authq-webhook-chaos-"))
    provider = Provider(args.provider_delay)
    provider.start()
    receiver, stop_receiver = start_receiver()
    pool = ("--pool=threads", f"--concurrency={args.worker_concurrency}")
    procs = Processes(work, args.workers, catalog_with_local(work) if args.local_every else None, pool)
    procs.env.update({"AUTHQ_WEBHOOK_TIMEOUT_SECONDS": str(args.webhook_timeout),
                      "AUTHQ_WEBHOOK_RETRY_SCHEDULE": "1,2,5,10,20,30,60"})
    say(f"webhook chaos: {args.jobs} jobs, {args.workers} workers, {args.kills} SIGKILLs, "
        f"{args.redis_restarts} Redis restart(s); work dir {work}")
    try:
        procs.start_api()
        for slot in range(args.workers):
            procs.start_worker(slot)
        procs.wait_ready()
        hook = await register(procs, receiver)
        watcher = EndWatcher(procs)
        run = Run(args, procs, provider)
        began = time.monotonic()
        deadline = began + args.deadline
        chaos = asyncio.create_task(run.chaos())
        submit = asyncio.create_task(run.submit_all())
        await run.watch(deadline)
        await asyncio.wait_for(submit, timeout=max(1.0, deadline - time.monotonic()))
        if not chaos.done():
            chaos.cancel()
        jobs_done = time.monotonic() - began
        ended = set(run.ended)
        waited_until = time.monotonic() + args.event_deadline
        while time.monotonic() < waited_until and not ended <= set(job_events(receiver)):
            await asyncio.sleep(0.5)
        events_done = time.monotonic() - began
        await asyncio.sleep(3)  # a late repeat would have come by now
        watcher.stop.set()
        jobs = report(run, watcher, jobs_done)
        log = await deliveries_log(procs, hook["id"])
    finally:
        procs.stop()
        stop_receiver()
    received = receiver.of(ENDPOINT)
    ids = Counter(m.id for m in received)
    per_job = job_events(receiver)
    missing = sorted(ended - set(per_job))
    logged = {d["event_id"]: d for d in log}
    not_delivered_in_log = sorted(i for i in ids if logged.get(i, {}).get("status") != "delivered")
    log_open = Counter(d["status"] for d in log if d["status"] != "delivered")
    log_not_received = sorted(i for i, d in logged.items() if d["status"] == "delivered" and i not in ids)
    result = {
        "jobs": jobs, "webhook": {
            "jobs_ended": len(ended), "jobs_with_their_event": len(ended & set(per_job)),
            "missing_job_events": len(missing), "missing_examples": missing[:10],
            "messages_received": len(received), "distinct_webhook_ids": len(ids),
            "duplicates": sum(n - 1 for n in ids.values()),
            "duplicated_ids": sum(1 for n in ids.values() if n > 1),
            "jobs_whose_event_had_two_ids": sum(1 for s in per_job.values() if len(s) > 1),
            "received_by_type": dict(Counter(m.type for m in received)),
            "unverified": sum(1 for m in received if not m.verified),
            "log_entries": len(log), "log_by_status": dict(Counter(d["status"] for d in log)),
            "received_but_not_delivered_in_log": len(not_delivered_in_log),
            "log_delivered_but_never_received": len(log_not_received),
            "log_not_delivered": dict(log_open),
            "attempts_histogram": dict(sorted(Counter(str(d["attempts"]) for d in log).items())),
            "s_from_jobs_ended_to_every_event_received": round(events_done - jobs_done, 1),
        }}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    say(json.dumps(result["webhook"], indent=2))
    say(f"jobs: accepted {jobs['accepted']}, lost {jobs['lost']}, ended twice {jobs['ended_more_than_once']}; "
        f"written {RESULTS.relative_to(ROOT)}; logs in {procs.logs}")
    shutil.rmtree(work / "redis", ignore_errors=True)
    hook_result = result["webhook"]
    bad = (hook_result["missing_job_events"] or hook_result["unverified"]
           or hook_result["received_but_not_delivered_in_log"] or hook_result["log_delivered_but_never_received"]
           or hook_result["log_not_delivered"])
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--redis-restarts", type=int, default=1)
    parser.add_argument("--redis-down", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32, help="submissions in flight at once")
    parser.add_argument("--worker-concurrency", type=int, default=DEFAULT_WORKER_CONCURRENCY)
    parser.add_argument("--provider-delay", type=float, default=0.05)
    parser.add_argument("--webhook-timeout", type=float, default=5.0, help="AUTHQ_WEBHOOK_TIMEOUT_SECONDS")
    parser.add_argument("--deadline", type=float, default=400, help="seconds the jobs may take")
    parser.add_argument("--event-deadline", type=float, default=240, help="seconds to wait for the events after")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--local-every", type=int, default=2)
    args = parser.parse_args()
    args.pool = "threads"
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
