"""The slow-provider scenario: workers against a provider that takes 200 ms to answer every check.

Real providers answer in 100 ms to 2 s, so a worker's job mostly waits. What matters then is how
many jobs the fleet keeps waiting at once: 2 worker processes × ``AUTHQ_WORKER_CONCURRENCY``
threads each (``slots``). The reference is what those slots could do if the provider's
200 ms were all a job took: ``slots / 0.2 s`` jobs per second; the target is 0.8 of it. The
same run with ``--pool=solo`` workers (one job at a time each, as before) is printed beside it
for information.

    .venv/bin/python -m bench --only slow          # this scenario alone (about 1-2 minutes)

Everything else is the bench's (``bench/run.py``): its Redis, its API process and its load
generator (``bench.loadgen``'s closed loop, enough submitters that the queue never runs dry).
The provider is an aiohttp server on a thread of the bench process: every request is answered
``200`` after ``DELAY`` seconds, and it counts the requests it holds at once. Jobs use
``bench-checked`` (bench/catalog.yaml): one credential check each, nothing else outbound.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bench.procs import Workers
from bench.report import Figure, Target
from tasks.settings import DEFAULT_WORKER_CONCURRENCY

if TYPE_CHECKING:
    from bench.run import Bench

DELAY = 0.2            # seconds the provider takes to answer every check
PROCESSES = 2          # worker processes
TARGET = 0.8           # of slots / DELAY
ROUNDS = 3
JOBS_PER_SLOT = 40     # a round: this many jobs per slot (16 slots: 640 jobs, about 10 s at the target)
SOLO_JOBS = 100        # the --pool=solo run (information): about 10 s at its 10 jobs/s
SUBMITTERS_PER_SLOT = 4


def body(provider_url: str) -> str:
    return json.dumps({
        "name": "bench-slow", "authentication_implementation_id": "bench-checked", "timezone": "Europe/London",
        "date_format": "Y-m-d", "rate_limit_unit": "second", "rate_limit_duration": 100,
        "variables": [{"key": "base_url", "value": provider_url},
                      {"key": "consumer_key", "value": "ck_bench"},
                      {"key": "consumer_secret", "value": "cs_bench_0123456789", "secret": True}],
    })


class SlowProvider:
    """Answers every request ``200`` after ``delay`` seconds; counts requests held at once."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="bench-slow-provider", daemon=True)
        self.url = ""

    async def _answer(self, _: web.Request) -> web.Response:
        self.requests += 1
        self.in_flight += 1  # one event loop: no lock
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            return web.json_response({"environment": {"version": "9.0"}})
        finally:
            self.in_flight -= 1

    def _serve(self) -> None:
        async def start() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._answer)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
            await site.start()
            self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the slow provider did not start")

    def round(self) -> None:
        """Forget the counts (called between runs, when nothing is in flight)."""
        self.max_in_flight = self.requests = 0

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def figures(concurrency: int) -> dict[str, Figure]:
    slots = PROCESSES * concurrency
    return {
        "slow_provider": Figure(
            "slow_provider", f"jobs vs a 200 ms provider, {PROCESSES} workers x {concurrency} threads", "jobs/s",
            target=Target("ratio_min", TARGET),
            note=f"reference: slots / {DELAY:g} s = {slots} / {DELAY:g} = {slots / DELAY:g} jobs/s"),
        "slow_provider_solo": Figure(
            "slow_provider_solo", f"the same, {PROCESSES} --pool=solo workers (info)", "jobs/s",
            note=f"reference: {PROCESSES} / {DELAY:g} s = {PROCESSES / DELAY:g} jobs/s"),
    }


def phase(bench: Bench, say: Callable[[str], None]) -> None:
    """Measure the scenario with ``bench``'s Redis, API and load generator; adds its figures."""
    concurrency = DEFAULT_WORKER_CONCURRENCY
    slots = PROCESSES * concurrency
    bench.figures.update(figures(concurrency))
    say(f"== slow provider: every check answered after {DELAY * 1000:.0f} ms; {PROCESSES} workers x {concurrency} "
        f"threads = {slots} slots; reference {slots} / {DELAY:g} s = {slots / DELAY:g} jobs/s, target "
        f"{TARGET:g} x that = {TARGET * slots / DELAY:g} jobs/s; {ROUNDS} rounds x {slots * JOBS_PER_SLOT} jobs")
    bench.workers.stop()  # the bench's own workers would take these jobs too
    provider = SlowProvider(DELAY)
    provider.start()
    job_body = body(provider.url)
    try:
        runs: list[tuple[str, int, str, int]] = [
            ("slow_provider", concurrency, "threads", slots * JOBS_PER_SLOT)] * ROUNDS
        runs.append(("slow_provider_solo", 1, "solo", SOLO_JOBS))
        for n, (key, per_process, pool, count) in enumerate(runs):
            if not bench.time_left():
                return
            reference = PROCESSES * per_process / DELAY
            workers = Workers(bench.env, bench.client, bench.out, PROCESSES, bench.args.log_level, pool=pool,
                              concurrency=per_process)
            bench.client.flushdb()
            workers.ensure("authq")
            try:
                provider.round()
                res = _jobs(bench, workers, job_body, count, SUBMITTERS_PER_SLOT * PROCESSES * per_process,
                            f"{key}-{n}")
            finally:
                workers.stop()
            res["provider_max_in_flight"] = provider.max_in_flight
            res["provider_requests"] = provider.requests
            figure = bench.figures[key]
            figure.ours.append(res["throughput"])
            figure.reference.append(reference)
            bench.runs.setdefault(key, []).append({"who": "ours", "reference_jobs_per_s": reference, **res})
            ratio = (res["throughput"] or 0) / reference
            say(f"   {'round ' + str(n + 1) if key == 'slow_provider' else 'solo   '} {res['throughput'] or 0:7.1f} "
                f"jobs/s  ({res['succeeded']}/{res['submitted']} in {res['span_seconds'] or 0:.2f}s; "
                f"{ratio:.2f} of {reference:g} jobs/s, target {TARGET:g}; provider held at most "
                f"{provider.max_in_flight} at once{bench._noise(res)})")
    finally:
        provider.stop()


def _jobs(bench: Bench, workers: Workers, job_body: str, count: int, submitters: int, label: str) -> dict[str, Any]:
    from bench.procs import CpuMeter

    cfg: dict[str, Any] = {"mode": "jobs", "redis": bench.redis_server.url, "count": count, "rate": None,
                           "duration": 0.0, "timeout": 240.0, "concurrency": submitters, "api": bench.api_url,
                           "key": bench.api_key, "tenant": "bench", "body": job_body}
    pids = {**bench.our_pids(), **{p.pid: f"slow-worker{n}" for n, p in enumerate(workers.procs, 1) if p.alive()}}
    cpu = CpuMeter(pids)
    with cpu:
        res = bench._loadgen(cfg, label, 300.0)
    res["cpu"] = cpu.result
    if not res.get("all_done") or res.get("succeeded") != res.get("submitted"):
        bench.warnings.append(f"{label}: {res.get('succeeded')} of {res.get('submitted')} succeeded "
                              f"(states {res.get('states')}, http {res.get('http_statuses')})")
    return res
