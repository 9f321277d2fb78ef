"""Capacity model of authq's Redis, measured on the real code: ``.venv/bin/python -m bench.capacity``.

Starts, all its own and on loopback: a ``redis-server`` (``authq/redis_server.py``, append-only
off) and an OAuth 2 token endpoint. Then it drives authq's own code paths, not imitations:

- accepting authorise jobs as the API does (``validate_authorise``, the sealed request, the job
  record and the inline Celery message in ``ApiStore.create_job``'s one script);
- running them as a worker does (``run_job``: lease, start count, the token request through the
  gate and the rate limiter, the connector and the job's end in one batch);
- more connectors written by ``Store.save_connector`` (copies of a real one, spread over tenants);
- the refresh scan (``scan_due_refreshes``), the refresh jobs it queues (``run_job`` again, from
  the store) and the orphan sweep (``worker.sweeper.sweep``).

Memory is read with ``MEMORY USAGE key SAMPLES 0`` and ``INFO memory``; cost with ``INFO
commandstats`` (calls and Redis CPU time, after ``CONFIG RESETSTAT``) and the wall clock of the
calling process. Prints the figures, extrapolates to 10^6 and 10^7 connectors, and writes
``bench/capacity-results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis
from pydantic import SecretStr
from redis.asyncio import Redis as AsyncRedis

from api.store import ApiStore
from authq.redis_server import free_port, start_redis
from tasks.jobs.queue_port import JobCopy
from tasks.jobs.runner import run_job
from tasks.jobs.scheduling import PAGE, PAGES, scan_due_refreshes
from tasks.model.ids import unique_id
from tasks.model.records import Connector, Job, new_id, utcnow
from tasks.provider.limiter import RateLimiter
from tasks.security.sealing import generate_key
from tasks.settings import Settings
from tasks.storage import schema
from tasks.storage.leases import RunLeases
from tasks.validation.submission import validate_authorise
from worker.bootstrap import build_context
from worker.celery_app import blocking_publisher, make_celery
from worker.inline_queue import RedisInlineQueue
from worker.sweeper import sweep
from worker.wire import QUEUES, UNACKED, priority_lists

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "capacity-results.json"
CATALOG = """implementations:
  - id: capacity-oauth2
    system: Capacity
    type: oauth2_client_credentials
    token_url: "{{base_url}}/token"
    scopes: [read, write]
    variables:
      - {key: base_url, label: API URL, required: true}
      - {key: client_id, label: Client ID, required: true}
      - {key: client_secret, label: Client secret, required: true}
"""


def _queue_lists() -> list[str]:
    return [name for queue in QUEUES for name in priority_lists(queue)]


def say(message: str) -> None:
    print(message, flush=True)


class TokenEndpoint:
    """Answers every token request (client credentials, refresh) with fresh tokens of a set size."""

    def __init__(self, access_bytes: int, refresh_bytes: int, lifetime: int) -> None:
        def answer(handler: BaseHTTPRequestHandler) -> None:
            handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
            body = json.dumps({"access_token": secrets.token_urlsafe(access_bytes)[:access_bytes],
                               "refresh_token": secrets.token_urlsafe(refresh_bytes)[:refresh_bytes],
                               "token_type": "Bearer", "expires_in": lifetime, "scope": "read write"}).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)

        handler = type("Handler", (BaseHTTPRequestHandler,), {"do_POST": answer, "log_message": lambda *_: None})
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def usage(client: redis.Redis, key: str) -> int:
    return int(client.memory_usage(key, samples=0) or 0)


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def job_memory(client: redis.Redis, tenant: str, job_id: str) -> dict[str, int]:
    """Bytes of a job's keys: its record, its sealed request and its start count."""
    return {"job_record": usage(client, schema.job(tenant, job_id)),
            "sealed_request": usage(client, schema.submission(tenant, job_id)),
            "start_count": usage(client, schema.job_starts(tenant, job_id))}


def measured(client: redis.Redis, action: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Run ``action``; its result, and the Redis commands, Redis CPU µs and wall seconds it cost."""
    client.config_resetstat()
    started = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    stats = {name: s for name, s in client.info("commandstats").items()
             if not name.startswith(("cmdstat_info", "cmdstat_config"))}
    return result, {"commands": sum(s["calls"] for s in stats.values()),
                    "redis_cpu_us": sum(s["usec"] for s in stats.values()), "seconds": seconds}


def per(cost: dict[str, float], count: int) -> dict[str, float]:
    return {name: value / max(1, count) for name, value in cost.items()}


class Lab:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.server = start_redis(workdir / "redis", secrets.token_urlsafe(16), appendonly=False)
        self.client = self.server.client()
        catalog = workdir / "catalog.yaml"
        catalog.write_text(CATALOG, encoding="utf-8")
        self.settings = Settings(redis_url=self.server.url, secret_key=SecretStr(generate_key()), catalog=catalog,
                                 allow_private_networks=True, _env_file=None)  # type: ignore[call-arg]
        self.ctx = build_context(self.settings)
        self.app = make_celery(self.settings)
        self.inline = RedisInlineQueue()
        self.publish = blocking_publisher(self.app)
        self.leases = RunLeases(self.ctx.store.redis)
        self.endpoint = TokenEndpoint(args.access_token_bytes, args.refresh_token_bytes, args.token_lifetime)
        self.tenants = [f"tenant{i:03d}" for i in range(args.tenants)]
        self.out: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items() if k != "json"}}

    def body(self, i: int) -> dict[str, Any]:
        data = {"name": f"Capacity connector {i}", "authentication_implementation_id": "capacity-oauth2",
                "timezone": "Europe/London", "date_format": "Y-m-d", "rate_limit_unit": "second",
                "rate_limit_duration": 10,
                "variables": [{"key": "base_url", "value": self.endpoint.url},
                              {"key": "client_id", "value": f"client-{secrets.token_hex(8)}"},
                              {"key": "client_secret", "value": secrets.token_urlsafe(32)}]}
        return validate_authorise(data, self.ctx.catalog, self.ctx.box).model_dump(exclude_unset=True)

    async def _accept(self, count: int) -> list[tuple[str, str, str, str]]:
        """As ``api/submit.accept`` does it: the job, its sealed request and its message in one script."""
        client = AsyncRedis.from_url(self.server.url)
        store, accepted = ApiStore(client), []
        for i in range(count):
            tenant = self.tenants[i % len(self.tenants)]
            job = Job(id=new_id("job"), tenant=tenant, type="authorise", connector_id=new_id("con"),
                      created_at=utcnow())
            sealed, job_json = self.ctx.box.seal_json(self.body(i)), job.stored_json()
            message = self.inline.inline_message(tenant, job.id, "authorise", unique_id(), JobCopy(job_json, sealed))
            assert await store.create_job(job, job_json, sealed, message, self.settings.max_queued_per_tenant)
            accepted.append((tenant, job.id, job_json, sealed))
        await client.aclose()
        return accepted

    def jobs_and_connectors(self) -> Connector:
        n, c = self.args.jobs, self.client
        before = used_memory(c)
        accepted = asyncio.run(self._accept(n))
        queued_memory = used_memory(c) - before
        tenant, job_id = accepted[0][0], accepted[0][1]
        lists = [name for name in _queue_lists() if c.llen(name)]
        messages = sum(c.llen(name) for name in lists)
        self.out["accepted_job"] = {
            **job_memory(c, tenant, job_id),
            "active_set_member": sum(usage(c, schema.active_jobs(t)) for t in self.tenants) / n,
            "inline_message": sum(usage(c, name) for name in lists) / messages,
            "used_memory_per_job": queued_memory / n}

        def run_all() -> None:
            for tenant, job_id, job_json, sealed in accepted:
                run_job(self.ctx, tenant, job_id, self.leases, JobCopy(job_json, sealed))

        before = used_memory(c)
        c.delete(*lists)  # what the workers' consumption of those messages would have removed
        _, cost = measured(c, run_all)
        ended = c.get(schema.job(tenant, job_id))
        assert ended is not None and json.loads(ended)["status"] == "succeeded", ended
        connector = self.ctx.store.connector(tenant, json.loads(ended)["connector_id"])
        assert connector is not None and connector.status == "authorised"
        self.out["authorise_job_run"] = per(cost, n)
        self.out["finished_authorise_job"] = job_memory(c, tenant, job_id)
        self.out["connector"] = {
            "record": usage(c, schema.connector(tenant, connector.id)),
            "tenant_index_member": sum(usage(c, schema.connectors(t)) for t in self.tenants) / n,
            "refresh_schedule_member": (sum(usage(c, schema.refresh_schedule(t)) for t in self.tenants)
                                        + usage(c, schema.REFRESH_TENANTS))
                                       / sum(c.zcard(schema.refresh_schedule(t)) for t in self.tenants),
            "used_memory_per_job_and_connector_after_run": (used_memory(c) - before) / n}
        return connector

    def fill(self, model: Connector, count: int, expires_in: timedelta) -> list[Connector]:
        """``count`` more connectors, each as a worker writes one (record, tenant index, refresh schedule)."""
        made, expires = [], utcnow() + expires_in
        for i in range(count):
            tenant = self.tenants[i % len(self.tenants)]
            connector = model.model_copy(update={
                "id": new_id("con"), "tenant": tenant, "name": f"Capacity connector {i}",
                "credentials": model.credentials.model_copy(update={"expires_at": expires})})
            self.ctx.store.save_connector(connector)
            made.append(connector)
        return made

    def connectors_at_scale(self, model: Connector) -> list[Connector]:
        c, n = self.client, self.args.connectors
        before = used_memory(c)
        made = self.fill(model, n, timedelta(days=1))
        self.out["connector"]["used_memory_per_connector"] = (used_memory(c) - before) / n
        self.out["keys_after_fill"] = c.dbsize()
        return made

    def rate_limit_log(self) -> None:
        limiter, c, out = RateLimiter(self.ctx.store.redis), self.client, {}
        for grants in (1, 10, 100, 1000):
            key = schema.rate_log("capacity", new_id("con"))
            for _ in range(grants):
                assert limiter.try_acquire(key, grants, 3600.0) == 0.0
            out[str(grants)] = usage(c, key) / grants
        self.out["rate_limit_log_entry"] = out

    def refresh_scan(self, made: list[Connector]) -> None:
        c, args = self.client, self.args
        window, period = self.settings.refresh_window_seconds, self.settings.refresh_scan_seconds

        def one_pass() -> int:
            c.delete(schema.REFRESH_SCAN_LOCK)  # a new period: the lock of the last pass has lapsed
            return scan_due_refreshes(self.ctx, window, period, self.publish)

        queued, idle = measured(c, one_pass)
        assert queued == 0
        due = made[: args.due]
        soon = utcnow() + timedelta(seconds=60)
        for connector in due:  # their tokens now expire within the refresh window
            self.ctx.store.save_connector(connector.model_copy(update={
                "credentials": connector.credentials.model_copy(update={"expires_at": soon})}))
        first, busy = measured(c, one_pass)
        second, _ = measured(c, one_pass)   # the due connectors beyond one pass's budget (PAGE * PAGES)
        third, _ = measured(c, one_pass)    # none: those queued are backing off until their refresh ends
        lists = [name for name in _queue_lists() if c.llen(name)]
        message = sum(usage(c, name) for name in lists) / max(1, sum(c.llen(name) for name in lists))
        waiting = [(t, m.decode() if isinstance(m, bytes) else m) for t in self.tenants
                   for m in c.smembers(schema.active_jobs(t))]

        def run_refreshes() -> None:
            for tenant, job_id in waiting:
                job = run_job(self.ctx, tenant, job_id, self.leases)
                assert job is not None and job.status == "succeeded", job

        c.delete(*lists)
        _, refresh_cost = measured(c, run_refreshes)
        fourth, _ = measured(c, one_pass)   # none: refreshed, their new tokens are not due
        tenant, job_id = waiting[0]
        self.out["refresh"] = {
            "pass_nothing_due": idle, "due": len(due), "pass_1_queued": first, "pass_1": busy,
            "pass_1_per_queued_connector": per(busy, first),
            "pass_budget": PAGE * PAGES, "pass_2_queued": second, "pass_3_queued_before_those_ran": third,
            "pass_4_queued_after_those_ran": fourth,
            "published_message": message, "refresh_job_run": per(refresh_cost, len(waiting)),
            "finished_refresh_job": job_memory(c, tenant, job_id)}

    def orphan_sweep(self) -> None:
        c = self.client
        pending = sum(c.scard(schema.active_jobs(t)) for t in self.tenants)
        # As a sweep sees them a minute later: old enough to be looked for in the broker.
        _, with_jobs = measured(c, lambda: sweep(c, lambda *_: None, now=time.time() + 60))
        for t in self.tenants:  # the same keyspace with no unfinished job
            c.delete(schema.active_jobs(t))
        c.delete(*_queue_lists(), UNACKED)
        _, without = measured(c, lambda: sweep(c, lambda *_: None))
        self.out["sweep"] = {"keys": c.dbsize(), "unfinished_jobs": pending, "pass_with_unfinished_jobs": with_jobs,
                             "pass_no_unfinished_job": without,
                             "per_key_no_unfinished_job": per(without, c.dbsize())}

    def stop(self) -> None:
        self.endpoint.server.shutdown()
        self.client.close()
        self.ctx.store.redis.close()
        self.app.close()
        self.server.stop()


def extrapolate(out: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Memory and Redis CPU at 10^6 and 10^7 connectors, linear in the measured per-item figures.

    Each connector's token is refreshed every ``--token-lifetime`` seconds, and each refresh
    job is kept ``--job-ttl`` seconds: that many finished refresh jobs (3 keys each) per connector.
    """
    conn = out["connector"]["used_memory_per_connector"]
    job = sum(out["refresh"]["finished_refresh_job"].values())
    kept = args.job_ttl / args.token_lifetime
    key_cpu = out["sweep"]["per_key_no_unfinished_job"]["redis_cpu_us"] / 1e6
    refresh_cpu = (out["refresh"]["pass_1_per_queued_connector"]["redis_cpu_us"]
                   + out["refresh"]["refresh_job_run"]["redis_cpu_us"]) / 1e6
    period = Settings.model_fields["refresh_scan_seconds"].default
    rows = {}
    for n in (10**6, 10**7):
        rows[f"{n:.0e}"] = {
            "connectors_gib": n * conn / 2**30,
            "kept_refresh_jobs_gib": n * kept * job / 2**30,
            "sweep_pass_redis_cpu_s_connectors_only": n * key_cpu,
            "sweep_pass_redis_cpu_s_with_kept_jobs": n * (1 + 3 * kept) * key_cpu,
            "refreshes_needed_per_s": n / args.token_lifetime,
            "refresh_redis_cpu_share": n / args.token_lifetime * refresh_cpu,
            "refreshes_the_scan_can_queue_per_s": out["refresh"]["pass_1_queued"] / period}
    return {"refresh_jobs_kept_per_connector": kept, "sweep_period_s": 30.0, "rows": rows}


def report(out: dict[str, Any]) -> None:
    """The headline figures (every measured figure is in the JSON file)."""
    acc, fin, con, ref = out["accepted_job"], out["finished_authorise_job"], out["connector"], out["refresh"]
    rate, sweep_key = out["rate_limit_log_entry"], out["sweep"]["per_key_no_unfinished_job"]

    def cost(c: dict[str, float]) -> str:
        return f"{c['commands']:.1f} commands, {c['redis_cpu_us']:.0f} µs of Redis CPU"

    rows = [
        ("connector (record, tenant index, refresh schedule)", f"{con['used_memory_per_connector']:.0f} B"),
        ("queued job: record + sealed request", f"{acc['job_record'] + acc['sealed_request']} B"),
        ("queued message: inline with the job's copy / published", f"{acc['inline_message']:.0f} / "
         f"{ref['published_message']:.0f} B"),
        ("finished job, authorise / refresh (+ request, start count)", f"{sum(fin.values())} / "
         f"{sum(ref['finished_refresh_job'].values())} B"),
        ("rate-limit log entry, 10 / 1000 in the window", f"{rate['10']:.0f} / {rate['1000']:.0f} B"),
        ("authorise job run", cost(out["authorise_job_run"])),
        ("refresh job run", cost(ref["refresh_job_run"])),
        ("refresh scan pass, nothing due", cost(ref["pass_nothing_due"])),
        ("refresh scan pass, per connector queued", cost(ref["pass_1_per_queued_connector"])),
        (f"refresh scan passes, {ref['due']} due: queued", f"{ref['pass_1_queued']}, {ref['pass_2_queued']}, "
         f"{ref['pass_3_queued_before_those_ran']}, then {ref['pass_4_queued_after_those_ran']} once they ran"),
        ("orphan sweep pass, per key in Redis", f"{sweep_key['redis_cpu_us']:.2f} µs of Redis CPU"),
    ]
    for label, value in rows:
        say(f"  {label:<62} {value}")
    ext = out["extrapolation"]
    say(f"  extrapolated, {ext['refresh_jobs_kept_per_connector']:.0f} refresh jobs kept per connector:")
    for n, row in ext["rows"].items():
        sweep, kept = row["sweep_pass_redis_cpu_s_connectors_only"], row["sweep_pass_redis_cpu_s_with_kept_jobs"]
        say(f"    {n} connectors: {row['connectors_gib']:.1f} GiB of connectors + "
            f"{row['kept_refresh_jobs_gib']:.0f} GiB of kept refresh jobs; a sweep pass takes {sweep:.1f} s "
            f"of Redis CPU ({kept:.0f} s with the kept jobs' keys); {row['refreshes_needed_per_s']:.0f} "
            f"refreshes/s needed ({row['refresh_redis_cpu_share']:.0%} of Redis's CPU), the scan queues at most "
            f"{row['refreshes_the_scan_can_queue_per_s']:.1f}/s")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=2000, help="authorise jobs accepted and run (default 2000)")
    p.add_argument("--connectors", type=int, default=50_000, help="more connectors written (default 50000)")
    p.add_argument("--tenants", type=int, default=20, help="tenants they are spread over (default 20)")
    p.add_argument("--due", type=int, default=3000, help="connectors made due for refresh (default 3000)")
    p.add_argument("--access-token-bytes", type=int, default=512)
    p.add_argument("--refresh-token-bytes", type=int, default=64)
    p.add_argument("--token-lifetime", type=int, default=3600, help="seconds (default 3600)")
    p.add_argument("--job-ttl", type=int, default=Settings.model_fields["job_ttl_seconds"].default,
                   help="seconds a finished job is kept, for the extrapolation (default AUTHQ_JOB_TTL_SECONDS's)")
    p.add_argument("--json", type=Path, default=RESULTS, help=f"where to write the figures (default {RESULTS})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="authq-capacity-") as workdir:
        lab = Lab(args, Path(workdir))
        try:
            say(f"capacity: {args.jobs} authorise jobs through accept and run…")
            model = lab.jobs_and_connectors()
            say(f"capacity: {args.connectors} more connectors…")
            made = lab.connectors_at_scale(model)
            lab.rate_limit_log()
            say("capacity: refresh scan passes and refresh jobs…")
            lab.refresh_scan(made)
            say("capacity: orphan sweep passes…")
            lab.orphan_sweep()
            lab.out["redis_version"] = lab.client.info("server")["redis_version"]
        finally:
            lab.stop()
    lab.out["extrapolation"] = extrapolate(lab.out, args)
    args.json.write_text(json.dumps(lab.out, indent=2) + "\n", encoding="utf-8")
    report(lab.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
