"""A fleet a test kills and restarts at will: its own ``redis-server`` (append-only file on,
as in production) and ``celery -A worker worker`` processes on it, and ``Ends``, which counts
every terminal status a job publishes. Used by the crash-safety and worker-concurrency tests."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import redis

from authq.redis_server import RedisServer, start_redis
from tasks.storage import schema
from tests.support.helpers import ROOT, base_env

# What `authq up` runs (authq/supervisor.py); the concurrency is AUTHQ_WORKER_CONCURRENCY's.
THREADS_POOL = ("--pool=threads",)


class Fleet:
    """A Redis (AOF on) and worker processes that a test kills and starts at will."""

    def __init__(self, tmp: Path, secret_key: str, ca_bundle: Path) -> None:
        self.dir = tmp / "redis"
        self.password = secrets.token_urlsafe(16)
        self.redis: RedisServer = start_redis(self.dir, self.password, appendonly=True)
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.secret_key = secret_key
        self.ca_bundle = ca_bundle
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.extra_env: dict[str, str] = {}
        self.loglevel = "INFO"

    @property
    def url(self) -> str:
        return self.redis.url

    def client(self) -> redis.Redis:
        return self.redis.client()

    def start_worker(self, name: str, wait: bool = True,
                     pool: Sequence[str] = THREADS_POOL) -> subprocess.Popen[bytes]:
        """Start worker ``name`` with the ``pool`` options (none: the worker's own configuration)."""
        env = base_env(self.redis, self.secret_key, self.ca_bundle)
        env.update(self.extra_env)
        node = f"{name}-{os.getpid()}"
        with open(self.logs / f"{name}.log", "wb") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "worker", "worker", *pool, f"--loglevel={self.loglevel}",
                 "-n", f"{node}@%h", "-Q", "authq.interactive,authq.background", "--without-gossip",
                 "--without-mingle"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.workers[name] = proc
        if wait:
            self.wait_ready(name, node, proc)
        return proc

    def wait_ready(self, name: str, node: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
        """Ready = its first heartbeat is in Redis (sent from Celery's worker_ready)."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while not any(m.decode().startswith(f"{node}@") for m in client.zrange(schema.WORKERS, 0, -1)):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {name} did not start:\n{self.log(name)[-3000:]}")
                time.sleep(0.1)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str) -> None:
        """SIGKILL: the process gets no chance to ack, requeue or say goodbye."""
        proc = self.workers[name]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def restart_redis(self, down_for: float = 0.5) -> None:
        """SHUTDOWN (the AOF is flushed), then a new redis-server on the same port and files."""
        port = self.redis.port
        self.redis.stop()
        time.sleep(down_for)
        self.redis = start_redis(self.dir, self.password, port=port, appendonly=True)

    def stop(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.workers.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.redis.stop()


class Ends:
    """Counts every terminal status a job publishes (``save_job`` publishes each save):
    a job that ended twice would show two. Reconnects across Redis restarts."""

    def __init__(self, fleet: Fleet, tenant: str) -> None:
        self.fleet = fleet
        self.pattern = schema.job_events.pattern(tenant)
        self.ends: Counter[str] = Counter()
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._subscribed.wait(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with redis.Redis.from_url(self.fleet.url) as client, client.pubsub() as pubsub:
                    pubsub.psubscribe(self.pattern)
                    while not self._stop.is_set():
                        message = pubsub.get_message(timeout=0.2)
                        if message is None:
                            continue
                        if message["type"] == "psubscribe":
                            self._subscribed.set()
                        elif message["type"] == "pmessage" and _ended(message["data"]):
                            job_id = schema.job_events.parse(message["channel"]).id
                            self.ends[job_id] += 1
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _ended(published: bytes) -> bool:
    """Whether a job channel's message (the job as stored, after a save) is a terminal status."""
    return bool(json.loads(published).get("status") in ("succeeded", "failed"))
