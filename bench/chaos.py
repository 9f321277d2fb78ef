"""Chaos run: jobs through the real HTTP API while workers are SIGKILLed and Redis restarts.

    .venv/bin/python bench/chaos.py --jobs 2000 --kills 5

Starts, all on loopback and all its own: a ``redis-server`` with its append-only file on, the
API (``authq api``), N workers (``celery -A worker worker --pool=threads --concurrency=8``, as
``authq up`` runs them; ``--pool solo`` for one job at a time) and a provider whose credential
check answers after a short delay. It submits the jobs (authorise, ``woocommerce-basic``, one
shop per job so the provider counts each job's checks apart; with ``--local-every N``, every
Nth job uses a token implementation with no check, which a worker runs from its message's copy
and ends in one write) with bounded concurrency; meanwhile it SIGKILLs a random worker ``--kills``
times (starting a new one at once, as ``authq up`` would) and shuts Redis down and starts it
again on the same port and files ``--redis-restarts`` times. Then it waits (bounded) for every
accepted job to end and reports:

- accepted (202), refused (never accepted: every try answered 503 or failed), succeeded,
  failed (by code);
- lost: accepted, but its record is gone or it never ended;
- ended more than once: more than one terminal status published for one job (watched on the
  jobs' pub/sub channels; a restart's few seconds are not watched);
- duplicated connectors: connectors beyond one per accepted authorise (one per job's
  connector id), and connectors no accepted job names;
- runs beyond starts: jobs whose shop saw more checks than the job counts attempts (a run
  nobody counted, e.g. two at once);
- how long the jobs running when a worker was killed took to end after the kill.

Prints a table and writes ``bench/chaos-results.json``. Exit status 1 if anything was lost
or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import redis  # noqa: E402
import yaml  # noqa: E402
from aiohttp import web  # noqa: E402

from authq.redis_server import RedisServer, free_port, start_redis  # noqa: E402
from tasks.security.sealing import generate_key  # noqa: E402
from tasks.settings import DEFAULT_WORKER_CONCURRENCY  # noqa: E402
from tasks.storage import schema  # noqa: E402

RESULTS = ROOT / "bench" / "chaos-results.json"
TENANT = "chaos"
GOOD_KEY, GOOD_SECRET = "ck_chaos_1234", "cs_chaos_secret_5678"
CHECK = "/wp-json/wc/v3/system_status"


def say(message: str) -> None:
    print(message, flush=True)


# --- the provider: a loopback WooCommerce check, counting per shop ----------------------------

@dataclass
class Provider:
    delay: float
    checks: Counter[str] = field(default_factory=Counter)
    ok: Counter[str] = field(default_factory=Counter)
    base_url: str = ""

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def check(request: web.Request) -> web.Response:
            shop = request.match_info["shop"]
            self.checks[shop] += 1
            await asyncio.sleep(self.delay)
            self.ok[shop] += 1
            return web.json_response({"environment": {"version": "9.0"}})

        async def serve() -> None:
            app = web.Application()
            app.router.add_get("/shops/{shop}" + CHECK, check)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            ready.set()

        def run() -> None:
            loop.run_until_complete(serve())
            loop.run_forever()

        threading.Thread(target=run, name="chaos-provider", daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("the provider did not start")


# --- the processes -------------------------------------------------------------------------

LOCAL_IMPLEMENTATION = {"id": "chaos-local-token", "system": "ChaosLocal", "type": "token",
                        "token_variable": "api_key",
                        "variables": [{"key": "api_key", "label": "API key", "secret": True, "required": True}]}


def catalog_with_local(work: Path) -> Path:
    """authq's catalog plus one implementation that needs no provider call."""
    catalog = yaml.safe_load((ROOT / "tasks" / "model" / "catalog.yaml").read_text())
    catalog["implementations"].append(LOCAL_IMPLEMENTATION)
    path = work / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog))
    return path


class Processes:
    def __init__(self, work: Path, workers: int, catalog: Path | None = None,
                 pool: tuple[str, ...] = ("--pool=threads",)) -> None:
        self.work = work
        self.pool = pool
        self.logs = work / "logs"
        self.logs.mkdir(parents=True)
        self.password = secrets.token_urlsafe(16)
        self.redis: RedisServer = start_redis(work / "redis", self.password, appendonly=True)
        self.api_key = f"key-{secrets.token_urlsafe(24)}"
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHQ_")}
        self.env.update({
            "AUTHQ_REDIS_URL": self.redis.url,
            "AUTHQ_SECRET_KEY": generate_key(),
            "AUTHQ_API_KEYS": f"{TENANT}:{self.api_key}",
            "AUTHQ_ALLOW_PRIVATE_NETWORKS": "true",   # the provider is on loopback
            "AUTHQ_OUTBOUND_TIMEOUT_SECONDS": "10",
            "AUTHQ_MAX_QUEUED_PER_TENANT": "1000000",
            # One API key sends thousands of requests a second here: its limit is raised, not turned
            # off, so the figures include what the limiter costs each request.
            "AUTHQ_API_RATE_LIMIT": "1000000",
            "AUTHQ_LOG_LEVEL": "INFO",
        })
        if catalog is not None:
            self.env["AUTHQ_CATALOG"] = str(catalog)
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * workers
        self.starts = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with open(self.logs / log_name, "ab") as log:
            return subprocess.Popen(argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)

    def start_api(self) -> None:
        authq = Path(sys.executable).with_name("authq")
        argv = [str(authq)] if authq.exists() else [sys.executable, "-m", "authq"]
        self.api = self._spawn(argv + ["api", "--host", "127.0.0.1", "--port", str(self.port)], "api.log")

    def start_worker(self, slot: int) -> None:
        self.starts += 1
        name = f"chaos{slot}-{self.starts}"
        self.workers[slot] = self._spawn(
            [sys.executable, "-m", "celery", "-A", "worker", "worker", *self.pool, "--loglevel=INFO",
             "-n", f"{name}@%h", "-Q", "authq.interactive,authq.background", "--without-gossip", "--without-mingle"],
            f"worker{slot}.log")

    def kill_worker(self, slot: int) -> int:
        proc = self.workers[slot]
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        return proc.pid

    def restart_redis(self, down_for: float) -> float:
        """SHUTDOWN (AOF flushed), a pause, and redis-server again on the same port and files."""
        began = time.monotonic()
        port = self.redis.port
        self.redis.stop()
        time.sleep(down_for)
        self.redis = start_redis(self.work / "redis", self.password, port=port, appendonly=True)
        return time.monotonic() - began

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis.url, socket_timeout=10)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        client = self.client()
        while True:
            assert self.api is not None
            if self.api.poll() is not None:
                raise RuntimeError(f"authq api exited:\n{(self.logs / 'api.log').read_text()[-3000:]}")
            dead = [i for i, w in enumerate(self.workers) if w is not None and w.poll() is not None]
            if dead:
                log = (self.logs / f"worker{dead[0]}.log").read_text()
                raise RuntimeError(f"worker {dead[0]} exited:\n{log[-3000:]}")
            fresh = client.zrangebyscore(schema.WORKERS, time.time() - 15, "+inf")
            try:
                import urllib.request
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as answer:
                    api_up = answer.status == 200
            except OSError:
                api_up = False
            if api_up and len(fresh) >= len(self.workers):
                client.close()
                return
            if time.monotonic() > deadline:
                raise RuntimeError("authq did not become ready; see the logs in " + str(self.logs))
            time.sleep(0.25)

    def stop(self) -> None:
        procs = [p for p in [self.api, *self.workers] if p is not None and p.poll() is None]
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.redis.stop()


# --- watching jobs end --------------------------------------------------------------------

class EndWatcher:
    """Counts terminal statuses published per job (``save_job`` publishes every save)."""

    def __init__(self, procs: Processes) -> None:
        self.procs = procs
        self.ends: Counter[str] = Counter()
        self.stop = threading.Event()
        threading.Thread(target=self.run, name="chaos-ends", daemon=True).start()

    def run(self) -> None:
        pattern = schema.job_events.pattern(TENANT)
        while not self.stop.is_set():
            try:
                with redis.Redis.from_url(self.procs.redis.url) as client, client.pubsub() as pubsub:
                    pubsub.psubscribe(pattern)
                    while not self.stop.is_set():
                        message = pubsub.get_message(timeout=0.5)
                        if message and message["type"] == "pmessage" and message["data"] in (b"succeeded", b"failed"):
                            channel = schema.job_events.parse(message["channel"])
                            if channel is not None and channel.id is not None:
                                self.ends[channel.id] += 1
            except (redis.RedisError, OSError):
                time.sleep(0.2)


# --- the run --------------------------------------------------------------------------------

@dataclass
class Run:
    args: argparse.Namespace
    procs: Processes
    provider: Provider
    accepted: dict[str, tuple[int, str]] = field(default_factory=dict)   # job id -> (index, connector id)
    refused: int = 0
    answers: Counter[str] = field(default_factory=Counter)                # every answer, tries included
    ended: dict[str, dict[str, Any]] = field(default_factory=dict)        # job id -> stored record
    events: list[dict[str, Any]] = field(default_factory=list)
    submitted_all: bool = False
    redis_down: bool = False
    one_at_a_time: asyncio.Lock = field(default_factory=asyncio.Lock)

    def body(self, index: int) -> dict[str, Any]:
        if self.args.local_every and index % self.args.local_every == 0:
            return {  # a job that needs nobody else: run from its message's copy, ended in one write
                "name": f"key {index}", "authentication_implementation_id": LOCAL_IMPLEMENTATION["id"],
                "timezone": "Europe/London", "date_format": "Y-m-d", "rate_limit_unit": "second",
                "rate_limit_duration": 10, "variables": [{"key": "api_key", "value": f"{GOOD_SECRET}-{index}"}],
            }
        return {
            "name": f"shop {index}", "authentication_implementation_id": "woocommerce-basic",
            "timezone": "Europe/London", "date_format": "Y-m-d", "rate_limit_unit": "second",
            "rate_limit_duration": 10,
            "variables": [{"key": "store_url", "value": f"{self.provider.base_url}/shops/{index}"},
                          {"key": "consumer_key", "value": GOOD_KEY},
                          {"key": "consumer_secret", "value": GOOD_SECRET}],
        }

    async def submit_one(self, session: aiohttp.ClientSession, sem: asyncio.Semaphore, index: int) -> None:
        """POST until 202 (5 tries, backing off on 503/errors); never accepted = refused."""
        headers = {"Authorization": self.procs.api_key}
        for attempt in range(6):
            async with sem:
                try:
                    async with session.post(f"{self.procs.base}/api/v1/oauth/authorise", json=self.body(index),
                                            headers=headers) as answer:
                        self.answers[str(answer.status)] += 1
                        if answer.status == 202:
                            data = (await answer.json())["data"]
                            self.accepted[data["id"]] = (index, data["connector_id"])
                            return
                        await answer.read()
                except (TimeoutError, aiohttp.ClientError) as exc:
                    self.answers[type(exc).__name__] += 1
            await asyncio.sleep(min(4.0, 0.5 * 2 ** attempt))
        self.refused += 1

    async def submit_all(self) -> None:
        sem = asyncio.Semaphore(self.args.concurrency)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(self.submit_one(session, sem, i) for i in range(self.args.jobs)))
        self.submitted_all = True

    def statuses(self, ids: list[str] | None = None) -> dict[str, dict[str, Any] | None]:
        """Each accepted job's stored record (None: gone), read straight from Redis."""
        ids = list(self.accepted) if ids is None else ids
        out: dict[str, dict[str, Any] | None] = {}
        with self.procs.client() as client:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                for job_id, raw in zip(chunk, client.mget([schema.job(TENANT, j) for j in chunk]), strict=True):
                    out[job_id] = None if raw is None else json.loads(raw)
        return out

    def running_jobs(self, ids: list[str]) -> list[str]:
        try:
            return [j for j, rec in self.statuses(ids).items() if rec and rec.get("status") == "running"]
        except (redis.RedisError, OSError):
            return []

    async def chaos(self) -> None:
        """Kills at random points of the processing (by share of the jobs ended) and Redis
        restarts at random points of the submissions (by share accepted), so that the API
        and the workers both see Redis go away."""
        rng = random.Random(self.args.seed)
        plan = sorted([(rng.uniform(0.05, 0.85), "kill") for _ in range(self.args.kills)]
                      + [(rng.uniform(0.3, 0.8), "redis") for _ in range(self.args.redis_restarts)])
        started = time.monotonic()
        await asyncio.gather(*(self._event(rng, started, at, what) for at, what in plan))

    async def _event(self, rng: random.Random, started: float, at: float, what: str) -> None:
        def progress() -> int:
            return len(self.ended) if what == "kill" else len(self.accepted) + self.refused

        while progress() < at * self.args.jobs:
            await asyncio.sleep(0.05)
        await asyncio.sleep(rng.uniform(0, 0.5))  # not in step with anything
        async with self.one_at_a_time:
            t = round(time.monotonic() - started, 2)
            if what == "kill":
                slot = rng.randrange(len(self.procs.workers))
                running = await asyncio.to_thread(self.running_jobs, list(self.accepted))
                pid = self.procs.kill_worker(slot)
                self.events.append({"at": t, "event": "SIGKILL worker", "slot": slot, "pid": pid,
                                    "running_jobs": running, "wall": time.time()})
                say(f"  [{t:7.1f}s] SIGKILL worker {slot} (pid {pid}); {len(running)} jobs were running")
                await asyncio.sleep(0.5)
                self.procs.start_worker(slot)  # as `authq up` would
            else:
                self.redis_down = True
                took = await asyncio.to_thread(self.procs.restart_redis, self.args.redis_down)
                self.redis_down = False
                self.events.append({"at": t, "event": "Redis restart", "took_s": round(took, 2)})
                say(f"  [{t:7.1f}s] Redis shut down and started again ({took:.1f}s)")

    async def watch(self, deadline: float) -> None:
        """Until every accepted job has ended (or the deadline): progress every 5 s."""
        started = time.monotonic()
        last = 0.0
        while True:
            if not self.redis_down:
                try:
                    records = await asyncio.to_thread(self.statuses, [j for j in self.accepted if j not in self.ended])
                    for job_id, rec in records.items():
                        if rec and rec.get("status") in ("succeeded", "failed"):
                            self.ended[job_id] = rec
                    with self.procs.client() as client:
                        depth = client.llen("authq.interactive")
                        unacked = client.hlen("unacked")
                except (redis.RedisError, OSError):
                    depth = unacked = -1
                now = time.monotonic()
                if now - last >= 5:
                    last = now
                    say(f"  [{now - started:7.1f}s] accepted {len(self.accepted):5d}  ended {len(self.ended):5d}  "
                        f"queued {depth:5d}  unacked {unacked:3d}  refused {self.refused}")
            if self.submitted_all and len(self.ended) == len(self.accepted):
                return
            if time.monotonic() > deadline:
                say("  deadline reached with jobs still open")
                return
            await asyncio.sleep(0.5)


def report(run: Run, watcher: EndWatcher, elapsed: float) -> dict[str, Any]:
    records = run.statuses()
    lost_missing = [j for j, r in records.items() if r is None]
    lost_open = [j for j, r in records.items() if r is not None and r.get("status") not in ("succeeded", "failed")]
    outcome = Counter(r["status"] for r in records.values() if r and r.get("status") in ("succeeded", "failed"))
    codes = Counter((r.get("error") or {}).get("code") for r in records.values() if r and r.get("status") == "failed")
    attempts = Counter(int(r.get("attempts", 0)) for r in records.values() if r)
    with run.procs.client() as client:
        connectors = [c.decode() for c in client.zrange(schema.connectors(TENANT), 0, -1)]
        broker_left = {"queued": client.llen("authq.interactive") + client.llen("authq.background"),
                       "unacked": client.hlen("unacked")}
    expected = {cid for _, cid in run.accepted.values()}
    # Every connector id is minted with its job at submission: a connector that no stored job
    # names, or one id twice, would be a duplicate made by a worker.
    with run.procs.client() as client:
        job_keys = [k for k in client.scan_iter(match=schema.job.pattern(TENANT), count=1000)
                    if schema.job.parse(k) is not None]
        named = set()
        for start in range(0, len(job_keys), 500):
            for raw in client.mget(job_keys[start:start + 500]):
                if raw:
                    named.add(json.loads(raw).get("connector_id"))
    duplicated_connectors = (len(connectors) - len(set(connectors))) + sum(1 for c in set(connectors) if c not in named)
    unaccepted_connectors = sorted(set(connectors) - expected)  # their submission committed, its answer was lost
    ended_twice = {j: n for j, n in watcher.ends.items() if j in run.accepted and n > 1}
    index_of = {j: i for j, (i, _) in run.accepted.items()}
    beyond = {j: {"checks": run.provider.checks[str(index_of[j])], "attempts": r.get("attempts")}
              for j, r in records.items() if r and run.provider.checks[str(index_of[j])] > int(r.get("attempts", 0))}
    # The jobs that were running when a worker was killed: how long until they ended.
    after_kill = []
    for event in run.events:
        if event["event"] != "SIGKILL worker":
            continue
        waits = []
        for job_id in event.pop("running_jobs"):
            rec = records.get(job_id)
            if rec and rec.get("finished_at"):
                finished = datetime.fromisoformat(rec["finished_at"].replace("Z", "+00:00")).timestamp()
                waits.append(finished - event["wall"])
        event.pop("wall")
        event["its_running_jobs_ended_within_s"] = round(max(waits), 1) if waits else None
        after_kill.extend(waits)
    result = {
        "jobs": run.args.jobs, "workers": run.args.workers, "kills": run.args.kills,
        "local_every": run.args.local_every, "pool": run.args.pool, "worker_concurrency": run.args.worker_concurrency,
        "redis_restarts": run.args.redis_restarts,
        "accepted": len(run.accepted), "refused": run.refused, "answers": dict(run.answers),
        "succeeded": outcome["succeeded"], "failed": outcome["failed"], "failed_codes": dict(codes),
        "lost": len(lost_missing) + len(lost_open), "lost_record_missing": lost_missing[:20],
        "lost_never_ended": lost_open[:20], "ended_more_than_once": len(ended_twice),
        "connectors": len(connectors), "duplicated_connectors": duplicated_connectors,
        "connectors_of_unaccepted_submissions": len(unaccepted_connectors),
        "runs_beyond_starts": len(beyond), "runs_beyond_starts_examples": dict(list(beyond.items())[:10]),
        "attempts_histogram": {str(k): v for k, v in sorted(attempts.items())},
        "jobs_checked_more_than_once": sum(1 for i, _ in run.accepted.values() if run.provider.checks[str(i)] > 1),
        "max_s_from_kill_to_end_of_jobs_running_at_kill": round(max(after_kill), 1) if after_kill else None,
        "broker_left": broker_left, "events": run.events, "elapsed_s": round(elapsed, 1),
    }
    return result


def table(result: dict[str, Any]) -> str:
    rows = [
        ("jobs submitted", result["jobs"]), ("workers", result["workers"]),
        ("SIGKILLs / Redis restarts", f"{result['kills']} / {result['redis_restarts']}"),
        ("accepted (202)", result["accepted"]), ("refused (never accepted)", result["refused"]),
        ("answers (tries included)", ", ".join(f"{k}: {v}" for k, v in sorted(result["answers"].items()))),
        ("succeeded", result["succeeded"]),
        ("failed", f"{result['failed']} {result['failed_codes'] or ''}".strip()),
        ("LOST (accepted, not ended / record gone)", result["lost"]),
        ("ended more than once", result["ended_more_than_once"]),
        ("connectors", result["connectors"]),
        ("DUPLICATED connectors", result["duplicated_connectors"]),
        ("connectors of refused submissions", result["connectors_of_unaccepted_submissions"]),
        ("runs beyond counted starts", result["runs_beyond_starts"]),
        ("attempts (n: jobs)", ", ".join(f"{k}: {v}" for k, v in result["attempts_histogram"].items())),
        ("jobs whose provider saw >1 check", result["jobs_checked_more_than_once"]),
        ("max s from a kill to the end of its jobs", result["max_s_from_kill_to_end_of_jobs_running_at_kill"]),
        ("left in the broker", f"queued {result['broker_left']['queued']}, unacked {result['broker_left']['unacked']}"),
        ("elapsed", f"{result['elapsed_s']} s"),
    ]
    width = max(len(r[0]) for r in rows)
    line = "+" + "-" * (width + 2) + "+" + "-" * 44 + "+"
    out = [line] + [f"| {name:<{width}} | {str(value):<42} |" for name, value in rows] + [line]
    return "\n".join(out)


async def main_async(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="authq-chaos-"))
    provider = Provider(args.provider_delay)
    provider.start()
    say(f"chaos: {args.jobs} jobs, {args.workers} workers ({args.pool}"
        f"{f' x {args.worker_concurrency}' if args.pool == 'threads' else ''}), {args.kills} SIGKILLs, "
        f"{args.redis_restarts} Redis restart(s); work dir {work}")
    pool = ("--pool=solo",) if args.pool == "solo" else ("--pool=threads", f"--concurrency={args.worker_concurrency}")
    procs = Processes(work, args.workers, catalog_with_local(work) if args.local_every else None, pool)
    started = time.monotonic()
    try:
        procs.start_api()
        for slot in range(args.workers):
            procs.start_worker(slot)
        procs.wait_ready()
        say(f"  ready in {time.monotonic() - started:.1f}s: API {procs.base}, Redis :{procs.redis.port} (AOF on)")
        watcher = EndWatcher(procs)
        run = Run(args, procs, provider)
        began = time.monotonic()
        deadline = began + args.deadline
        chaos = asyncio.create_task(run.chaos())
        submit = asyncio.create_task(run.submit_all())
        await run.watch(deadline)
        await asyncio.wait_for(submit, timeout=max(1.0, deadline - time.monotonic()))
        if not chaos.done():
            say("  (the run ended before all chaos events fired; cancelling the rest)")
            chaos.cancel()
        elapsed = time.monotonic() - began
        await asyncio.sleep(2)  # a late second end would be published by now
        watcher.stop.set()
        result = report(run, watcher, elapsed)
    finally:
        procs.stop()
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    say(table(result))
    say(f"written {RESULTS.relative_to(ROOT)}; logs in {procs.logs}")
    if not args.keep:
        shutil.rmtree(work / "redis", ignore_errors=True)
    bad = (result["lost"] or result["duplicated_connectors"] or result["ended_more_than_once"]
           or result["runs_beyond_starts"])
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=5, help="worker SIGKILLs (at least 5 is the point)")
    parser.add_argument("--redis-restarts", type=int, default=1)
    parser.add_argument("--redis-down", type=float, default=1.0, help="seconds Redis stays down per restart")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=32, help="submissions in flight at once")
    parser.add_argument("--pool", choices=("threads", "solo"), default="threads",
                        help="the workers' Celery pool: threads (as authq up runs them) or solo (one job at a time)")
    parser.add_argument("--worker-concurrency", type=int, default=DEFAULT_WORKER_CONCURRENCY,
                        help="jobs each worker runs at once with --pool threads (AUTHQ_WORKER_CONCURRENCY's default)")
    parser.add_argument("--provider-delay", type=float, default=0.05, help="seconds the provider takes per check")
    parser.add_argument("--deadline", type=float, default=540, help="seconds the run may take, all in")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--local-every", type=int, default=0,
                        help="every Nth job uses a token implementation with no check (no provider call)")
    parser.add_argument("--keep", action="store_true", help="keep Redis's files in the work dir")
    args = parser.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
