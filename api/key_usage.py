"""When each API key was last used (``authq keys list``), at the cost of one write a minute a key.

A request does not write: this process remembers when it last noted each key and sends the
note (``tasks.storage.api_keys.touch``, which itself writes only if the stored time is a minute
old, whatever other API processes did) only when that was a minute ago or more. The clock is
this process's monotonic one for the throttle, the wall clock for what is stored.
"""

from __future__ import annotations

import time

from api.store import ApiStore
from tasks.storage.api_keys import TOUCH_EVERY_SECONDS, touch


class KeyUsage:
    def __init__(self, store: ApiStore) -> None:
        self.store = store
        self._noted: dict[str, float] = {}   # key id -> monotonic time of this process's last note

    def due(self, key_id: str) -> bool:
        """Whether this use is to be noted (``note``): the first in a minute, in this process.
        (A check without an await: it is made on every request, and is almost always False.)"""
        last = self._noted.get(key_id)
        return last is None or time.monotonic() - last >= TOUCH_EVERY_SECONDS

    async def note(self, key_id: str) -> None:
        self._noted[key_id] = time.monotonic()
        await self.store.run(touch(key_id, time.time()))
