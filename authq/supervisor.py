"""``authq up``: embedded Redis, the API and N workers (each running ``AUTHQ_WORKER_CONCURRENCY``
jobs at once) on one machine, stopped together.

Children run in their own session (a terminal's Ctrl-C reaches only this process, which
then stops them in order: API and workers first, Redis last, so no job is cut off from its
store) and are told by the kernel to stop if this process dies without cleaning up.
A worker that dies is started again; the API dying stops everything.

Ready means ready *here*: ``/readyz`` answers 200 with this run's instance id (``up`` hands
its API a fresh one, ``AUTHQ_INSTANCE_ID``), so another program on the port, or an API left
from another run, is never taken for ours; and each of this run's workers has sent a
heartbeat since ``up`` started (``/readyz`` counts the whole fleet's, an earlier run's too).
A child that exits meanwhile stops the start with its log's last lines.
"""

from __future__ import annotations

import ctypes
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import redis

from tasks.errors import ConfigError
from tasks.storage import schema
from worker.config import POOL

PR_SET_PDEATHSIG = 1
STOP_GRACE_SECONDS = 20.0


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def say(message: str) -> None:
    print(message, flush=True)


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    essential: bool = False  # an API process: if it dies, `up` stops (a dead worker is started again)
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    restarts: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 (the child's output for its whole life)
        self.process = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=_die_with_parent)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class OwnWorkers:
    """Whether each of this run's workers has sent a heartbeat since the run began."""

    def __init__(self, redis_url: str, names: list[str]) -> None:
        self.client = redis.Redis.from_url(redis_url, socket_timeout=2)
        self.names = names
        self.since = time.time()

    def seen(self) -> bool:
        try:
            beats = [self.client.zscore(schema.WORKERS, name) for name in self.names]
        except redis.RedisError:
            return False
        return all(beat is not None and beat >= self.since for beat in beats)

    def close(self) -> None:
        self.client.close()


class Supervisor:
    def __init__(self, children: list[Child], ready_url: str, instance: str,
                 workers_seen: Callable[[], bool] = lambda: True) -> None:
        self.children = children
        self.ready_url = ready_url
        self.instance = instance
        self.workers_seen = workers_seen
        self.stopping = threading.Event()

    def _signal(self, signum: int, _frame: object) -> None:
        if not self.stopping.is_set():
            say(f"\nauthq: {signal.Signals(signum).name} received, stopping…")
        self.stopping.set()

    def install_signals(self) -> None:
        signal.signal(signal.SIGINT, self._signal)
        signal.signal(signal.SIGTERM, self._signal)

    def start_all(self) -> None:
        for child in self.children:
            child.start()

    def _readiness(self) -> tuple[bool, str]:
        """(whether our API answers ready, what to tell the user while waiting; "" for nothing new)."""
        try:
            with urllib.request.urlopen(self.ready_url, timeout=2) as answer:
                status, text = answer.status, answer.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode(errors="replace")
        except (urllib.error.URLError, OSError):
            return False, ""
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("instance") != self.instance:
            return False, f"something else answers on {self.ready_url} (not the API this `authq up` started)"
        if status != 200:
            return False, str(body.get("reason", text))
        if not self.workers_seen():
            return False, "the API is up; waiting for this run's workers"
        return True, ""

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while not self.stopping.is_set():
            for child in self.children:
                if not child.alive():
                    code = child.process.returncode if child.process else "?"
                    raise ConfigError(f"{child.name} exited at start (code {code}). "
                                      f"Last lines of {child.log_path}:\n{child.tail()}")
            ready, note = self._readiness()
            if ready:
                return
            if note and note != last:
                say(f"authq: still starting ({note})")  # progress, not a fault: readiness says what it waits for
                last = note
            if time.monotonic() > deadline:
                raise ConfigError(f"authq did not become ready within {timeout:.0f}s; see the logs in "
                                  f"{self.children[0].log_path.parent}.")
            time.sleep(0.25)

    def watch(self) -> int:
        """Until a signal: restart dead workers; if the API dies, stop everything."""
        while not self.stopping.wait(0.5):
            for child in self.children:
                if child.alive():
                    continue
                code = child.process.returncode if child.process else None
                if child.essential:
                    say(f"authq: the API ({child.name}) exited (code {code}); stopping. "
                        f"Last lines of {child.log_path}:\n{child.tail()}")
                    return 1
                now = time.monotonic()
                child.restarts = [t for t in child.restarts if now - t < 60] + [now]
                if len(child.restarts) > 5:
                    say(f"authq: {child.name} keeps dying; stopping. Last lines:\n{child.tail()}")
                    return 1
                say(f"authq: {child.name} exited (code {code}); starting it again.")
                child.start()
        return 0

    def stop_all(self) -> None:
        for child in self.children:
            if child.alive() and child.process:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"authq: {child.name} did not stop in {STOP_GRACE_SECONDS:.0f}s; killing it.")
                child.process.kill()
                child.process.wait()
            if child.log:
                child.log.close()


def worker_name(index: int) -> str:
    """The worker's node name, as Celery expands ``worker_argv``'s ``-n`` (``%h``: the host name)."""
    return f"worker{index}@{socket.gethostname()}"


def worker_argv(index: int, concurrency: int) -> list[str]:
    """Worker ``index``: ``concurrency`` jobs at once on Celery's threads pool (``AUTHQ_WORKER_CONCURRENCY``),
    both queues. The pool and concurrency are what the worker's own configuration says
    (``worker/config.py``); given here too, so ``ps`` shows what runs."""
    return [sys.executable, "-m", "celery", "-A", "worker", "worker", f"--pool={POOL}",
            f"--concurrency={concurrency}", "--loglevel=INFO",
            "-n", worker_name(index), "-Q", "authq.interactive,authq.background",
            "--without-gossip", "--without-mingle"]


def api_argv(reuse_port: bool = False) -> list[str]:
    return [sys.executable, "-m", "authq", "api"] + (["--reuse-port"] if reuse_port else [])


def die_with_parent() -> None:
    """For the embedded Redis: stop when ``up`` dies (it saves its AOF on SIGTERM)."""
    _die_with_parent()
