"""Fleet-wide rate limits and pool slots (contract §8) against the session's real Redis.

Grant times come from the Redis clock the Lua script itself read (``RateLimiter.attempt``),
so the sliding-window checks are exact rather than blurred by client-side thread jitter.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import redis

from tasks.provider.limiter import UNIT_SECONDS, PoolSemaphore, RateLimiter
from tests.support.helpers import ROOT

EPSILON = 2e-6  # server times come back as float epoch seconds: allow a microsecond or two


def unique(name: str) -> str:
    return f"test:limits:{name}:{secrets.token_hex(6)}"


def hammer(limiter: RateLimiter, key: str, limit: int, window: float, until: float, grants: list[float],
           lock: threading.Lock) -> None:
    """Take permits until ``until`` (time.time()), sleeping each returned wait in between."""
    while (now := time.time()) < until:
        wait, server_time = limiter.attempt(key, limit, window)
        if wait == 0.0:
            with lock:
                grants.append(server_time)
        else:
            time.sleep(min(wait, max(0.0, until - now)))


def assert_sliding(grants: list[float], limit: int, window: float) -> None:
    """No interval of length ``window`` holds more than ``limit`` grants: any limit+1 in a row span it."""
    ordered = sorted(grants)
    for first, last in zip(ordered, ordered[limit:], strict=False):
        assert last - first >= window - EPSILON, f"{limit + 1} grants within {last - first:.6f}s: {ordered}"


def run_threads(count: int, target: Callable[[], None]) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()


def test_units() -> None:
    assert UNIT_SECONDS == {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def test_sliding_window_across_threads(redis_client: redis.Redis) -> None:
    limiter, key, grants, lock = RateLimiter(redis_client), unique("rate"), [], threading.Lock()
    until = time.time() + 3.0
    run_threads(4, lambda: hammer(limiter, key, 2, 1.0, until, grants, lock))
    assert_sliding(grants, 2, 1.0)
    assert 4 <= len(grants) <= 6, grants  # near the limit: 2 now, 2 after 1 s, 2 after 2 s


def test_wait_is_positive_and_accurate(redis_client: redis.Redis) -> None:
    limiter, key = RateLimiter(redis_client), unique("wait")
    assert limiter.try_acquire(key, 1, 1.0) == 0.0
    wait = limiter.try_acquire(key, 1, 1.0)
    assert 0.8 < wait <= 1.0
    time.sleep(wait / 2)
    remaining = limiter.try_acquire(key, 1, 1.0)  # still denied half-way, with the rest to wait
    assert 0.0 < remaining <= wait / 2 + 0.001
    assert remaining > wait / 2 - 0.2
    time.sleep(remaining)
    assert limiter.try_acquire(key, 1, 1.0) == 0.0  # granted once the returned wait has passed


def test_denials_take_no_permit(redis_client: redis.Redis) -> None:
    limiter, key = RateLimiter(redis_client), unique("deny")
    assert limiter.try_acquire(key, 2, 5.0) == 0.0
    assert limiter.try_acquire(key, 2, 5.0) == 0.0
    for _ in range(20):  # no burst beyond the limit, however hard it is asked
        assert limiter.try_acquire(key, 2, 5.0) > 0.0
    assert redis_client.zcard(key) == 2  # denials log nothing, so they never push the window out


def test_keys_do_not_interfere(redis_client: redis.Redis) -> None:
    limiter, a, b = RateLimiter(redis_client), unique("a"), unique("b")
    assert limiter.try_acquire(a, 1, 5.0) == 0.0
    assert limiter.try_acquire(a, 1, 5.0) > 0.0
    assert limiter.try_acquire(b, 1, 5.0) == 0.0
    assert limiter.try_acquire(b, 1, 5.0) > 0.0


def concurrency(semaphore: PoolSemaphore, pool: str, limit: int, threads: int, seconds: float) -> tuple[int, int]:
    """Threads acquire, hold ~20 ms and release; returns (most holders seen at once, total leases)."""
    lock, state = threading.Lock(), {"holders": 0, "max": 0, "total": 0}
    until = time.time() + seconds

    def worker() -> None:
        while time.time() < until:
            lease = semaphore.try_acquire(pool, limit, 5.0)
            if lease is None:
                time.sleep(0.002)
                continue
            with lock:
                state["holders"] += 1
                state["max"] = max(state["max"], state["holders"])
                state["total"] += 1
            time.sleep(0.02)
            with lock:  # leave the count before releasing, so the count never exceeds real holders
                state["holders"] -= 1
            semaphore.release(pool, lease)

    run_threads(threads, worker)
    return state["max"], state["total"]


def test_semaphore_limit_one_never_two_holders(redis_client: redis.Redis) -> None:
    most, total = concurrency(PoolSemaphore(redis_client), unique("pool1"), 1, 4, 1.5)
    assert most == 1
    assert total >= 10


def test_unreleased_lease_frees_after_lease_seconds(redis_client: redis.Redis) -> None:
    semaphore, pool = PoolSemaphore(redis_client), unique("crash")
    assert semaphore.wait_hint(pool) == 0.0
    assert semaphore.try_acquire(pool, 1, 0.4) is not None  # a holder that "crashes": never releases
    assert semaphore.try_acquire(pool, 1, 0.4) is None
    hint = semaphore.wait_hint(pool)
    assert 0.0 < hint <= 0.4
    time.sleep(hint)
    assert semaphore.try_acquire(pool, 1, 0.4) is not None


def test_semaphore_limit_three(redis_client: redis.Redis) -> None:
    semaphore, pool = PoolSemaphore(redis_client), unique("pool3")
    leases = [semaphore.try_acquire(pool, 3, 10.0) for _ in range(3)]
    assert all(leases)
    assert semaphore.try_acquire(pool, 3, 10.0) is None
    semaphore.release(pool, leases[0])  # type: ignore[arg-type]
    assert semaphore.try_acquire(pool, 3, 10.0) is not None
    assert semaphore.try_acquire(pool, 3, 10.0) is None
    most, _ = concurrency(semaphore, unique("pool3t"), 3, 6, 1.0)
    assert most == 3


def test_keys_get_a_ttl(redis_client: redis.Redis) -> None:
    limiter, semaphore = RateLimiter(redis_client), PoolSemaphore(redis_client)
    rate, pool = unique("ttl"), unique("ttlp")
    limiter.try_acquire(rate, 5, 0.3)
    semaphore.try_acquire(pool, 5, 0.3)
    assert 0 < redis_client.pttl(rate) <= 300
    assert 0 < redis_client.pttl(pool) <= 300
    semaphore.try_acquire(pool, 5, 0.1)  # a shorter lease never shortens the key under a longer one
    assert redis_client.pttl(pool) > 100
    time.sleep(0.4)
    assert redis_client.exists(rate, pool) == 0  # idle limiters and pools leave nothing behind


# A separate process: 3 threads hammering the same key from a fresh interpreter and client.
CHILD = """
import json, os, sys, threading, time
import redis
from tasks.provider.limiter import RateLimiter
key, limit, window = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
start, until = float(sys.argv[4]), float(sys.argv[5])
limiter, grants, lock = RateLimiter(redis.Redis.from_url(os.environ["LIMITS_REDIS_URL"])), [], threading.Lock()
time.sleep(max(0.0, start - time.time()))
def run():
    while (now := time.time()) < until:
        wait, at = limiter.attempt(key, limit, window)
        if wait == 0.0:
            with lock:
                grants.append(at)
        else:
            time.sleep(min(wait, max(0.0, until - now)))
threads = [threading.Thread(target=run) for _ in range(3)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps(grants))
"""


def test_sliding_window_is_fleet_wide_across_processes(redis_server) -> None:  # type: ignore[no-untyped-def]
    key, limit, window = unique("fleet"), 4, 1.0
    start = time.time() + 1.5  # both children start hammering together, after their imports
    argv = [sys.executable, "-c", CHILD, key, str(limit), str(window), str(start), str(start + 3.0)]
    env = {**os.environ, "LIMITS_REDIS_URL": redis_server.url}
    children = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for _ in range(2)]
    results = []
    for child in children:
        out, err = child.communicate(timeout=30)
        assert child.returncode == 0, err.decode()
        results.append(json.loads(out))
    assert all(results), results  # both processes really took part
    grants = [at for result in results for at in result]
    assert_sliding(grants, limit, window)  # a per-process limit would let 8 through per window
    assert 8 <= len(grants) <= 12, grants
