"""An open-loop, fixed-rate HTTP/1.1 load generator: ``python -m bench.fixed_rate --url URL --rate R``.

Request *i* is due at ``start + i / rate``, whatever happened to the requests before it, and its
latency is measured from that due time, not from when it was sent: a server that stalls is
charged for every request that should have been sent meanwhile (no coordinated omission, as
wrk2 and HdrHistogram's corrected mode do it). A due request goes out on an idle keep-alive
connection; when all ``--connections`` are busy it waits in line, its clock already running.

Plain asyncio (no uvloop) and a minimal HTTP/1.1 client on ``asyncio.Protocol`` (a prebuilt
request; answers framed by ``Content-Length`` or chunked encoding), in a process of its own, so
the generator costs tens of microseconds a request and is not the bottleneck at a few thousand
requests a second. It prints one JSON line: the latencies' percentiles (ms), what was sent and
answered, non-2xx answers, errors, and ``late``: requests that left more than 1 ms after they were
due (all connections busy, or the generator's own loop behind: the run's honesty check).

Debian has wrk but not wrk2 (wrk's Lua ``delay()`` keeps it closed-loop), hence this tool. Its
twin in C (``bench/fixed_rate.c``, built with the system's ``cc`` by ``build_c``) does the same at a
fraction of the CPU, which matters on a small machine where the generator shares the cores with
what it measures; ``command`` picks the C one when it could be built.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LATE_SECONDS = 0.001


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest rank, as bench.report's."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)   # seconds, of recorded (post-warm-up) requests
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    late: int = 0
    sent: int = 0


class _Answer:
    """Incremental framing of one HTTP/1.1 answer (``Content-Length`` or chunked, no trailers):
    ``feed`` returns True once the whole answer has arrived."""

    def __init__(self) -> None:
        self.buffer = b""
        self.status = 0
        self.header_done = False
        self.left = 0           # Content-Length: body bytes still to come
        self.chunked = False

    def feed(self, data: bytes) -> bool:
        self.buffer += data
        if not self.header_done:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return False
            lines = self.buffer[:end].split(b"\r\n")
            self.buffer = self.buffer[end + 4:]
            self.header_done = True
            self.status = int(lines[0].split(b" ", 2)[1])
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    self.left = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    self.chunked = True
        if not self.chunked:
            self.left -= len(self.buffer)
            self.buffer = b""
            return self.left <= 0
        while True:  # chunk after chunk: a size line, that many bytes, CRLF; the last one's size is 0
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                return False
            size = int(self.buffer[:line_end].split(b";")[0], 16)
            if len(self.buffer) < line_end + 2 + size + 2:
                return False
            self.buffer = self.buffer[line_end + 2 + size + 2:]
            if size == 0:
                return True


class _Connection(asyncio.Protocol):
    def __init__(self, generator: FixedRate) -> None:
        self.generator = generator
        self.transport: asyncio.Transport | None = None
        self.due: float | None = None        # the due time of the request in flight
        self.answer = _Answer()
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, due: float) -> None:
        assert self.transport is not None
        self.due = due
        self.answer = _Answer()
        self.transport.write(self.generator.request)

    def data_received(self, data: bytes) -> None:
        if not self.answer.feed(data):
            return
        due, self.due = self.due, None
        if due is not None:
            self.generator.answered(self, due, self.answer.status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.due is not None:
            self.generator.failed(self.due)
        self.due = None
        self.generator.gone(self)
        if not self.lost.done():
            self.lost.set_result(None)


class FixedRate:
    def __init__(self, url: str, rate: float, seconds: float, warmup: float, connections: int,
                 headers: dict[str, str], method: str = "GET") -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", *(f"{k}: {v}" for k, v in headers.items())]
        if method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0")
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.rate, self.seconds, self.warmup, self.connections = rate, seconds, warmup, connections
        self.idle: deque[_Connection] = deque()
        self.waiting: deque[float] = deque()   # due times of requests no connection was free for
        self.tally = Tally()
        self.record_from = 0.0
        self.outstanding = 0
        self.all_open: list[_Connection] = []

    def _record(self, due: float) -> bool:
        return due >= self.record_from

    def answered(self, connection: _Connection, due: float, status: int) -> None:
        loop_now = asyncio.get_running_loop().time()
        self.outstanding -= 1
        if self._record(due):
            self.tally.latencies.append(loop_now - due)
            self.tally.statuses[status] = self.tally.statuses.get(status, 0) + 1
        self._next(connection, loop_now)

    def failed(self, due: float) -> None:
        self.outstanding -= 1
        if self._record(due):
            self.tally.errors += 1

    def gone(self, connection: _Connection) -> None:
        if connection in self.idle:
            self.idle.remove(connection)

    def _next(self, connection: _Connection, now: float) -> None:
        if self.waiting:
            due = self.waiting.popleft()
            if self._record(due) and now - due > LATE_SECONDS:
                self.tally.late += 1
            connection.send(due)
        else:
            self.idle.append(connection)

    def _dispatch(self, due: float, now: float) -> None:
        self.outstanding += 1
        if self._record(due):
            self.tally.sent += 1
        if self.idle and not self.waiting:
            if self._record(due) and now - due > LATE_SECONDS:
                self.tally.late += 1
            self.idle.popleft().send(due)
        else:
            self.waiting.append(due)

    async def run(self) -> Tally:
        loop = asyncio.get_running_loop()
        for _ in range(self.connections):
            _, connection = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
            self.all_open.append(connection)
            self.idle.append(connection)
        start = loop.time() + 0.05
        self.record_from = start + self.warmup
        total = int((self.warmup + self.seconds) * self.rate)
        interval = 1.0 / self.rate
        i = 0
        while i < total:
            now = loop.time()
            while i < total and start + i * interval <= now:  # every request due by now, in order
                self._dispatch(start + i * interval, now)
                i += 1
            if i < total:
                await asyncio.sleep(max(0.0, start + i * interval - loop.time()))
        deadline = loop.time() + 10.0
        while self.outstanding > 0 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        self.tally.errors += sum(1 for d in self.waiting if self._record(d))  # never sent in time: errors
        for connection in self.all_open:
            if connection.transport is not None:
                connection.transport.close()
        return self.tally


def summarise(tally: Tally, rate: float, seconds: float) -> dict[str, Any]:
    values = sorted(tally.latencies)

    def ms(pct: float) -> float | None:
        found = percentile(values, pct)
        return None if found is None else round(found * 1000, 3)

    non_2xx = sum(n for status, n in tally.statuses.items() if not 200 <= status < 300)
    return {"rate": rate, "seconds": seconds, "sent": tally.sent, "answered": len(values), "non_2xx": non_2xx,
            "errors": tally.errors, "late": tally.late, "p50_ms": ms(50), "p90_ms": ms(90), "p99_ms": ms(99),
            "p999_ms": ms(99.9), "max_ms": ms(100), "generator": "python"}


def build_c(out_dir: Path) -> Path | None:
    """``bench/fixed_rate.c`` compiled into ``out_dir``, or None without a C compiler (or if it fails)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    binary = out_dir / "fixed_rate"
    done = subprocess.run([compiler, "-O2", "-o", str(binary), str(Path(__file__).with_name("fixed_rate.c"))],
                          capture_output=True, text=True, timeout=120)
    return binary if done.returncode == 0 else None


def command(url: str, rate: float, seconds: float, connections: int, headers: dict[str, str],
            binary: Path | None, method: str = "GET", warmup: float = 1.0) -> list[str]:
    """The generator's command line: the C one when built (``binary``), else this module."""
    header_lines = [f"{name}: {value}" for name, value in headers.items()]
    if binary is not None:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        return [str(binary), parts.hostname or "127.0.0.1", str(parts.port or 80), target, f"{rate:.1f}", str(seconds),
                str(warmup), str(connections), method, *header_lines]
    argv = [sys.executable, "-m", "bench.fixed_rate", "--url", url, "--rate", f"{rate:.1f}", "--seconds", str(seconds),
            "--warmup", str(warmup), "--connections", str(connections), "--method", method]
    for line in header_lines:
        argv += ["--header", line]
    return argv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fixed_rate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="recorded seconds (after the warm-up)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds sent at the rate but not recorded")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    args = parser.parse_args(argv)
    headers = dict(h.split(": ", 1) for h in args.header)
    generator = FixedRate(args.url, args.rate, args.seconds, args.warmup, args.connections, headers, args.method)
    tally = asyncio.run(generator.run())
    print("FIXEDRATE " + json.dumps(summarise(tally, args.rate, args.seconds)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
