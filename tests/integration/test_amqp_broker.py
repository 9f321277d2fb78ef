"""``AUTHQ_BROKER_URL=amqp://…`` works as well as Redis: a job travels through a real
RabbitMQ to a real worker and ends. Runs when ``AUTHQ_TEST_AMQP_URL`` names a RabbitMQ
(``.ci/run`` sets it on our machines, where one listens on 127.0.0.1:5672).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tasks.settings import Settings
from tests.support.helpers import ROOT, base_env, poll_job
from tests.support.provider import GOOD_KEY, GOOD_SECRET

AMQP_URL = os.environ.get("AUTHQ_TEST_AMQP_URL")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not AMQP_URL, reason="set AUTHQ_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672// to run"),
]


@pytest.fixture
def amqp_worker(redis_server, secret_key, ca_bundle, tmp_path):
    env = base_env(redis_server, secret_key, ca_bundle)
    env["AUTHQ_BROKER_URL"] = AMQP_URL
    log = tmp_path / "amqp-worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", "worker", "--pool=threads", "--loglevel=INFO",
             "-n", f"amqpworker-{os.getpid()}@%h", "-Q", "authq.interactive,authq.background",
             "--without-gossip", "--without-mingle"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "ready." not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"amqp worker did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    yield proc
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
async def amqp_client(aiohttp_client, settings: Settings):
    from api.app import create_app
    from worker.publisher import CeleryJobQueue
    from worker.queues import make_job_queue

    amqp_settings = settings.model_copy(update={"broker_url": AMQP_URL})
    queue = make_job_queue(amqp_settings)
    assert isinstance(queue, CeleryJobQueue)  # the broker is not the store: Celery's producer
    app = create_app(amqp_settings, queue)
    yield await aiohttp_client(app)


async def test_job_round_trip_over_rabbitmq(amqp_client, amqp_worker, tenant, fresh_provider):
    body = {
        "authentication_implementation_id": "test-basic", "timezone": "UTC", "date_format": "Y-m-d",
        "rate_limit_unit": "minute", "rate_limit_duration": 10,
        "variables": [{"key": "base_url", "value": fresh_provider.base_url},
                      {"key": "consumer_key", "value": GOOD_KEY}, {"key": "consumer_secret", "value": GOOD_SECRET}],
    }
    answer = await amqp_client.post("/api/v1/oauth/authorise", json=body, headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    job = await poll_job(amqp_client, tenant, (await answer.json())["data"]["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["connector"]["status"] == "authorised"
    assert len([s for s in fresh_provider.seen if s.path.endswith("system_status")]) == 1

    # Queue depth is unknown through AMQP: /metrics leaves that series out; the rest is there.
    metrics = await (await amqp_client.get("/metrics")).text()
    assert "authq_jobs_total{" in metrics and "authq_queue_depth" not in metrics
