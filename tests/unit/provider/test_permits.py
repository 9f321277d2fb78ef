"""The permit script (``tasks/provider/permits.py``, ``limit_scripts.PERMIT``) against real Redis: what
the workers' gate and the API's governor both take.

Proven here: the rate limit never grants more than N in any window (grant times from the Redis
clock the script read), a pool never has more than ``limit`` slots held across two connectors
sharing it, both are taken or neither, a slot nobody frees lapses with its lease (its record
with it), a freed slot is announced on the pool's channel, and a provider's block holds the
permits it should.
"""

from __future__ import annotations

import secrets
import threading
import time

import pytest
import redis

from tasks.errors import Deferred
from tasks.model.records import ConnectionPool, utcnow
from tasks.provider import permits
from tasks.provider.connector_limits import Limits
from tasks.provider.gate import Gate
from tasks.storage import schema
from tasks.storage.store import run
from tests.unit.provider.test_limits import assert_sliding, run_threads


def pool(tenant: str, limit: int, timeout: int | None = None) -> ConnectionPool:
    return ConnectionPool(id=secrets.randbelow(10**9) + 1, tenant=tenant, name="pool", limit=limit, timeout=timeout,
                          created_at=utcnow())


def limits(rate: int, window: float, shared: ConnectionPool | None = None, tenant: str | None = None) -> Limits:
    owner = shared.tenant if shared else tenant or f"t-permits-{secrets.token_hex(4)}"
    return Limits(owner, f"con_{secrets.token_hex(16)}", rate_limit=rate, window_seconds=window, pool=shared)


def take(client: redis.Redis, governed: Limits, lease: float = 5.0, host: str = "",
         record: bool = False) -> tuple[str, permits.Decision]:
    permit_id = f"pmt_{secrets.token_hex(16)}"
    return permit_id, run(client, permits.take(governed, permit_id, lease, host=host, record=record))


def test_the_rate_limit_never_grants_more_than_n_in_any_window(redis_client: redis.Redis) -> None:
    governed, grants, lock = limits(3, 0.5), [], threading.Lock()
    until = time.time() + 2.0

    def hammer() -> None:
        while time.time() < until:
            _, decision = take(redis_client, governed)
            if decision.granted:
                with lock:
                    grants.append(decision.server_time)
            else:
                assert decision.status == permits.RATE_LIMITED and decision.code == "rate_limited"
                time.sleep(min(decision.wait, 0.05))

    run_threads(4, hammer)
    assert_sliding(grants, 3, 0.5)
    assert 9 <= len(grants) <= 15, grants  # near the limit: 3 per half second for 2 s


def test_a_pool_never_has_more_than_its_limit_in_flight_across_two_connectors(redis_client: redis.Redis) -> None:
    shared = pool(f"t-permits-{secrets.token_hex(4)}", 2)
    first, second = limits(10_000, 1.0, shared), limits(10_000, 1.0, shared)
    lock, state = threading.Lock(), {"holders": 0, "most": 0, "total": 0, "by": set()}
    until = time.time() + 1.5

    def worker(governed: Limits) -> None:
        while time.time() < until:
            permit_id, decision = take(redis_client, governed)
            if not decision.granted:
                assert decision.code == "pool_exhausted" and 0 < decision.slot_wait <= 5.0
                time.sleep(0.002)
                continue
            with lock:
                state["holders"] += 1
                state["most"] = max(state["most"], state["holders"])
                state["total"] += 1
                state["by"].add(governed.connector_id)
            time.sleep(0.02)
            with lock:  # leave the count before freeing, so the count never exceeds real holders
                state["holders"] -= 1
            run(redis_client, permits.free_slot(shared.tenant, shared.id, permit_id))

    threads = [threading.Thread(target=worker, args=(governed,)) for governed in (first, second) * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert state["most"] == 2, state
    assert state["total"] >= 20 and state["by"] == {first.connector_id, second.connector_id}, state


def test_both_or_neither(redis_client: redis.Redis) -> None:
    shared = pool(f"t-permits-{secrets.token_hex(4)}", 1)
    governed = limits(2, 30.0, shared)
    slots = schema.pool_slots(shared.tenant, shared.id)
    held, decision = take(redis_client, governed)
    assert decision.granted and redis_client.zcard(governed.rate_key) == 1 and redis_client.zcard(slots) == 1
    # The pool is full: no rate permit is spent on a request that cannot go.
    for _ in range(5):
        _, refused = take(redis_client, governed)
        assert refused.status == permits.POOL_EXHAUSTED and refused.rate_wait == 0.0
    assert redis_client.zcard(governed.rate_key) == 1
    run(redis_client, permits.free_slot(shared.tenant, shared.id, held))
    assert take(redis_client, governed)[1].granted
    run(redis_client, permits.free_slot(shared.tenant, shared.id, redis_client.zrange(slots, 0, 0)[0].decode()))
    # The rate limit is spent: no slot is held by a request that cannot go.
    _, refused = take(redis_client, governed)
    assert refused.status == permits.RATE_LIMITED and 29 < refused.rate_wait <= 30
    assert redis_client.zcard(slots) == 0


def test_a_slot_nobody_frees_lapses_with_its_lease_and_its_record_with_it(redis_client: redis.Redis) -> None:
    shared = pool(f"t-permits-{secrets.token_hex(4)}", 1)
    governed = limits(100, 1.0, shared)
    permit_id, decision = take(redis_client, governed, lease=0.4, record=True)
    assert decision.granted
    record = schema.permit(shared.tenant, permit_id)
    assert 0 < redis_client.pttl(record) <= 400
    _, refused = take(redis_client, governed, lease=0.4)
    assert refused.code == "pool_exhausted" and 0 < refused.slot_wait <= 0.4
    time.sleep(refused.slot_wait + 0.01)
    assert redis_client.exists(record) == 0
    assert run(redis_client, permits.release(shared.tenant, permit_id)) is False  # lapsed: nothing to free
    assert take(redis_client, governed, lease=0.4)[1].granted


def test_a_release_frees_the_slot_once_and_says_so_on_the_pools_channel(redis_client: redis.Redis) -> None:
    shared = pool(f"t-permits-{secrets.token_hex(4)}", 1)
    governed = limits(100, 1.0, shared)
    listening = redis_client.pubsub()
    listening.subscribe(schema.pool_freed(shared.tenant, shared.id))
    assert listening.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]
    permit_id, _ = take(redis_client, governed, record=True)
    assert run(redis_client, permits.release(shared.tenant, permit_id)) is True
    message = listening.get_message(timeout=2)
    assert message is not None and message["data"] == permit_id.encode()
    assert run(redis_client, permits.release(shared.tenant, permit_id)) is False  # once
    assert listening.get_message(timeout=0.2) is None
    assert run(redis_client, permits.release("another-tenant", permit_id)) is False
    listening.close()


def test_a_permit_without_a_pool_is_released_by_its_record(redis_client: redis.Redis) -> None:
    governed = limits(100, 1.0)
    permit_id, decision = take(redis_client, governed, lease=30.0, record=True)
    assert decision.granted
    assert run(redis_client, permits.release(governed.tenant, permit_id)) is True
    assert run(redis_client, permits.release(governed.tenant, permit_id)) is False


def test_a_block_holds_the_permits_it_names(redis_client: redis.Redis) -> None:
    by_host, everywhere = limits(100, 1.0), limits(100, 1.0)
    run(redis_client, permits.block(by_host, 60, "provider.example:443"))
    assert take(redis_client, by_host, host="elsewhere.example:443")[1].granted   # another host's request goes
    refused = take(redis_client, by_host, host="provider.example:443")[1]
    assert refused.status == permits.BLOCKED and refused.code == "rate_limited" and 59 < refused.wait <= 60
    assert take(redis_client, by_host)[1].status == permits.BLOCKED   # the platform's: whichever host
    run(redis_client, permits.block(everywhere, 999_999, permits.ANY_HOST))
    assert 3599 < redis_client.pttl(everywhere.blocked_key) / 1000 <= 3600  # an hour at most
    assert take(redis_client, everywhere, host="provider.example:443")[1].status == permits.BLOCKED


def test_the_gate_holds_no_slot_while_it_waits_and_announces_the_slot_it_frees(redis_client: redis.Redis) -> None:
    shared = pool(f"t-permits-{secrets.token_hex(4)}", 1)
    governed = limits(1, 30.0, shared)
    slots = schema.pool_slots(shared.tenant, shared.id)
    gate = Gate(redis_client)
    listening = redis_client.pubsub()
    listening.subscribe(schema.pool_freed(shared.tenant, shared.id))
    assert listening.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]
    with gate.permit(governed, "provider.example:443"):
        assert redis_client.zcard(slots) == 1
    message = listening.get_message(timeout=2)
    assert message is not None and message["channel"] == schema.pool_freed(shared.tenant, shared.id).encode()
    assert redis_client.zcard(slots) == 0
    # The rate limit is spent for 30 s: the job is deferred, and holds no slot meanwhile.
    with pytest.raises(Deferred) as deferred, gate.permit(governed, "provider.example:443"):
        raise AssertionError("no permit was free")
    assert deferred.value.reason == "rate_limit" and 29 < deferred.value.delay <= 30
    assert redis_client.zcard(slots) == 0
    listening.close()


def test_a_permit_for_a_kept_record_is_taken_only_while_the_record_is_the_one_stored(
        redis_client: redis.Redis) -> None:
    """``take_if_current``: the record checked in the same script call as the permit; when it
    changed or is gone, nothing is taken and the stored record comes back."""
    import hashlib

    governed = limits(10, 60.0)
    record_key = schema.connector(governed.tenant, governed.connector_id)
    stored = b'{"id": "%s", "status": "authorised"}' % governed.connector_id.encode()
    redis_client.set(record_key, stored)
    digest = hashlib.sha1(stored).hexdigest()

    def take_kept(kept: str) -> permits.Decision | permits.NotCurrent:
        return run(redis_client, permits.take_if_current(governed, f"pmt_{secrets.token_hex(16)}", 5.0, record_key,
                                                         kept))

    granted = take_kept(digest)
    assert isinstance(granted, permits.Decision) and granted.granted
    assert redis_client.zcard(governed.rate_key) == 1
    changed = b'{"id": "%s", "status": "expired"}' % governed.connector_id.encode()
    redis_client.set(record_key, changed)
    assert take_kept(digest) == permits.NotCurrent(changed)
    redis_client.delete(record_key)
    assert take_kept(digest) == permits.NotCurrent(None)
    assert redis_client.zcard(governed.rate_key) == 1  # neither took a permit
    # and the limit is the limit: a kept record current or not, the eleventh in the window waits
    redis_client.set(record_key, stored)
    outcomes = [take_kept(digest) for _ in range(10)]
    assert [isinstance(o, permits.Decision) and o.granted for o in outcomes] == [True] * 9 + [False]
    last = outcomes[-1]
    assert isinstance(last, permits.Decision) and last.status == permits.RATE_LIMITED and last.wait > 0
