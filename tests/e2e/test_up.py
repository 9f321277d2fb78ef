"""``authq up`` end to end, started as the README says, driven over HTTP.

Proves: one command brings up embedded Redis, the API and workers; a basic connector is
authorised through it; SIGTERM stops every process it started; a second ``up`` on the
same data dir still serves the first run's jobs and connectors. On a port already in use
``up`` exits 2 naming ``--port`` and starts nothing; and a program that answers ``/readyz``
200 on its port is never taken for the API ``up`` started.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from authq.redis_server import free_port, start_redis
from tasks.security.sealing import generate_key
from tests.support.helpers import TEST_CATALOG
from tests.support.processes import alive, cmdline, descendants, mentioning
from tests.support.provider import GOOD_KEY, GOOD_SECRET, Provider

pytestmark = pytest.mark.integration


def authq_command() -> list[str]:
    """The installed console script, as the README runs it (``.venv/bin/authq``)."""
    script = Path(sys.executable).with_name("authq")
    if script.exists():
        return [str(script)]
    found = shutil.which("authq")
    assert found, "the authq console script is not installed: run the README's install command"
    return [found]


def http(method: str, url: str, key: str | None = None, body: object | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", key)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=40) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


class Up:
    def __init__(self, data_dir: Path, port: int, env: dict[str, str], *flags: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.log = data_dir.parent / f"up-{port}-{time.monotonic_ns()}.log"
        self.out = open(self.log, "wb")  # noqa: SIM115 (the process's output for its whole life)
        self.process = subprocess.Popen(
            authq_command() + ["up", "--port", str(port), "--workers", "2", "--data-dir", str(data_dir), *flags],
            env=env, stdout=self.out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"authq up exited early:\n{self.output()}"
            if "authq: ready at" in self.output():
                status, _ = http("GET", f"{self.base}/readyz")
                assert status == 200
                return
            time.sleep(0.25)
        raise AssertionError(f"authq up was not ready in {timeout}s:\n{self.output()}")

    def stop(self, timeout: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.out.close()
        return code


@pytest.fixture
def up_env(provider: Provider) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHQ_")}
    env.update({"AUTHQ_CATALOG": str(TEST_CATALOG), "AUTHQ_ALLOW_PRIVATE_NETWORKS": "true"})
    return env


def test_up_serves_stops_cleanly_and_keeps_data(tmp_path: Path, up_env: dict[str, str], provider: Provider) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    first = Up(data_dir, port, up_env)
    try:
        first.wait_ready()
        started = descendants(first.process.pid)
        commands = [cmdline(pid) for pid in started]
        assert sum("redis-server" in c for c in commands) == 1, commands
        assert sum("worker" in c and "celery" in c for c in commands) >= 2, commands
        # Each worker runs AUTHQ_WORKER_CONCURRENCY (default 8) jobs at once on Celery's threads pool.
        workers = [c for c in commands if "celery" in c and " worker " in f" {c} "]
        assert len(workers) == 2 and all("--pool=threads" in c and "--concurrency=8" in c for c in workers), workers
        key = (data_dir / "api-key").read_text().strip()
        assert oct((data_dir / "api-key").stat().st_mode & 0o777) == "0o600"

        body = {
            "authentication_implementation_id": "test-basic", "timezone": "America/New_York",
            "date_format": "Y-m-d", "rate_limit_unit": "second", "rate_limit_duration": 5,
            "variables": [{"key": "base_url", "value": provider.base_url},
                          {"key": "consumer_key", "value": GOOD_KEY},
                          {"key": "consumer_secret", "value": GOOD_SECRET}],
        }
        status, answer = http("POST", f"{first.base}/api/v1/oauth/authorise", key, body)
        assert status == 202, answer
        job_id, connector_id = answer["data"]["id"], answer["data"]["connector_id"]
        status, answer = http("GET", f"{first.base}/api/v1/jobs/{job_id}", key, headers={"Prefer": "wait=30"})
        assert answer["data"]["status"] == "succeeded", answer
        status, connector = http("GET", f"{first.base}/api/v1/connectors/{connector_id}", key)
        assert connector["data"]["status"] == "authorised"
        assert GOOD_SECRET not in json.dumps(connector)
        # The first start's key has every scope; `authq keys list` finds the running Redis by the data dir.
        listed = subprocess.run([sys.executable, "-m", "authq", "keys", "list", "--data-dir", str(data_dir)],
                                env=up_env, capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        [row] = listed.stdout.strip().splitlines()[1:]
        assert row.split()[1:3] == ["default", "manage,proxy,credentials"] and key not in listed.stdout
    finally:
        code = first.stop()
    assert code == 0, first.output()
    time.sleep(0.5)
    left = [(pid, cmdline(pid)) for pid in started if alive(pid)]
    assert left == [], f"processes left behind after SIGTERM: {left}"
    assert "authq: stopped." in first.output()

    second = Up(data_dir, port, up_env)
    try:
        second.wait_ready()
        status, answer = http("GET", f"{second.base}/api/v1/jobs/{job_id}", key)
        assert status == 200 and answer["data"]["status"] == "succeeded", answer
        status, connector = http("GET", f"{second.base}/api/v1/connectors/{connector_id}", key)
        assert status == 200 and connector["data"]["status"] == "authorised"
        assert connector["data"]["timezone"] == "America/New_York"
    finally:
        assert second.stop() == 0, second.output()


def test_second_up_on_same_data_dir_is_refused(tmp_path: Path, up_env: dict[str, str]) -> None:
    data_dir = tmp_path / "data"
    first = Up(data_dir, free_port(), up_env)
    try:
        first.wait_ready()
        clash = subprocess.run(authq_command() + ["up", "--port", str(free_port()), "--data-dir", str(data_dir)],
                               env=up_env, capture_output=True, text=True, timeout=60)
        assert clash.returncode == 2
        assert "already running" in clash.stderr
    finally:
        assert first.stop() == 0


class Squatter:
    """Another program on the port, answering ``GET /readyz`` 200 as a ready authq would."""

    def __init__(self, port: int) -> None:
        seen = self.readyz_asked = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path == "/readyz":
                    seen.append(time.monotonic())
                body = json.dumps({"status": "ready", "workers": 2, "instance": "someone-else"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_up_on_a_port_in_use_exits_2_naming_port_and_starts_nothing(tmp_path: Path, up_env: dict[str, str]) -> None:
    port = free_port()
    squatter = Squatter(port)
    data_dir = tmp_path / "data"
    try:
        run = subprocess.run(authq_command() + ["up", "--port", str(port), "--data-dir", str(data_dir)],
                             env=up_env, capture_output=True, text=True, timeout=60)
    finally:
        squatter.close()
    output = run.stdout + run.stderr
    assert run.returncode == 2, output
    assert f"authq: error: port {port} is in use" in run.stderr, output
    assert "--port" in run.stderr, output
    assert "Traceback" not in output
    assert "authq: ready" not in output
    assert "Redis" not in run.stdout, output                       # no Redis was started ...
    assert not (data_dir / "redis").exists() or not any((data_dir / "redis").iterdir())
    assert mentioning(str(data_dir.resolve())) == []              # ... nor any other process
    assert squatter.readyz_asked == []                            # nothing was taken for ready


def test_a_squatter_answering_readyz_is_not_taken_for_up_s_api(tmp_path: Path, up_env: dict[str, str]) -> None:
    """The port was free when ``up`` checked it, and taken (by a program that answers /readyz 200)
    before the API listened: ``up`` must not say ready, must report the API's own error (its log's
    last lines, no traceback of its own) and exit non-zero, leaving no process behind."""
    redis_server = start_redis(tmp_path / "redis", secrets.token_urlsafe(16), appendonly=False)
    admin = redis_server.client()
    port = free_port()
    data_dir = tmp_path / "data"
    env = {**up_env, "AUTHQ_REDIS_URL": redis_server.url, "AUTHQ_SECRET_KEY": generate_key()}
    squatter = None
    try:
        clients = len(admin.client_list())
        admin.execute_command("CLIENT", "PAUSE", 20000, "WRITE")   # up waits on Redis (its key check writes)
        with open(tmp_path / "up.log", "wb") as out:
            process = subprocess.Popen(authq_command() + ["up", "--port", str(port), "--workers", "1",
                                                          "--data-dir", str(data_dir)],
                                       env=env, stdout=out, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 30
            while len(admin.client_list()) <= clients:             # up has checked the port and connected
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "up.log").read_text()
                time.sleep(0.05)
            squatter = Squatter(port)
            admin.execute_command("CLIENT", "UNPAUSE")
            code = process.wait(90)
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        if squatter is not None:
            squatter.close()
        admin.close()
        redis_server.stop()
    output = (tmp_path / "up.log").read_text(errors="replace")
    assert code != 0, output
    assert "authq: ready" not in output, output
    assert squatter.readyz_asked, "up never asked the squatter: this test proved nothing"
    assert "api exited at start" in output, output
    assert f"port {port} is in use" in output, output              # the API's own words, from its log
    assert "Traceback" not in output, output
    assert mentioning(str(data_dir.resolve())) == []


def listening_on(port: int) -> set[int]:
    """The pids with a socket listening on 127.0.0.1:``port`` (from /proc, as ``ss -ltnp`` reads it)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A: LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) in inodes for fd in fd_dir.iterdir()):
                pids.add(int(fd_dir.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return pids


def test_api_processes_share_the_port_and_one_dying_stops_up(tmp_path: Path, up_env: dict[str, str]) -> None:
    port = free_port()
    up = Up(tmp_path / "data", port, up_env, "--api-processes", "2")
    try:
        up.wait_ready()
        apis = [pid for pid in descendants(up.process.pid) if " authq api" in f" {cmdline(pid)}"]
        assert len(apis) == 2 and all("--reuse-port" in cmdline(pid) for pid in apis), [cmdline(p) for p in apis]
        assert listening_on(port) == set(apis)
        assert "starting 2 API processes" in up.output()
        assert all(http("GET", f"{up.base}/readyz")[0] == 200 for _ in range(20))  # each a new connection
        os.kill(apis[0], signal.SIGKILL)
        up.process.wait(30)
        assert up.process.returncode == 1 and "exited" in up.output() and "stopping" in up.output()
    finally:
        if up.process.poll() is None:
            up.stop()
        else:
            up.out.close()
