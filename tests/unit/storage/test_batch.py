"""``tasks.storage.batch.Batch``, sent by the sync adapter, against the session's real Redis:
the writes of a batch land in order in one call, a lease is released only by its own token,
a failing command stops the writes queued after it, and a script Redis has forgotten is sent
again."""

from __future__ import annotations

import pytest
import redis

from tasks.model.records import new_id
from tasks.storage.batch import Batch
from tasks.storage.store import run


@pytest.fixture
def names() -> dict[str, str]:
    prefix = f"batch-test:{new_id('b')}"
    return {kind: f"{prefix}:{kind}" for kind in ("string", "zset", "hash", "set", "counter", "lease", "channel")}


def calls(client: redis.Redis, command: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def test_every_write_lands_in_one_call(redis_client, names):  # type: ignore[no-untyped-def]
    redis_client.sadd(names["set"], "a", "b")
    redis_client.zadd(names["zset"], {"kept": 5})
    batch = Batch()
    batch.set(names["string"], "v1")
    batch.set(names["string"], "v2", ex=100)  # in order: the later write wins
    batch.zadd(names["zset"], {"kept": 99.0, "new": 1.5}, nx=True)
    batch.zrem(names["zset"], "absent")
    batch.hincrby(names["hash"], "n", 2)
    batch.hincrbyfloat(names["hash"], "x", 0.25)
    batch.srem(names["set"], "a")
    batch.incrby(names["counter"], -1)
    batch.expire(names["counter"], 50)
    batch.publish(names["channel"], "hello")
    before = calls(redis_client, "evalsha") + calls(redis_client, "eval")
    run(redis_client, batch.op())
    assert calls(redis_client, "evalsha") + calls(redis_client, "eval") - before in (1, 2)  # 2 only after a NOSCRIPT
    assert redis_client.get(names["string"]) == b"v2" and 0 < redis_client.ttl(names["string"]) <= 100
    assert redis_client.zscore(names["zset"], "kept") == 5  # NX: an existing member keeps its score
    assert redis_client.zscore(names["zset"], "new") == 1.5
    assert redis_client.hget(names["hash"], "n") == b"2" and float(redis_client.hget(names["hash"], "x")) == 0.25
    assert redis_client.smembers(names["set"]) == {b"b"}
    assert redis_client.get(names["counter"]) == b"-1" and 0 < redis_client.ttl(names["counter"]) <= 50
    run(redis_client, batch.op())  # executed batches are empty: nothing runs twice
    assert redis_client.hget(names["hash"], "n") == b"2"


def test_a_lease_is_released_only_by_its_own_token(redis_client, names):  # type: ignore[no-untyped-def]
    redis_client.set(names["lease"], "theirs")
    mine = Batch()
    mine.release_lease(names["lease"], "mine")
    run(redis_client, mine.op())
    assert redis_client.get(names["lease"]) == b"theirs"
    theirs = Batch()
    theirs.release_lease(names["lease"], "theirs")
    run(redis_client, theirs.op())
    assert redis_client.exists(names["lease"]) == 0


def test_a_failing_write_stops_the_writes_after_it(redis_client, names):  # type: ignore[no-untyped-def]
    """What the runner relies on: the job's record is the last write of its end, so an end
    whose connector or counts could not be written is not stored as ended either."""
    redis_client.set(names["hash"], "not a hash")
    batch = Batch()
    batch.set(names["counter"], "before")
    batch.hincrby(names["hash"], "n", 1)  # WRONGTYPE
    batch.set(names["string"], "the job's end")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        run(redis_client, batch.op())
    assert redis_client.get(names["counter"]) == b"before"  # a script has no rollback: what ran, stays
    assert redis_client.exists(names["string"]) == 0


def test_a_forgotten_script_is_sent_again(redis_client, names):  # type: ignore[no-untyped-def]
    first = Batch()
    first.set(names["string"], "one")
    run(redis_client, first.op())
    redis_client.script_flush()  # as after a Redis restart
    again = Batch()
    again.set(names["string"], "two")
    run(redis_client, again.op())
    assert redis_client.get(names["string"]) == b"two"


def test_a_failed_guard_writes_nothing_wherever_it_was_queued(redis_client, names):  # type: ignore[no-untyped-def]
    redis_client.set(names["string"], "as read")
    redis_client.set(names["lease"], "held")

    stale = Batch()
    stale.set(names["counter"], "written")
    stale.expect(names["string"], "as read before")  # the record changed meanwhile
    assert run(redis_client, stale.op()) is False
    held = Batch()
    held.expect(names["string"], "as read")
    held.set(names["counter"], "written")
    held.expect_absent(names["lease"])  # queued after a write: still checked before it
    assert run(redis_client, held.op()) is False
    assert redis_client.exists(names["counter"]) == 0

    redis_client.delete(names["lease"])
    fresh = Batch()
    fresh.expect(names["string"], "as read")
    fresh.expect_absent(names["lease"])
    fresh.set(names["counter"], "written")
    assert run(redis_client, fresh.op()) is True
    assert redis_client.get(names["counter"]) == b"written"
    missing = Batch()
    missing.expect(names["hash"], "anything")  # a missing key holds no value
    missing.set(names["counter"], "again")
    assert run(redis_client, missing.op()) is False and redis_client.get(names["counter"]) == b"written"


def test_values_reach_redis_byte_for_byte(redis_client, names):  # type: ignore[no-untyped-def]
    """The commands travel as one JSON argument: quotes, escapes, non-ASCII text, control
    characters and bytes that are not UTF-8 (a value read back from Redis) all land, and
    guard, exactly as given."""
    awkward = 'a "quoted" \\ back\\slash, caf\u00e9 \U0001f600, tab\t newline\n nul\x00 end'
    raw = b"\xff\xfe not utf-8 \x80"
    batch = Batch()
    batch.set(names["string"], awkward)
    batch.set(names["counter"], raw)
    batch.hset(names["hash"], awkward, "v")
    run(redis_client, batch.op())
    assert redis_client.get(names["string"]) == awkward.encode()
    assert redis_client.get(names["counter"]) == raw
    assert redis_client.hget(names["hash"], awkward) == b"v"
    guarded = Batch()
    guarded.expect(names["string"], awkward)
    guarded.expect(names["counter"], raw)
    guarded.set(names["set"], "written")
    assert run(redis_client, guarded.op()) is True and redis_client.get(names["set"]) == b"written"
    wrong = Batch()
    wrong.expect(names["counter"], raw + b"\x00")
    wrong.set(names["set"], "again")
    assert run(redis_client, wrong.op()) is False and redis_client.get(names["set"]) == b"written"
