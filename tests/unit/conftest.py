"""Unit tests' own Redis: a module that flushes its data gets a redis-server of its own (the
session's Redis is shared by tests that keep their records apart by tenant, not by flushing)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis

from authq.redis_server import RedisServer, start_redis
from tests.support.leakcheck import remember_secret


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("module-redis"), secrets.token_urlsafe(16), appendonly=False)
    remember_secret(server.password)
    yield server
    server.stop()


@pytest.fixture
def db(own_redis: RedisServer) -> Iterator[redis.Redis]:
    """An empty Redis for each test: its data (and a key check) are the test's own."""
    client = own_redis.client()
    client.flushall()
    yield client
    client.close()
