"""Using a connector, measured: ``.venv/bin/python -m bench.use [--rounds 3] [--seconds 5]``.

Everything on loopback and started here: a redis-server of its own, an upstream (an aiohttp
server answering a small JSON, or ``/download/<bytes>``), one ``authq api`` process and a
reference process (``bench/use_reference.py``) of bare aiohttp handlers on the same Redis:

- proxy throughput: ``GET /connectors/{id}/proxy/x`` against a bare forwarder (one shared client
  session, no limiter, no credentials) to the same upstream;
- credentials reads: ``GET /connectors/{id}/credentials`` against a handler doing one Redis GET;
- permits: ``POST /connectors/{id}/permits`` against a handler running one EVALSHA;
- the accept rate (``POST /oauth/authorise``) with two API processes sharing the port against one;
- the API's RSS after a 200 MB download through the proxy.

Ours and the reference alternate round by round (ABBA); the table quotes medians. The connector
is a ``bench-proxied`` token connector (bench/catalog.yaml) with a rate limit far above the load,
so the permit script runs on every request but never holds one back.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from authq.redis_server import start_redis
from bench.procs import ROOT, Proc, rss, spawn, wait_http
from bench.run import WRK_DONE
from tasks.model.records import Connector, Credentials, RateLimit, Variable, new_id, utcnow
from tasks.security.sealing import SecretBox, generate_key
from tasks.storage.store import Store

TENANT = "bench"
CATALOG = ROOT / "bench" / "catalog.yaml"
TARGETS = {"proxy": 0.70, "credentials": 0.75, "permits": 0.70, "api_processes": 1.5}
DOWNLOAD_BYTES = 200 * 1024 * 1024


def wrk(url: str, seconds: int, out: Path, label: str, method: str = "GET", body: str = "",
        headers: dict[str, str] | None = None) -> dict[str, float]:
    lines = [f'wrk.method = "{method}"'] + ([f"wrk.body = [==[{body}]==]"] if body else [])
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items()] + [WRK_DONE]
    script = out / f"{label}.lua"
    script.write_text("\n".join(lines))
    done = subprocess.run(["wrk", "-t1", "-c32", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url],
                          capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCHJSON ")), None)
    if line is None:
        raise SystemExit(f"bench.use: wrk gave no result for {label}:\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line[len("BENCHJSON "):])
    if raw["non_2xx"] or raw["connect"] + raw["read"] + raw["timeout"]:
        print(f"   warning: {label}: {raw['non_2xx']} non-2xx answers, "
              f"{raw['connect'] + raw['read'] + raw['timeout']} errors", flush=True)
    return {"rate": raw["requests"] / (raw["duration_us"] / 1e6), "p99_ms": raw["p99_us"] / 1000}


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(tempfile.mkdtemp(prefix="authq-bench-use-"))
        self.redis = start_redis(self.out / "redis", secrets.token_urlsafe(12), appendonly=False)
        self.key = "bench-use-" + secrets.token_urlsafe(16)
        self.secret_key = generate_key()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHQ_")}
        self.env.update({"AUTHQ_REDIS_URL": self.redis.url, "AUTHQ_SECRET_KEY": self.secret_key,
                         "AUTHQ_API_KEYS": f"{TENANT}:{self.key}:manage+proxy+credentials",
                         "AUTHQ_CATALOG": str(CATALOG), "AUTHQ_ALLOW_PRIVATE_NETWORKS": "true",
                         "AUTHQ_API_RATE_LIMIT": "off", "AUTHQ_LOG_LEVEL": "WARNING",
                         # no worker runs: every accepted job stays queued, far beyond the default cap
                         "AUTHQ_MAX_QUEUED_PER_TENANT": "100000000",
                         "AUTHQ_DATA_DIR": str(self.out / "data"), "PYTHONPATH": str(ROOT)})
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str], port: int) -> Proc:
        proc = spawn(name, argv, self.env, self.out)
        self.procs.append(proc)
        wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        return proc

    def connector(self, upstream: str) -> str:
        box = SecretBox(self.secret_key)
        now = utcnow()
        record = Connector(
            id=new_id("con"), tenant=TENANT, name="bench", authentication_implementation_id="bench-proxied",
            type="token", system="BenchProxied", status="authorised", timezone="UTC", date_format="Y-m-d",
            rate_limit=RateLimit(unit="second", duration=1_000_000),
            variables=[Variable(id=new_id("var"), key="base_url", value=upstream),
                       Variable(id=new_id("var"), key="token", value_sealed=box.seal("tok"), secret=True)],
            credentials=Credentials(token_type="bearer"), credentials_sealed=box.seal_json({"token": "tok"}),
            credential_version=1, authorised_at=now, created_at=now, updated_at=now)
        Store(self.redis.client(), 3600).save_connector(record)
        return record.id

    def pairs(self, ours: str, ref: str, label: str, **wrk_args: Any) -> dict[str, Any]:
        mine: list[float] = []
        theirs: list[float] = []
        for i in range(self.args.rounds):
            order = [(ours, mine), (ref, theirs)] if i % 2 == 0 else [(ref, theirs), (ours, mine)]
            for url, into in order:
                into.append(wrk(url, self.args.seconds, self.out, f"{label}-{len(into)}", **wrk_args)["rate"])
        figure = {"ours": statistics.median(mine), "reference": statistics.median(theirs),
                  "ours_rounds": mine, "reference_rounds": theirs}
        figure["ratio"] = figure["ours"] / figure["reference"]
        print(f"   {label:12s} ours {figure['ours']:8.0f}/s  reference {figure['reference']:8.0f}/s  "
              f"ratio {figure['ratio']:.2f}  (target {TARGETS.get(label, 0):.2f})", flush=True)
        return figure

    def run(self) -> dict[str, Any]:
        api_port, ref_port, up_port, two_port = 18501, 18502, 18503, 18504
        py = sys.executable
        self.start("upstream", [py, "-m", "bench.use_reference", "--upstream", "--port", str(up_port)], up_port)
        upstream = f"http://127.0.0.1:{up_port}"
        api = self.start("authq-api", [py, "-m", "authq", "api", "--host", "127.0.0.1", "--port", str(api_port)],
                         api_port)
        self.start("reference", [py, "-m", "bench.use_reference", "--port", str(ref_port), "--upstream-url",
                                 upstream], ref_port)
        connector_id = self.connector(upstream)
        auth = {"Authorization": f"Bearer {self.key}"}
        base, ref = f"http://127.0.0.1:{api_port}/api/v1/connectors/{connector_id}", f"http://127.0.0.1:{ref_port}"
        results: dict[str, Any] = {}
        print(f"== using a connector: {self.args.rounds} rounds x {self.args.seconds}s, wrk 32 connections", flush=True)
        results["proxy"] = self.pairs(f"{base}/proxy/x", f"{ref}/forward/x", "proxy", headers=auth)
        results["credentials"] = self.pairs(f"{base}/credentials", f"{ref}/get", "credentials", headers=auth)
        results["permits"] = self.pairs(f"{base}/permits", f"{ref}/evalsha", "permits", method="POST",
                                        body="{}", headers={**auth, "Content-Type": "application/json"})
        before = rss(api.pid)
        started = time.monotonic()
        done = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", "-H",
                               f"Authorization: Bearer {self.key}", f"{base}/proxy/download/{DOWNLOAD_BYTES}"],
                              capture_output=True, text=True, timeout=300)
        results["download"] = {"bytes": int(done.stdout or 0), "seconds": time.monotonic() - started,
                               "api_rss_before_mb": before.get("VmRSS"), "api_rss_after_mb": rss(api.pid).get("VmRSS"),
                               "api_peak_mb": rss(api.pid).get("VmHWM")}
        print(f"   download     {results['download']['bytes'] / 1e6:.0f} MB in {results['download']['seconds']:.1f}s; "
              f"API RSS {before.get('VmRSS', 0):.0f} -> {results['download']['api_rss_after_mb']:.0f} MB "
              f"(peak {results['download']['api_peak_mb']:.0f} MB; target <= 120)", flush=True)
        for index in (1, 2):
            self.start(f"authq-api-shared{index}", [py, "-m", "authq", "api", "--host", "127.0.0.1", "--port",
                                                    str(two_port), "--reuse-port"], two_port)
        body = json.dumps({"name": "bench", "authentication_implementation_id": "bench-token", "timezone": "UTC",
                           "date_format": "Y-m-d", "rate_limit_unit": "second", "rate_limit_duration": 2,
                           "variables": [{"key": "token", "value": "tok_bench"}]})
        results["api_processes"] = self.pairs(f"http://127.0.0.1:{two_port}/api/v1/oauth/authorise",
                                              f"http://127.0.0.1:{api_port}/api/v1/oauth/authorise", "api_processes",
                                              method="POST", body=body,
                                              headers={**auth, "Content-Type": "application/json"})
        return results

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.redis.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.use", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "use-results.json")
    args = parser.parse_args(argv)
    run = Run(args)
    try:
        results = run.run()
    finally:
        run.stop()
    args.out.write_text(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rounds": args.rounds,
                                    "seconds": args.seconds, "targets": TARGETS, "figures": results}, indent=2))
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
