"""Writes that land together: a batch of commands run by one Lua script, in one round trip.

A ``MULTI``/``EXEC`` transaction is atomic too, but costs a reply per command (``QUEUED``
for each, then their results), and the end of a job queues about fourteen of them: a
worker spends longer reading those replies than Redis spends running the commands. A
script runs the same commands, as atomically, and answers once.

``Batch`` offers the few pipeline methods the worker's writes use, with redis-py's
signatures, so code that queues writes (``commands.write_connector``) takes a batch or a
transaction (``steps.Transaction``). Sent as an operation (``Batch.op``, ``steps.py``). Every
command's first argument is its key, declared to Redis as a key (``KEYS``), as scripts
should; the commands themselves travel as one JSON array (``ARGV[1]``), which the script
decodes: a job's end queues some 35 commands, about 170 arguments; sent as arguments, that end
cost the worker ~185 µs (redis-py packs each one) and Redis ~62 µs, as one JSON argument ~64
and ~41 µs (measured on a job's real end). Three commands are not Redis's own:
``release_lease``, the compare-and-delete that gives a run lease back only if it is still this
run's (``leases.py``), and the guards ``expect`` / ``expect_absent`` / ``expect_present``,
checked before anything is written: a batch whose guard fails writes nothing (a
compare-and-set over several keys, in the same round trip).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from tasks.storage.steps import Lua, Op, Script

# ARGV[1]: a JSON array holding, for each command, its name, its argument count, then its
# arguments (strings); the first argument (the key) is given as its index in KEYS. The guards
# (``expect``, ``expect_absent``, ``expect_present``) come first (``Batch`` puts them there): if
# one fails, nothing is written and the script answers 0.
_RUN = Lua("""
local argv = cjson.decode(ARGV[1])
local n, i = #argv, 1
while i <= n do
  local name = argv[i]
  if name == 'expect' then
    if redis.call('get', KEYS[tonumber(argv[i + 2])]) ~= argv[i + 3] then return 0 end
  elseif name == 'expect_absent' then
    if redis.call('exists', KEYS[tonumber(argv[i + 2])]) == 1 then return 0 end
  elseif name == 'expect_present' then
    if redis.call('exists', KEYS[tonumber(argv[i + 2])]) == 0 then return 0 end
  else
    break
  end
  i = i + 2 + tonumber(argv[i + 1])
end
while i <= n do
  local name, count, key = argv[i], tonumber(argv[i + 1]), KEYS[tonumber(argv[i + 2])]
  if name == 'release_lease' then
    if redis.call('get', key) == argv[i + 3] then redis.call('del', key) end
  else
    redis.call(name, key, unpack(argv, i + 3, i + 1 + count))
  end
  i = i + 2 + count
end
return 1
""")


class Batch:
    """Queue writes, then send ``op()`` to run them atomically in one call."""

    def __init__(self) -> None:
        self._keys: dict[str, int] = {}
        self._guards: list[str | int] = []
        self._argv: list[str | int] = []

    def _add(self, name: str, key: str, *args: str, guard: bool = False) -> None:
        index = self._keys.setdefault(key, len(self._keys) + 1)
        (self._guards if guard else self._argv).extend((name, len(args) + 1, index, *args))

    def set(self, key: str, value: str | bytes, ex: int | None = None) -> None:
        if ex is None:
            self._add("set", key, _text(value))
        else:
            self._add("set", key, _text(value), "EX", str(ex))

    def incrby(self, key: str, amount: int = 1) -> None:
        self._add("incrby", key, str(amount))

    def delete(self, key: str) -> None:
        self._add("del", key)

    def expire(self, key: str, seconds: int) -> None:
        self._add("expire", key, str(seconds))

    def srem(self, key: str, member: str) -> None:
        self._add("srem", key, member)

    def sadd(self, key: str, member: str) -> None:
        self._add("sadd", key, member)

    def hset(self, key: str, field: str, value: str) -> None:
        self._add("hset", key, field, value)

    def hdel(self, key: str, field: str) -> None:
        self._add("hdel", key, field)

    def publish(self, channel: str, message: str) -> None:
        self._add("publish", channel, message)

    def zadd(self, key: str, mapping: Mapping[str, float], nx: bool = False, lt: bool = False) -> None:
        pairs = [part for member, score in mapping.items() for part in (repr(float(score)), member)]
        flags = ("NX",) * nx + ("LT",) * lt
        self._add("zadd", key, *flags, *pairs)

    def zrem(self, key: str, member: str) -> None:
        self._add("zrem", key, member)

    def zremrangebyscore(self, key: str, min: float | str, max: float | str) -> None:  # noqa: A002 - redis-py's names
        self._add("zremrangebyscore", key, _bound(min), _bound(max))

    def hincrby(self, key: str, field: str, amount: int = 1) -> None:
        self._add("hincrby", key, field, str(amount))

    def hincrbyfloat(self, key: str, field: str, amount: float) -> None:
        self._add("hincrbyfloat", key, field, repr(float(amount)))

    def expect(self, key: str, value: str | bytes) -> None:
        """Guard: write nothing unless ``key`` holds exactly ``value`` when the batch runs."""
        self._add("expect", key, _text(value), guard=True)

    def expect_absent(self, key: str) -> None:
        """Guard: write nothing if ``key`` exists when the batch runs."""
        self._add("expect_absent", key, guard=True)

    def expect_present(self, key: str) -> None:
        """Guard: write nothing unless ``key`` exists when the batch runs."""
        self._add("expect_present", key, guard=True)

    def release_lease(self, key: str, token: str) -> None:
        """Delete ``key`` only if it still holds ``token``."""
        self._add("release_lease", key, token)

    def op(self) -> Op[bool]:
        """The batch, as one round trip (none when empty): False if a guard failed (then
        nothing was written). The batch is empty again once it is sent."""
        if not (self._argv or self._guards):
            return True
        commands = json.dumps(self._guards + self._argv, ensure_ascii=False, separators=(",", ":"))
        step = Script(_RUN, list(self._keys), [commands.encode("utf-8", "surrogateescape")])
        self._keys, self._guards, self._argv = {}, [], []
        return bool((yield step))


def _text(value: str | bytes) -> str:
    """A value as JSON can carry it: bytes that are not UTF-8 (a value read back from Redis, which
    holds any bytes) pass as surrogates, and ``op`` encodes them back to the very same bytes."""
    return value if isinstance(value, str) else value.decode("utf-8", "surrogateescape")


def _bound(value: float | str) -> str:
    return value if isinstance(value, str) else repr(float(value))
