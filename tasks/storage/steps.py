"""A store operation as data: the round trips it makes to Redis, and what it makes of the replies.

An operation (``Op``) is a generator: each ``yield`` is one round trip, and the reply is sent
back in; what it returns is the operation's result. The operations are written once
(``commands.py``, ``states.py``); an adapter sends their round trips over its client, as
redis-py's sync and asyncio clients share one definition of each command and differ only in
how they send it: ``store.py`` (sync, for the workers) and ``api/store.py`` (asyncio, for the
API, auto-pipelined). Counting an operation's ``yield`` statements counts its round trips.

A round trip is one of:

- a command, as the tuple of its arguments (``("GET", key)``); the reply as redis-py parses
  it (``SET`` answers True or None, ``GET`` bytes or None);
- a ``Script`` call (``EVALSHA``; its text is sent only if Redis answers ``NOSCRIPT``);
- a ``Transaction``: commands between ``MULTI`` and ``EXEC``; the reply is their replies;
- a ``CheckAndSet``: ``WATCH`` a key, read it, and write what ``decide`` makes of its value in
  a transaction that fails if the key changed meanwhile (True written, False declined, None
  changed meanwhile). It is the one round trip that is several (WATCH, GET, MULTI/EXEC).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
Command = tuple[Any, ...]


class Lua:
    """A Lua script's text, and its SHA-1 (what ``EVALSHA`` names it by)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Script:
    lua: Lua
    keys: list[str]
    args: list[Any]


@dataclass(slots=True)
class Transaction:
    """Commands run between ``MULTI`` and ``EXEC``, queued with redis-py's signatures."""

    commands: list[Command] = field(default_factory=list)

    def set(self, key: str, value: str | bytes, ex: int | None = None) -> None:
        self.commands.append(("SET", key, value) if ex is None else ("SET", key, value, "EX", ex))

    def delete(self, *names: str) -> None:
        self.commands.append(("DEL", *names))

    def zadd(self, key: str, mapping: Mapping[str, float], nx: bool = False, lt: bool = False) -> None:
        pairs = [part for member, score in mapping.items() for part in (score, member)]
        self.commands.append(("ZADD", key, *("NX",) * nx, *("LT",) * lt, *pairs))

    def zrem(self, key: str, member: str) -> None:
        self.commands.append(("ZREM", key, member))

    def zremrangebyscore(self, key: str, min: float | str, max: float | str) -> None:  # noqa: A002 - redis-py's names
        self.commands.append(("ZREMRANGEBYSCORE", key, min, max))

    def expire(self, key: str, seconds: int) -> None:
        self.commands.append(("EXPIRE", key, seconds))

    def srem(self, key: str, member: str) -> None:
        self.commands.append(("SREM", key, member))

    def sadd(self, key: str, member: str) -> None:
        self.commands.append(("SADD", key, member))

    def hset(self, key: str, field: str, value: str) -> None:
        self.commands.append(("HSET", key, field, value))

    def hdel(self, key: str, field: str) -> None:
        self.commands.append(("HDEL", key, field))


@dataclass(frozen=True, slots=True)
class CheckAndSet:
    key: str
    decide: Callable[[bytes | str | None], Transaction | None]   # the key's value -> what to write (None: nothing)


Step = Command | Script | Transaction | CheckAndSet
Op = Generator[Step, Any, T]
