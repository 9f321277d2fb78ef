"""The proxy's added latency, measured: ``.venv/bin/python -m bench.use_latency [--rounds 3] [--seconds 10]``
(or ``python -m bench --only use-latency``).

The figure: the p99 latency the proxy adds over a bare aiohttp forwarder, both at half the
forwarder's maximum throughput, in the same run, one API process (target: at most 3 ms).

The same processes as ``bench/use.py`` (a redis-server of its own, the upstream, one ``authq api``,
the reference forwarder of ``bench/use_reference.py``), then:

1. the forwarder's maximum throughput, closed loop (wrk, 32 connections);
2. rounds at half that rate, open loop (``bench/fixed_rate.c``, built here with the system's C
   compiler, or ``bench/fixed_rate.py`` without one: latency from each request's due time), the
   forwarder and the proxy interleaved (ABBA), each round ``--seconds`` long after a warm-up second;
3. the medians over rounds of each side's p50 and p99, the added p99 (the proxy's median p99 less
   the forwarder's), and the median of the rounds' paired differences.

``--profile DIR`` records the API with py-spy during one more proxy round (a flame graph and a
raw stack file). Written to ``bench/use-latency-results.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.fixed_rate import build_c, command
from bench.procs import ROOT
from bench.use import Run, wrk

TARGET_ADDED_P99_MS = 3.0


def fixed_rate(url: str, rate: float, seconds: float, connections: int, headers: dict[str, str],
               binary: Path | None) -> dict[str, Any]:
    argv = command(url, rate, seconds, connections, headers, binary)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("FIXEDRATE ")), None)
    if line is None:
        raise SystemExit(f"bench.use_latency: no result from the generator:\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(line[len("FIXEDRATE "):])
    if result["non_2xx"] or result["errors"]:
        print(f"   warning: {result['non_2xx']} non-2xx answers, {result['errors']} errors", flush=True)
    return result


def py_spy(pid: int, seconds: float, out: Path) -> dict[str, str]:
    """py-spy on the API for ``seconds``: a flame graph and the raw collapsed stacks (idle frames out)."""
    files = {"flamegraph": str(out / "proxy-flame.svg"), "raw": str(out / "proxy-stacks.txt")}
    for fmt, path in (("flamegraph", files["flamegraph"]), ("raw", files["raw"])):
        subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
                          "--duration", str(int(seconds)), "--rate", "250",
                          "--format", fmt, "--output", path, "--nonblocking"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return files


class LatencyRun(Run):
    def latency(self) -> dict[str, Any]:
        args = self.args
        up_port, api_port, ref_port = 18521, 18522, 18523
        py = sys.executable
        self.start("upstream", [py, "-m", "bench.use_reference", "--upstream", "--port", str(up_port)], up_port)
        upstream = f"http://127.0.0.1:{up_port}"
        api = self.start("authq-api", [py, "-m", "authq", "api", "--host", "127.0.0.1", "--port", str(api_port)],
                         api_port)
        self.start("reference", [py, "-m", "bench.use_reference", "--port", str(ref_port), "--upstream-url",
                                 upstream], ref_port)
        connector_id = self.connector(upstream)
        binary = None if args.python_generator else build_c(self.out)
        auth = {"Authorization": f"Bearer {self.key}"}
        ours = f"http://127.0.0.1:{api_port}/api/v1/connectors/{connector_id}/proxy/x"
        reference = f"http://127.0.0.1:{ref_port}/forward/x"

        print(f"== the proxy's added latency: forwarder's max throughput ({args.throughput_seconds}s, wrk 32 "
              "connections)", flush=True)
        wrk(reference, args.throughput_seconds, self.out, "warm-forwarder")  # connections and caches warm
        proxy_max = wrk(ours, args.throughput_seconds, self.out, "max-proxy", headers=auth)["rate"]
        max_rate = wrk(reference, args.throughput_seconds, self.out, "max-forwarder")["rate"]
        rate = args.rate or max_rate * args.fraction
        if args.rate_cap:
            rate = min(rate, args.rate_cap)
        print(f"   proxy max {proxy_max:.0f}/s; forwarder max {max_rate:.0f}/s -> rounds at {rate:.0f}/s, "
              f"{args.rounds} rounds x {args.seconds}s, {args.connections} connections, open loop "
              f"({'C' if binary else 'Python'} generator)", flush=True)
        sides: dict[str, list[dict[str, Any]]] = {"proxy": [], "forwarder": []}
        for i in range(args.rounds):
            order = [("forwarder", reference, {}), ("proxy", ours, auth)]
            if i % 2:
                order.reverse()
            for name, url, headers in order:
                result = fixed_rate(url, rate, args.seconds, args.connections, headers, binary)
                sides[name].append(result)
                print(f"   round {i + 1} {name:9s} p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  "
                      f"p99.9 {result['p999_ms']:6.2f} ms  (sent {result['sent']}, late {result['late']})",
                      flush=True)
        figure = self.figure(sides, max_rate, rate)
        figure["generator"] = "c" if binary else "python"
        figure["fraction"] = rate / max_rate
        figure["proxy_max_rate"] = proxy_max  # (measured once, right after a warm-up of the forwarder)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            figure["profile"] = py_spy(api.pid, args.seconds, args.profile)
            fixed_rate(ours, rate, args.seconds, args.connections, auth, binary)
            time.sleep(2)  # py-spy writes its files after its duration
        return figure

    @staticmethod
    def figure(sides: dict[str, list[dict[str, Any]]], max_rate: float, rate: float) -> dict[str, Any]:
        def median(name: str, key: str) -> float:
            return float(statistics.median(r[key] for r in sides[name]))

        paired = [p["p99_ms"] - f["p99_ms"] for p, f in zip(sides["proxy"], sides["forwarder"], strict=True)]
        figure: dict[str, Any] = {
            "forwarder_max_rate": max_rate, "rate": rate,
            "proxy": {"p50_ms": median("proxy", "p50_ms"), "p99_ms": median("proxy", "p99_ms"),
                      "p999_ms": median("proxy", "p999_ms")},
            "forwarder": {"p50_ms": median("forwarder", "p50_ms"), "p99_ms": median("forwarder", "p99_ms"),
                          "p999_ms": median("forwarder", "p999_ms")},
            "rounds": sides, "paired_added_p99_ms": paired,
        }
        figure["added_p50_ms"] = figure["proxy"]["p50_ms"] - figure["forwarder"]["p50_ms"]
        figure["added_p99_ms"] = figure["proxy"]["p99_ms"] - figure["forwarder"]["p99_ms"]
        figure["median_paired_added_p99_ms"] = float(statistics.median(paired))
        figure["target_added_p99_ms"] = TARGET_ADDED_P99_MS
        figure["met"] = figure["added_p99_ms"] <= TARGET_ADDED_P99_MS
        print(f"   median p50: proxy {figure['proxy']['p50_ms']:.2f} ms, forwarder "
              f"{figure['forwarder']['p50_ms']:.2f} ms (added {figure['added_p50_ms']:.2f} ms)", flush=True)
        print(f"   median p99: proxy {figure['proxy']['p99_ms']:.2f} ms, forwarder "
              f"{figure['forwarder']['p99_ms']:.2f} ms: added {figure['added_p99_ms']:.2f} ms (paired rounds' median "
              f"{figure['median_paired_added_p99_ms']:.2f} ms; target <= {TARGET_ADDED_P99_MS:g} ms: "
              f"{'MET' if figure['met'] else 'MISSED'})", flush=True)
        return figure


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bench.use_latency", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--rounds", type=int, default=3)
    top.add_argument("--seconds", type=float, default=10.0, help="recorded seconds of each round")
    top.add_argument("--throughput-seconds", type=int, default=5, help="each wrk run of the throughput step")
    top.add_argument("--connections", type=int, default=64, help="the generator's keep-alive connections")
    top.add_argument("--rate", type=float, default=0.0, help="the rounds' rate (default: --fraction of the "
                                                             "forwarder's max)")
    top.add_argument("--fraction", type=float, default=0.5, help="of the forwarder's max throughput (default 0.5)")
    top.add_argument("--rate-cap", type=float, default=0.0, help="at most this rate (a smoke run)")
    top.add_argument("--python-generator", action="store_true",
                     help="use bench/fixed_rate.py even when bench/fixed_rate.c can be built")
    top.add_argument("--profile", type=Path, default=None, help="py-spy the API during one more proxy round, here")
    top.add_argument("--out", type=Path, default=ROOT / "bench" / "use-latency-results.json")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    run = LatencyRun(args)
    try:
        figure = run.latency()
    finally:
        run.stop()
    args.out.write_text(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rounds": args.rounds,
                                    "seconds": args.seconds, "connections": args.connections, "figure": figure},
                                   indent=2) + "\n")
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
