"""The processes a bench run starts: authq's API and workers, the reference server, the no-op
workers. Each is a child of the bench, with its log in the run's output directory; each is
stopped by its own handle (SIGTERM, then SIGKILL after a grace period), never by name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import redis

from tasks.storage import schema

ROOT = Path(__file__).resolve().parent.parent
WORKER_QUEUES = "authq.interactive,authq.background"
AUTHQ_WORKERS_KEY = schema.WORKERS       # each authq worker's heartbeat
NOOP_READY_KEY = "bench:noop:ready"      # bench.noop: each no-op worker adds its name when ready


def rss(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, in MB (MiB), from /proc/PID/status."""
    out: dict[str, float] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) / 1024.0
    return out


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 20.0) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self.log.close()


def spawn(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Proc:
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "ab")  # noqa: SIM115 (closed by Proc.stop)
    popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT)
    return Proc(name, popen, log_path, log)


def wait_http(url: str, proc: Proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited at start (code {proc.popen.returncode}):\n{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers: that is all we wait for
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not answer {url} within {timeout:.0f}s:\n{proc.tail()}")


def start_api(env: dict[str, str], port: int, log_dir: Path) -> Proc:
    """One authq API process, as ``authq api`` runs it."""
    proc = spawn("authq-api", [sys.executable, "-m", "authq", "api", "--host", "127.0.0.1", "--port", str(port)],
                 env, log_dir)
    wait_http(f"http://127.0.0.1:{port}/healthz", proc)
    return proc


def start_reference(env: dict[str, str], port: int, log_dir: Path, sizes: dict[str, int], tenant: str) -> Proc:
    """The bare aiohttp reference server (bench/reference.py), in its own process."""
    proc = spawn("reference-server", [
        sys.executable, "-m", "bench.reference", "--port", str(port), "--tenant", tenant,
        "--job-bytes", str(sizes["job"]), "--submission-bytes", str(sizes["submission"]),
        "--message-bytes", str(sizes["message"]),
    ], env, log_dir)
    wait_http(f"http://127.0.0.1:{port}/healthz", proc)
    return proc


def pool_argv(pool: str, concurrency: int | None) -> list[str]:
    return [f"--pool={pool}"] + ([f"--concurrency={concurrency}"] if concurrency and pool != "solo" else [])


def worker_argv(kind: str, index: int, run_id: str, log_level: str, pool: list[str]) -> list[str]:
    """``authq up``'s worker command line (``pool``: by default ``--pool=threads
    --concurrency=8``, as it runs them); the no-op workers differ only in ``-A``, so both kinds
    run with the same pool."""
    app = "worker" if kind == "authq" else "bench.noop"
    return [sys.executable, "-m", "celery", "-A", app, "worker", *pool, f"--loglevel={log_level}",
            "-n", f"bench-{kind}{index}-{run_id}@%h", "-Q", WORKER_QUEUES, "--without-gossip", "--without-mingle"]


class Workers:
    """Two (or N) worker processes of one kind at a time: ``authq`` or ``noop``.

    ``ensure(kind)`` stops the other kind first, so the two never share the broker at once.
    """

    def __init__(self, env: dict[str, str], client: redis.Redis, log_dir: Path, count: int, log_level: str,
                 pool: str = "threads", concurrency: int | None = None) -> None:
        self.env = env
        self.pool = pool_argv(pool, concurrency)
        self.pool_flags = " ".join(self.pool)
        self.client = client
        self.log_dir = log_dir
        self.count = count
        self.log_level = log_level
        self.kind: str | None = None
        self.procs: list[Proc] = []
        self.starts = 0
        # RSS of every worker just before it was stopped: {"authq": [...], "noop": [...]}
        self.rss_at_stop: dict[str, list[dict[str, float]]] = {"authq": [], "noop": []}

    def ensure(self, kind: str, timeout: float = 90.0) -> None:
        if self.kind == kind and all(p.alive() for p in self.procs):
            return
        self.stop()
        ready_key = AUTHQ_WORKERS_KEY if kind == "authq" else NOOP_READY_KEY
        self.client.delete(ready_key)
        self.starts += 1
        run_id = f"{os.getpid()}-{self.starts}"
        self.procs = [spawn(f"{kind}-worker{i}-{self.starts}", worker_argv(kind, i, run_id, self.log_level, self.pool),
                            self.env, self.log_dir) for i in range(1, self.count + 1)]
        self.kind = kind
        deadline = time.monotonic() + timeout
        while self._ready(ready_key) < self.count:
            dead = [p for p in self.procs if not p.alive()]
            if dead or time.monotonic() > deadline:
                text = "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.procs)
                self.stop()
                raise RuntimeError(f"{kind} workers did not start:\n{text}")
            time.sleep(0.05)

    def _ready(self, key: str) -> int:
        if key == AUTHQ_WORKERS_KEY:
            return int(self.client.zcard(key))
        return int(self.client.scard(key))

    def rss(self) -> list[dict[str, float]]:
        return [rss(p.pid) for p in self.procs if p.alive()]

    def stop(self) -> None:
        if self.kind is not None:
            self.rss_at_stop[self.kind].extend(self.rss())
        for p in self.procs:
            if p.alive():
                p.popen.send_signal(signal.SIGTERM)
        for p in self.procs:
            p.stop()
        self.procs = []
        self.kind = None


def _ticks(pid: int) -> int:
    """utime + stime of a live process, in clock ticks (/proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])


def _machine() -> tuple[int, int, int]:
    """(busy, steal, total) clock ticks of all CPUs since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    steal = values[7] if len(values) > 7 else 0
    total = sum(values[:8])
    return total - idle - steal, steal, total


class CpuMeter:
    """How much CPU the rest of the machine used while a run went on: the whole machine's busy
    time (/proc/stat) less that of the bench's own processes (its children and itself).
    Reported as cores: 0.0 means the run had the machine to itself. ``by_process`` is the CPU
    seconds each named process used during the run (the load generator is "children")."""

    def __init__(self, pids: dict[int, str]) -> None:
        self.pids = pids
        self.hz = os.sysconf("SC_CLK_TCK")

    def _each(self) -> dict[str, float]:
        import resource

        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = {name: _ticks(pid) / self.hz for pid, name in self.pids.items()}
        out["children"] = children.ru_utime + children.ru_stime
        return out

    def _ours(self) -> float:
        import resource

        children = resource.getrusage(resource.RUSAGE_CHILDREN)   # finished load generators
        me = resource.getrusage(resource.RUSAGE_SELF)
        live = sum(_ticks(pid) for pid in self.pids) / self.hz
        return live + children.ru_utime + children.ru_stime + me.ru_utime + me.ru_stime

    def __enter__(self) -> CpuMeter:
        self.t0 = time.monotonic()
        self.machine0 = _machine()
        self.ours0 = self._ours()
        self.each0 = self._each()
        return self

    def __exit__(self, *_: object) -> None:
        seconds = max(1e-6, time.monotonic() - self.t0)
        busy1, steal1, _ = _machine()
        busy = (busy1 - self.machine0[0]) / self.hz
        ours = self._ours() - self.ours0
        each = self._each()
        self.by_process = {name: round(each[name] - self.each0.get(name, 0.0), 3) for name in each}
        self.result = {"other_cores": round(max(0.0, busy - ours) / seconds, 2),
                       "our_cores": round(ours / seconds, 2),
                       "steal_cores": round((steal1 - self.machine0[1]) / self.hz / seconds, 2),
                       "by_process_seconds": self.by_process}
