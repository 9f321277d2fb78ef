"""``worker/wire.py`` against the Celery and kombu installed: what fails here is drift.

- the installed releases are the series the module was checked against, and pyproject.toml
  pins exactly that series;
- a message rendered by the module is, field for field, the message Celery's producer writes
  to a Redis broker (only the per-message ids and the sender's reply address differ);
- a real Celery worker process (authq's configuration) runs it with exactly the arguments
  sent, acks it, and finds it, while running, where ``renew_deliveries`` looks;
- kombu keeps each priority in the list ``priority_lists`` names, and a delivered message in
  the ``unacked`` hash, where ``jobs_with_a_message`` reads them;
- the ack emulation's internals the heartbeat re-scores are where and what it expects.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.metadata
import json
import os
import re
import secrets
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kombu
import pytest
import redis

from authq.redis_server import RedisServer, start_redis
from tasks.jobs.queue_port import BACKGROUND, INTERACTIVE, JobCopy, kwargs_repr, message_kwargs
from tasks.settings import Settings
from tests.support.helpers import ROOT
from worker import wire
from worker.publisher import producer_app


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of its own: the session's has workers that would consume these messages."""
    server = start_redis(tmp_path / "redis", secrets.token_urlsafe(12), appendonly=False)
    yield server
    server.stop()


@pytest.fixture
def own_redis(own_server: RedisServer) -> Iterator[redis.Redis]:
    client = own_server.client()
    yield client
    client.close()


def _settings(server: RedisServer) -> Settings:
    return Settings(redis_url=server.url, _env_file=None)  # type: ignore[call-arg]


# --- the versions ----------------------------------------------------------------------------

def _next_minor(series: str) -> str:
    major, minor = series.split(".")
    return f"{major}.{int(minor) + 1}"


@pytest.mark.parametrize("name", ["celery", "kombu"])
def test_the_installed_release_is_the_series_checked_and_pinned(name: str) -> None:
    series = wire.CHECKED_AGAINST[name]
    installed = importlib.metadata.version(name)
    assert ".".join(installed.split(".")[:2]) == series, (
        f"{name} {installed} is installed; worker/wire.py was checked against {series}.x: check the wire "
        "format against the new release (this file's tests), then move CHECKED_AGAINST and the pin together")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [d for d in project["dependencies"] if re.match(rf"{name}(\[[^\]]*\])?\s*[<>=!~]", d)]
    assert len(pins) == 1, pins
    bounds = dict(re.findall(r"(>=|<)\s*([0-9][0-9.]*)", pins[0]))
    assert bounds == {">=": series, "<": _next_minor(series)}, pins[0]


# --- rendering -------------------------------------------------------------------------------

PER_MESSAGE = {("headers", "id"), ("headers", "root_id"), ("properties", "correlation_id"),
               ("properties", "delivery_tag")}


def _without_ids(message: dict[str, Any]) -> dict[str, Any]:
    """The message with its per-message ids (checked apart) and the reply address taken out."""
    out = json.loads(json.dumps(message))
    for part, field in PER_MESSAGE:
        del out[part][field]
    # send_task's reply address is its app's (a random id per app and thread); authq's
    # messages have none: no result backend, nothing answers.
    del out["properties"]["reply_to"]
    out["properties"].pop("kwargsrepr", None)  # send_task copies its option there too; Celery reads the header
    return out


@pytest.mark.parametrize(("job_type", "request_id", "copy"), [
    ("refresh", "req-1", JobCopy('{"id":"job_1","status":"queued"}', "gAAAA-sealed")),
    ("authorise", None, None),
    ("woo_app_auth", "req-é", JobCopy('{"name":"Ünïcode shop"}', "gAAAA-x")),
])
def test_a_rendered_message_is_the_one_celerys_producer_writes(
        own_server: RedisServer, own_redis: redis.Redis, job_type: str, request_id: str | None,
        copy: JobCopy | None) -> None:
    app = producer_app(_settings(own_server))
    queue = {"refresh": BACKGROUND}.get(job_type, INTERACTIVE)
    app.send_task(wire.RUN_JOB, args=("tenant-a", "job_1"), kwargs=message_kwargs(request_id, copy),
                  kwargsrepr=kwargs_repr(request_id), queue=queue)
    app.close()
    theirs = json.loads(own_redis.lpop(queue))  # type: ignore[arg-type]
    where, payload = wire.InlineMessages().render("tenant-a", "job_1", job_type, request_id, copy)
    ours = json.loads(payload)

    assert where == queue
    assert _without_ids(ours) == _without_ids(theirs)
    assert base64.b64decode(ours["body"]) == base64.b64decode(theirs["body"])  # byte for byte
    task_id = ours["headers"]["id"]
    assert ours["headers"]["root_id"] == ours["properties"]["correlation_id"] == task_id
    assert ours["headers"]["kwargsrepr"] == repr({"request_id": request_id})  # the copy is not shown
    assert ours["properties"]["delivery_tag"] != task_id


def test_each_message_has_its_own_ids_and_arguments() -> None:
    messages = wire.InlineMessages()
    one = json.loads(messages.render("t1", "job_a", "authorise")[1])
    two = json.loads(messages.render("t2", "job_b", "authorise")[1])
    for message, args in ((one, ["t1", "job_a"]), (two, ["t2", "job_b"])):
        task_id = message["headers"]["id"]
        assert message["headers"]["root_id"] == message["properties"]["correlation_id"] == task_id
        assert json.loads(base64.b64decode(message["body"]))[0] == args
        assert message["headers"]["argsrepr"] == repr(tuple(args))
        assert wire.job_of(message) == tuple(args)
    assert one["headers"]["id"] != two["headers"]["id"]
    assert one["properties"]["delivery_tag"] != two["properties"]["delivery_tag"]


# --- a real worker ---------------------------------------------------------------------------

ECHO_APP = '''
"""A Celery worker on authq's configuration whose ``authq.run_job`` records how it was called."""
import json

import redis
from celery import Celery
from celery.signals import worker_ready

from tasks.settings import Settings
from worker.config import celery_config
from worker.wire import RUN_JOB, renew_deliveries

settings = Settings()
app = Celery("wire-echo", set_as_current=False)
app.config_from_object(celery_config(settings))
client = redis.Redis.from_url(settings.require_redis_url())
consumers = []


@worker_ready.connect(weak=False)
def ready(sender=None, **_):
    consumers.append(sender)
    client.set("echo:ready", "1")


@app.task(name=RUN_JOB, bind=True, acks_late=True)
def run_job(self, tenant, job_id, request_id=None, job=None, sealed=None):
    client.rpush("echo:runs", json.dumps({
        "args": [tenant, job_id], "kwargs": {"request_id": request_id, "job": job, "sealed": sealed},
        "id": self.request.id, "root_id": self.request.root_id, "argsrepr": self.request.argsrepr,
        "kwargsrepr": self.request.kwargsrepr, "delivery_info": self.request.delivery_info,
        "renewed": renew_deliveries(consumers[0]),
    }))
'''


@pytest.fixture
def echo_worker(own_server: RedisServer, own_redis: redis.Redis, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    (tmp_path / "wire_echo.py").write_text(ECHO_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHQ_")}
    env.update({"AUTHQ_REDIS_URL": own_server.url, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])})
    log = tmp_path / "echo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "wire_echo", "worker", "--pool=solo", "--loglevel=INFO",
             "-n", f"echo-{os.getpid()}@%h", "-Q", f"{INTERACTIVE},{BACKGROUND}", "--without-gossip",
             "--without-mingle", "--without-heartbeat"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not own_redis.exists("echo:ready"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"echo worker did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    yield proc
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_a_real_celery_worker_runs_a_rendered_message_as_sent(
        own_redis: redis.Redis, echo_worker: subprocess.Popen[bytes]) -> None:
    copy = JobCopy('{"id":"job_9","status":"queued"}', "gAAAA-sealed")
    queue, payload = wire.InlineMessages().render("tenant-b", "job_9", "authorise", "req-9", copy)
    own_redis.lpush(queue, payload)
    popped = own_redis.blpop(["echo:runs"], timeout=30)
    assert popped is not None, "the worker did not run the message"
    run = json.loads(popped[1])
    sent = json.loads(payload)
    assert run["args"] == ["tenant-b", "job_9"]
    assert run["kwargs"] == {"request_id": "req-9", "job": copy.job, "sealed": copy.sealed}
    assert run["id"] == run["root_id"] == sent["headers"]["id"]
    assert (run["argsrepr"], run["kwargsrepr"]) == (repr(("tenant-b", "job_9")), repr({"request_id": "req-9"}))
    assert run["delivery_info"]["routing_key"] == queue
    # While it ran, the message was unacked where the heartbeat looks for it, and renewed.
    assert run["renewed"] == 1
    deadline = time.monotonic() + 10
    while own_redis.hlen(wire.UNACKED) or own_redis.zcard("unacked_index"):
        assert time.monotonic() < deadline, "the message was not acked"
        time.sleep(0.05)
    assert own_redis.llen(queue) == 0


# --- reading ---------------------------------------------------------------------------------

def test_kombu_keeps_each_priority_in_the_lists_the_reader_reads(
        own_server: RedisServer, own_redis: redis.Redis) -> None:
    app = producer_app(_settings(own_server))
    for priority in range(10):
        app.send_task(wire.RUN_JOB, args=("t", f"job_{priority}"), queue=BACKGROUND, priority=priority)
    app.close()
    lists = [k.decode() for k in own_redis.keys(f"{BACKGROUND}*")]
    assert lists and set(lists) <= set(wire.priority_lists(BACKGROUND))
    assert wire.priority_lists(BACKGROUND)[0] == BACKGROUND  # priority 0: the bare name
    assert sum(own_redis.llen(name) for name in wire.priority_lists(BACKGROUND)) == 10
    assert wire.jobs_with_a_message(own_redis) == {("t", f"job_{p}") for p in range(10)}


def test_delivered_messages_are_read_from_the_unacked_hash(own_server: RedisServer, own_redis: redis.Redis) -> None:
    """A message a consumer holds unacked is off its list, in kombu's hash: still found."""
    own_redis.lpush(*wire.InlineMessages().render("t", "job_held", "authorise"))
    own_redis.lpush(INTERACTIVE, json.dumps({"headers": {"task": "other.task"}, "body": "W10="}))
    own_redis.lpush(INTERACTIVE, "not json")
    with _held_message(own_server) as held:
        assert own_redis.hlen(wire.UNACKED) == 1 and held.message.headers["task"] == wire.RUN_JOB
        assert held.body[0] == ["t", "job_held"]
        assert wire.jobs_with_a_message(own_redis) == {("t", "job_held")}


# --- the ack emulation -----------------------------------------------------------------------

class _Held:
    def __init__(self, consumer: kombu.Consumer, message: kombu.Message) -> None:
        self.consumer = consumer
        self.message = message
        self.body = json.loads(message.body)  # [args, kwargs, embed]


class _held_message:
    """A real kombu consumer on the Redis transport that took one message and has not acked it."""

    def __init__(self, server: RedisServer) -> None:
        self.connection = kombu.Connection(server.url, transport_options={"visibility_timeout": 30})
        self.received: list[kombu.Message] = []

    def __enter__(self) -> _Held:
        channel = self.connection.channel()
        channel.basic_qos(0, 1, False)
        consumer = kombu.Consumer(channel, queues=[kombu.Queue(INTERACTIVE)], accept=["json"],
                                  on_message=self.received.append)
        consumer.consume()
        deadline = time.monotonic() + 10
        while not self.received and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                self.connection.drain_events(timeout=1)
        assert self.received, "nothing was delivered"
        return _Held(consumer, self.received[0])

    def __exit__(self, *_: object) -> None:
        self.connection.release()


def test_the_heartbeat_renews_what_the_consumer_holds_unacked_and_nothing_acked(
        own_server: RedisServer, own_redis: redis.Redis) -> None:
    own_redis.lpush(*wire.InlineMessages().render("t", "job_long", "authorise"))
    with _held_message(own_server) as held:
        qos = held.consumer.channel.qos
        assert isinstance(qos._delivered, dict) and isinstance(qos._dirty, set)
        tag = held.message.delivery_tag
        assert tag in qos._delivered and qos.unacked_index_key == "unacked_index"
        celerys_consumer = SimpleNamespace(task_consumer=held.consumer)  # what Celery's worker hands the heartbeat
        own_redis.zadd("unacked_index", {tag: 1.0})  # delivered long ago: the next restore would take it back
        before = time.time()
        assert wire.renew_deliveries(celerys_consumer) == 1
        score = own_redis.zscore("unacked_index", tag)
        assert score is not None and score >= before
        held.message.ack()
        assert wire.renew_deliveries(celerys_consumer) == 0
        assert own_redis.zscore("unacked_index", tag) is None and own_redis.hlen(wire.UNACKED) == 0


def test_another_transport_has_nothing_to_renew() -> None:
    assert wire.renew_deliveries(SimpleNamespace(task_consumer=None)) == 0
    assert wire.renew_deliveries(SimpleNamespace(task_consumer=SimpleNamespace(channel=SimpleNamespace()))) == 0
