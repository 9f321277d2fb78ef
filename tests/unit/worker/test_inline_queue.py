"""The message the API pushes in its own transaction is the message Celery would send.

Compared with what Celery's producer really writes to a Redis broker (on a spare database
of the session's Redis, so no worker takes it), field by field.
"""

from __future__ import annotations

import base64
import json

from tasks.jobs.queue_port import JobCopy, kwargs_repr, message_kwargs
from tasks.settings import Settings
from worker.celery_app import make_celery
from worker.inline_queue import RedisInlineQueue
from worker.publisher import CeleryJobQueue
from worker.queues import make_job_queue


def test_inline_message_matches_celerys_own(redis_server, secret_key):
    url = redis_server.url.rsplit("/", 1)[0] + "/15"
    app = make_celery(Settings(redis_url=url, secret_key=secret_key, _env_file=None))  # type: ignore[call-arg]
    spare = redis_server.client().from_url(url)
    spare.flushdb()
    copy = JobCopy('{"id":"job_1","status":"queued"}', "gAAAA-sealed")
    app.send_task("authq.run_job", args=("tenant-a", "job_1"), kwargs=message_kwargs("req-1", copy),
                  kwargsrepr=kwargs_repr("req-1"), queue="authq.background")
    theirs = json.loads(spare.lpop("authq.background"))
    queue, payload = RedisInlineQueue(app).inline_message("tenant-a", "job_1", "refresh", "req-1", copy)
    ours = json.loads(payload)
    assert queue == "authq.background"
    assert set(ours) == set(theirs)
    assert set(ours["headers"]) == set(theirs["headers"])
    # (send_task also copies its kwargsrepr option into the properties; the header is what Celery reads)
    assert set(ours["properties"]) == set(theirs["properties"]) - {"kwargsrepr"}
    assert ours["headers"]["task"] == theirs["headers"]["task"] == "authq.run_job"
    assert ours["headers"]["kwargsrepr"] == theirs["headers"]["kwargsrepr"] == "{'request_id': 'req-1'}"  # not the copy
    assert ours["properties"]["delivery_info"] == theirs["properties"]["delivery_info"]
    assert base64.b64decode(ours["body"]) == base64.b64decode(theirs["body"])
    assert json.loads(base64.b64decode(ours["body"]))[1] == {"request_id": "req-1", "job": copy.job, "sealed": copy.sealed}
    assert ours["content-type"] == theirs["content-type"] and ours["content-encoding"] == theirs["content-encoding"]
    spare.flushdb()
    spare.close()


def test_the_queue_follows_the_broker(redis_server, secret_key):
    same = Settings(redis_url=redis_server.url, secret_key=secret_key, _env_file=None)  # type: ignore[call-arg]
    other = same.model_copy(update={"broker_url": "amqp://guest:guest@127.0.0.1:5672//"})
    assert isinstance(make_job_queue(same), RedisInlineQueue)
    assert isinstance(make_job_queue(other), CeleryJobQueue)


def test_each_message_has_its_own_ids_and_arguments(redis_server, secret_key):
    app = make_celery(Settings(redis_url=redis_server.url, secret_key=secret_key, _env_file=None))  # type: ignore[call-arg]
    queue = RedisInlineQueue(app)
    one = json.loads(queue.inline_message("t1", "job_a", "authorise")[1])
    two = json.loads(queue.inline_message("t2", "job_b", "authorise")[1])
    for message, args in ((one, ["t1", "job_a"]), (two, ["t2", "job_b"])):
        task_id = message["headers"]["id"]
        assert message["headers"]["root_id"] == message["properties"]["correlation_id"] == task_id
        assert json.loads(base64.b64decode(message["body"]))[0] == args
        assert message["headers"]["argsrepr"] == repr(tuple(args))
    assert one["headers"]["id"] != two["headers"]["id"]
    assert one["properties"]["delivery_tag"] != two["properties"]["delivery_tag"]
