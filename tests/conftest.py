"""The test session's real parts: a redis-server it starts itself, real Celery worker
processes, a loopback provider, and the real app factory.

Nothing here is a stand-in: the Redis is the same binary ``authq up`` embeds, the workers
are ``celery -A worker worker`` processes, and jobs travel through the real broker.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import trustme
from aiohttp.test_utils import TestClient

from authq.redis_server import RedisServer, start_redis
from tasks.security.key_check import ensure_key_check
from tasks.security.sealing import SecretBox, generate_key
from tasks.settings import Settings
from tasks.storage import schema
from tests.support.helpers import (
    PLATFORM_APP_SECRET,
    PUBLIC_URL,
    ROOT,
    TEST_CATALOG,
    Tenant,
    base_env,
)
from tests.support.leakcheck import remember_secret, session_log_handler
from tests.support.oauth_server import OAuthServer
from tests.support.provider import Provider, start_provider
from tests.support.webhook_receiver import Receiver, start_receiver

# The public URL the API and the workers agree on: OAuth redirect_uri and Woo callback_url
# derive from it. Nothing listens there; tests play the browser and follow redirects by hand.

# The secrets the helpers hand to authq: tests/test_no_secrets_leaked.py, the session's
# last test, finds none of them (nor any other remember_secret()ed one) in Redis or a log.
# (tests/support/provider.py and tests/support/oauth_helpers.py register theirs where they define them.)
remember_secret(PLATFORM_APP_SECRET)

_session_log: logging.Handler | None = None


@pytest.fixture(scope="session", autouse=True)
def session_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Everything the in-process API (and the rest of this process) logs, as JSON lines, in a
    file under the session's base temp dir, where the leak check reads every ``*.log``."""
    global _session_log
    path = tmp_path_factory.getbasetemp() / "session-logs" / "in-process.log"
    _session_log = session_log_handler(path)
    _attach_session_log()
    yield path
    logging.getLogger().removeHandler(_session_log)
    _session_log.close()
    _session_log = None


def _attach_session_log() -> None:
    root = logging.getLogger()
    if _session_log is not None and _session_log not in root.handlers:
        root.addHandler(_session_log)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``runs_last`` (the leak check) run after all the others, in any selection."""
    items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    # tasks.telemetry.logs.configure() (an in-process `authq` command) replaces the root's handlers.
    _attach_session_log()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory, secret_key: str) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"), secrets.token_urlsafe(16), appendonly=False)
    remember_secret(server.password)
    # The session's key is the key of this Redis (its key check, tasks/security/key_check.py), made
    # before any test writes: tests that seal with throwaway keys never trip the API's or a
    # worker's start-up check. Tests of a wrong key use a Redis of their own.
    with server.client() as client:
        ensure_key_check(client, SecretBox(secret_key))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def secret_key() -> str:
    key = generate_key()
    remember_secret(key)
    return key


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    """A throwaway CA: it signs the OAuth server's TLS certificates and the clients' mTLS ones."""
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_bundle(test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CA as a file, for AUTHQ_CA_BUNDLE (how authq is told to trust extra CAs)."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    test_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def oauth(test_ca: trustme.CA) -> Iterator[OAuthServer]:
    """A real OAuth 2 authorization server (Authlib) on loopback: HTTP, HTTPS and mTLS listeners."""
    server = OAuthServer.start(ca=test_ca)
    yield server
    server.stop()


@pytest.fixture
def fresh_oauth(oauth: OAuthServer) -> OAuthServer:
    oauth.reset()
    return oauth


@pytest.fixture(scope="session")
def provider() -> Iterator[Provider]:
    server, stop = start_provider()
    yield server
    stop()


@pytest.fixture
def fresh_provider(provider: Provider) -> Iterator[Provider]:
    provider.seen.clear()
    provider.script.clear()
    provider.delay = 0.0
    yield provider
    provider.delay = 0.0  # a delay a test set is not the next test's


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback that verifies every message with ``standardwebhooks``."""
    receiver, stop = start_receiver()
    yield receiver
    stop()


@pytest.fixture
def tenants() -> tuple[Tenant, Tenant]:
    """Two fresh tenants per test: their records never meet another test's."""
    pair = tuple(Tenant(f"t{secrets.token_hex(4)}", f"key-{secrets.token_urlsafe(18)}") for _ in range(2))
    for t in pair:
        remember_secret(t.key)
    return pair  # type: ignore[return-value]


@pytest.fixture
def tenant(tenants: tuple[Tenant, Tenant]) -> Tenant:
    return tenants[0]


@pytest.fixture
def settings(redis_server: RedisServer, secret_key: str, tenants: tuple[Tenant, Tenant], ca_bundle: Path) -> Settings:
    keys = ",".join(f"{t.name}:{t.key}" for t in tenants)
    return Settings(redis_url=redis_server.url, secret_key=secret_key, api_keys=keys, catalog=TEST_CATALOG,
                    allow_private_networks=True, ca_bundle=ca_bundle, public_url=PUBLIC_URL,
                    _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
async def client(aiohttp_client, settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    from api.app import create_app
    from worker.queues import make_job_queue

    app = create_app(settings, make_job_queue(settings))
    yield await aiohttp_client(app)


@pytest.fixture(scope="session")
def workers(redis_server: RedisServer, secret_key: str, ca_bundle: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two real ``celery -A worker worker`` processes on the session's Redis."""
    env = base_env(redis_server, secret_key, ca_bundle)
    logs = tmp_path_factory.mktemp("worker-logs")
    procs = []
    for i in (1, 2):
        with open(logs / f"worker{i}.log", "wb") as log:  # the child writes to its own copy of the file
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "worker", "worker", "--pool=threads", "--loglevel=INFO",
                 "-n", f"testworker{i}-{os.getpid()}@%h", "-Q", "authq.interactive,authq.background",
                 "--without-gossip", "--without-mingle"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    client = redis_server.client()
    deadline = time.monotonic() + 60
    while client.zcard(schema.WORKERS) < 2:
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            text = "\n".join((logs / f"worker{i}.log").read_text(errors="replace")[-3000:] for i in (1, 2))
            for p in procs:
                p.kill()
            raise RuntimeError(f"test workers did not start:\n{text}")
        time.sleep(0.2)
    yield procs
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


