"""docker-compose.yml and the Dockerfile keep their promises.

The structural tests read the files with PyYAML. The validating tests hand the compose
file to a real Compose implementation (`docker-compose` v1 and/or the `docker compose`
plugin, whichever is installed; no Docker engine needed) and skip when there is none.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.settings import Settings
from tests.support.helpers import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

QUEUES = {"authq.interactive", "authq.background"}
REDIS_URL = "redis://redis:6379/0"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def option(args: list[str], name: str) -> str | None:
    """The value of ``--name=value``, ``--name value`` or ``-N value`` in ``args``."""
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


# --- structure -----------------------------------------------------------------------

def test_services_present(compose):
    assert {"redis", "api", "worker", "flower"} <= set(compose["services"])


def test_redis_persists_every_accepted_job(compose):
    redis = compose["services"]["redis"]
    assert str(redis["image"]).split(":")[0] == "redis"
    assert str(redis["image"]).split(":")[1].startswith("7")
    args = argv(redis["command"])
    assert args[0] == "redis-server"
    assert option(args, "--appendonly") == "yes"
    assert option(args, "--appendfsync") in {"everysec", "always"}
    # /data sits on a named volume declared at the top level.
    mounts = [str(v).split(":") for v in redis.get("volumes", [])]
    data = [m for m in mounts if len(m) >= 2 and m[1] == "/data"]
    assert data, "redis /data is not on a volume"
    assert data[0][0] in (compose.get("volumes") or {}), "redis /data is not a named volume"
    assert "ports" not in redis, "Redis has no password: keep it off the host's ports"
    test = " ".join(argv(redis["healthcheck"]["test"]))
    assert "redis-cli" in test and "ping" in test


@pytest.mark.parametrize(("service", "queue"), [("worker", "authq.interactive"), ("refresher", "authq.background")])
def test_workers_are_scalable_celery_workers_one_per_kind_of_work(compose, service, queue):
    worker = compose["services"][service]
    args = argv(worker["command"])
    assert args[:4] == ["celery", "-A", "worker", "worker"], args
    queues = option(args, "-Q") or option(args, "--queues")
    assert queues == queue  # interactive and background work scale apart
    # Unique per container: either one would break `docker compose up --scale worker=N`.
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "redis" in worker["depends_on"]
    assert environment(worker) == environment(compose["services"]["api"])


def test_every_queue_has_a_consumer(compose):
    consumed = set()
    for service in compose["services"].values():
        args = argv(service.get("command") or [])
        if args[:4] == ["celery", "-A", "worker", "worker"]:
            consumed |= set((option(args, "-Q") or "").split(","))
    assert consumed == QUEUES


def test_api_runs_authq_api(compose):
    api = compose["services"]["api"]
    args = argv(api["command"])
    assert args[:2] == ["authq", "api"]
    assert option(args, "--host") == "0.0.0.0"
    assert option(args, "--port") == "8080"
    assert "8080:8080" in [str(p) for p in api["ports"]]
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    test = " ".join(argv(api["healthcheck"]["test"]))
    assert re.search(r"/(healthz|readyz)", test), test


def test_api_and_worker_share_image_and_environment(compose):
    api, worker = compose["services"]["api"], compose["services"]["worker"]
    assert api.get("build") == worker.get("build") and api.get("image") == worker.get("image")
    assert environment(api) == environment(worker)
    env = environment(api)
    assert env["AUTHQ_REDIS_URL"] == REDIS_URL
    assert env.get("AUTHQ_PUBLIC_URL"), "AUTHQ_PUBLIC_URL needs a default"


@pytest.mark.parametrize("field", ["webhook_retry_schedule", "webhook_timeout_seconds", "webhook_scan_seconds",
                                   "webhook_endpoint_concurrency", "proxy_max_body"])
def test_the_shared_environment_passes_each_setting_with_authqs_default(compose, field):
    """What an operator sets on the host reaches the API and the workers alike; unset, each
    service gets the value ``Settings`` itself defaults to (so compose changes nothing by default)."""
    name = f"AUTHQ_{field.upper()}"
    value = environment(compose["services"]["api"])[name]
    match = re.fullmatch(r"\$\{" + name + r":-([^}]*)\}", value)
    assert match, value
    default = Settings.model_fields[field].default
    given = Settings(**{field: match.group(1)}, _env_file=None)  # type: ignore[arg-type]
    assert getattr(given, field) == default, (name, match.group(1), default)


@pytest.mark.parametrize("name", ["AUTHQ_SECRET_KEY", "AUTHQ_API_KEYS"])
def test_secrets_are_required_from_the_host(compose, name):
    value = environment(compose["services"]["api"])[name]
    # `${NAME:?message}`: unset or empty stops compose with the message.
    assert re.fullmatch(r"\$\{" + name + r":\?[^}]+\}", value), value


def test_flower_watches_the_same_broker(compose):
    flower = compose["services"]["flower"]
    assert str(flower["image"]).startswith("mher/flower")
    given = " ".join(argv(flower.get("command", ""))) + " " + " ".join(environment(flower).values())
    assert REDIS_URL in given
    assert any(str(p).endswith("5555:5555") for p in flower["ports"])


def test_dockerfile_runs_the_installed_package_as_non_root():
    text = DOCKERFILE.read_text()
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert instructions[0].startswith("FROM python:3.11-slim")
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r"pip install .*--no-deps /tmp/authq-src|pip install \.", text)
    cmd = [line for line in instructions if line.startswith("CMD ")][-1]
    assert argv(yaml.safe_load(cmd[4:])) == ["authq", "api", "--host", "0.0.0.0", "--port", "8080"]
    assert not re.search(r"^\s*(ENV|ARG)\b.*AUTHQ_(SECRET_KEY|API_KEYS)", text, re.M), "no secrets in the image"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", ".authq", ".env"} <= set(ignored)


# --- a real Compose implementation ---------------------------------------------------

def compose_commands() -> list[list[str]]:
    """Every Compose implementation on PATH: `docker compose` (v2 plugin), `docker-compose` (v1)."""
    found = []
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            found.append([docker, "compose"])
    legacy = shutil.which("docker-compose")
    if legacy:
        found.append([legacy])
    return found


def run_config(command: list[str], tmp_path: Path, env: dict[str, str],
               *extra: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHQ_", "COMPOSE_"))}
    clean.update(env)
    empty_env_file = tmp_path / "empty.env"  # a developer's .env must not fill the blanks
    empty_env_file.write_text("")
    return subprocess.run(
        [*command, "--env-file", str(empty_env_file), "-f", str(COMPOSE_FILE), "config", *extra],
        cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def implementations() -> list[list[str]]:
    found = compose_commands()
    if not found:
        pytest.skip("no Compose implementation on PATH (neither `docker compose` nor `docker-compose`); "
                    "install one, e.g. `apt-get install -y --no-install-recommends docker-compose`")
    return found


def test_compose_config_is_valid(implementations, tmp_path):
    env = {"AUTHQ_SECRET_KEY": "test-secret-key", "AUTHQ_API_KEYS": "acme:test-api-key"}
    for command in implementations:
        checked = run_config(command, tmp_path, env, "-q")
        assert checked.returncode == 0, f"{' '.join(command)} config -q:\n{checked.stderr}"
        rendered = run_config(command, tmp_path, env)
        assert rendered.returncode == 0, rendered.stderr
        services = yaml.safe_load(rendered.stdout)["services"]
        for name in ("api", "worker"):
            resolved = environment(services[name])
            assert resolved["AUTHQ_SECRET_KEY"] == "test-secret-key"
            assert resolved["AUTHQ_API_KEYS"] == "acme:test-api-key"
            assert resolved["AUTHQ_REDIS_URL"] == REDIS_URL
            assert resolved["AUTHQ_PUBLIC_URL"] == "http://localhost:8080"


@pytest.mark.parametrize("missing", ["AUTHQ_SECRET_KEY", "AUTHQ_API_KEYS"])
def test_compose_config_names_a_missing_secret(implementations, tmp_path, missing):
    env = {"AUTHQ_SECRET_KEY": "test-secret-key", "AUTHQ_API_KEYS": "acme:test-api-key"}
    del env[missing]
    for command in implementations:
        result = run_config(command, tmp_path, env, "-q")
        assert result.returncode != 0, f"{' '.join(command)} accepted the file without {missing}"
        assert f"set {missing}" in result.stderr, result.stderr


@pytest.mark.parametrize("service", ["worker", "refresher"])
def test_workers_run_the_threads_pool_at_the_configured_concurrency(compose, service):
    args = argv(compose["services"][service]["command"])
    assert option(args, "--pool") == "threads"
    # No --concurrency or --autoscale: the size is AUTHQ_WORKER_CONCURRENCY's, from the shared environment.
    assert option(args, "--concurrency") is None and option(args, "-c") is None
    assert not any(arg.startswith("--autoscale") for arg in args)
    assert environment(compose["services"][service])["AUTHQ_WORKER_CONCURRENCY"] == "${AUTHQ_WORKER_CONCURRENCY:-8}"
