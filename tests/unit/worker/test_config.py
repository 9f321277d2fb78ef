"""The worker's Celery configuration runs N jobs at once per process, with what N jobs need."""

from __future__ import annotations

from tasks.settings import DEFAULT_WORKER_CONCURRENCY, Settings
from worker.config import POOL, celery_config

REDIS = "redis://127.0.0.1:6399/0"


def settings(**fields: object) -> Settings:
    return Settings(redis_url=REDIS, _env_file=None, **fields)  # type: ignore[arg-type]


def test_a_plain_celery_worker_runs_the_threads_pool_at_the_default_concurrency() -> None:
    config = celery_config(settings())
    assert DEFAULT_WORKER_CONCURRENCY >= 8
    assert (config["worker_pool"], config["worker_concurrency"]) == ("threads", DEFAULT_WORKER_CONCURRENCY)
    assert POOL == "threads"


def test_concurrency_comes_from_the_setting_and_sizes_the_connection_pools() -> None:
    config = celery_config(settings(worker_concurrency=24))
    assert config["worker_concurrency"] == 24
    # Every thread may ack, requeue or publish a retry at the same moment, beside the consumer
    # and the heartbeat: kombu's default cap (10 connections) and pool limit (10) would not do.
    assert config["broker_transport_options"]["max_connections"] > 24 + 2
    assert config["broker_pool_limit"] > 24
    # A process takes only one message per thread: none waits behind a busy thread.
    assert config["worker_prefetch_multiplier"] == 1
    assert config["task_acks_late"] is True


def test_the_setting_is_read_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AUTHQ_WORKER_CONCURRENCY", "3")
    assert Settings(redis_url=REDIS, _env_file=None).worker_concurrency == 3  # type: ignore[call-arg]
