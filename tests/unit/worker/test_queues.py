"""The API's queue follows the broker, and building it (as ``authq api`` does) builds no
worker machinery; building the worker app starts nothing either; worker/ has no import cycle.

The process-wide checks run in a fresh interpreter: Celery's signals, the loaded modules and
the threads are the process's, and this one has imported everything already.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

from tasks.settings import Settings
from tests.support.helpers import ROOT
from worker.inline_queue import RedisInlineQueue
from worker.publisher import CeleryJobQueue
from worker.queues import make_job_queue

AMQP = "amqp://guest:guest@127.0.0.1:5672//"
NOWHERE = "redis://127.0.0.1:9/0"   # nothing listens: anything that connected would fail
WORKER_MACHINERY = ["worker.celery_app", "worker.lifecycle", "worker.tasks", "worker.liveness", "worker.sweeper",
                    "worker.bootstrap", "tasks.jobs.runner"]
LIFECYCLE_SIGNALS = ["celeryd_init", "celeryd_after_setup", "worker_ready", "worker_shutdown", "setup_logging",
                     "worker_init", "worker_process_init"]


def _fresh(script: str, **env: str) -> dict[str, object]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AUTHQ_")} | env
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environ, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


REPORT = f"""
import json, sys, threading
loaded = [m for m in {WORKER_MACHINERY!r} if m in sys.modules]
celery_loaded = "celery" in sys.modules
from celery import signals
receivers = {{name: len(getattr(signals, name).receivers) for name in {LIFECYCLE_SIGNALS!r}}}
print(json.dumps({{"loaded": loaded, "celery": celery_loaded, "receivers": receivers,
                  "threads": threading.active_count(), **extra}}))
"""


def test_the_queue_follows_the_broker() -> None:
    same = Settings(redis_url=NOWHERE, _env_file=None)  # type: ignore[call-arg]
    assert same.broker_is_store and isinstance(make_job_queue(same), RedisInlineQueue)
    named = same.model_copy(update={"broker_url": NOWHERE})
    assert named.broker_is_store and isinstance(make_job_queue(named), RedisInlineQueue)
    other = same.model_copy(update={"broker_url": AMQP})
    assert not other.broker_is_store and isinstance(make_job_queue(other), CeleryJobQueue)
    another_redis = same.model_copy(update={"broker_url": "redis://127.0.0.1:9/1"})
    assert not another_redis.broker_is_store and isinstance(make_job_queue(another_redis), CeleryJobQueue)


def _api_script(broker: str | None) -> str:
    return f"""
from api.app import create_app
from tasks.security.sealing import generate_key
from tasks.settings import Settings
from worker.queues import make_job_queue
settings = Settings(redis_url={NOWHERE!r}, broker_url={broker!r}, secret_key=generate_key(), _env_file=None)
queue = make_job_queue(settings)
create_app(settings, queue)          # as `authq api` builds it (authq/cli.py)
extra = {{"queue": type(queue).__name__}}
""" + REPORT


def test_the_api_whose_broker_is_the_store_builds_no_worker_machinery_nor_celery() -> None:
    report = _fresh(_api_script(None))
    assert report["queue"] == "RedisInlineQueue"
    assert report["loaded"] == [] and report["celery"] is False
    assert set(report["receivers"].values()) == {0}  # type: ignore[union-attr]
    assert report["threads"] == 1


def test_the_api_on_another_broker_builds_a_producer_only() -> None:
    report = _fresh(_api_script(AMQP))
    assert report["queue"] == "CeleryJobQueue"
    assert report["loaded"] == []
    assert set(report["receivers"].values()) == {0}  # type: ignore[union-attr]
    assert report["threads"] == 1  # no connection yet, no publishing thread until a job is sent


def test_importing_and_registering_start_nothing() -> None:
    """``import worker`` builds nothing; ``worker.app`` builds the app, registers the task and
    installs the lifecycle, and still nothing runs or connects until a worker is ready."""
    report = _fresh("""
import sys
import worker
built_at_import = "worker.celery_app" in sys.modules
app = worker.app
assert worker.app is app
tasks = sorted(name for name in app.tasks if name.startswith("authq."))   # configures the app: reads the env
broker = app.conf.broker_url
extra = {"built_at_import": built_at_import, "tasks": tasks, "broker": broker}
""" + REPORT, AUTHQ_REDIS_URL=NOWHERE)
    assert report["built_at_import"] is False
    assert report["tasks"] == ["authq.deliver_webhook", "authq.run_job"] and report["broker"] == NOWHERE
    assert report["receivers"] == {"celeryd_init": 1, "celeryd_after_setup": 1, "worker_ready": 1,  # installed...
                                   "worker_shutdown": 1, "setup_logging": 0, "worker_init": 0,
                                   "worker_process_init": 0}
    assert report["threads"] == 1  # ... and nothing started


def _worker_imports() -> dict[str, set[str]]:
    """worker.* module -> the worker.* modules it imports (anywhere in it, at import or later)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / "worker").glob("*.py")):
        name = "worker" if path.stem == "__init__" else f"worker.{path.stem}"
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {m for m in found if m.startswith("worker.") and (ROOT / f"{m.replace('.', '/')}.py").exists()}
    return graph


def test_worker_modules_import_one_another_without_a_cycle() -> None:
    graph = _worker_imports()
    assert "worker.wire" in graph and "worker.celery_app" in graph
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join(path + (module,))}"
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, path + (module,))
        done.add(module)

    for module in graph:
        visit(module, ())
    # The wire format depends on nothing else of worker/: the API's inline queue needs only it.
    assert graph["worker.wire"] == set() and graph["worker.inline_queue"] == {"worker.wire"}
