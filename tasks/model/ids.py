"""Cheap unique ids for things that need uniqueness, not secrecy (request ids, Celery task ids).

``uuid.uuid4()`` reads 16 bytes from the kernel and builds a ``UUID`` object for each id
(about 3 µs, called several times per accepted request). Here each process draws a random
prefix once (again after a fork) and counts: ids stay unique across processes and restarts,
in UUID form so logs and tools treat them as ids. Never use these where an id must be
unguessable: record ids (``records.new_id``) stay fully random.
"""

from __future__ import annotations

import itertools
import os
import secrets


class _Source:
    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        raw = secrets.token_hex(10)  # 76 of these 80 random bits make the prefix
        self.prefix = f"{raw[:8]}-{raw[8:12]}-4{raw[12:15]}-{'89ab'[int(raw[15], 16) % 4]}{raw[16:19]}-{raw[19]}"
        self.counter = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter) % (1 << 44):011x}"


_source = _Source()
os.register_at_fork(after_in_child=_source.reseed)


def unique_id() -> str:
    """A UUID-shaped (version 4 layout) id, unique among every id this function returns."""
    return _source.next()
