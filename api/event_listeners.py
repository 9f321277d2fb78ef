"""What a listener of the event hub (``api/event_hub.py``) is handed: notices, in order, with
``MISSED`` standing for whatever may have been lost; and the hub's inbox router, which hands the
messages addressed by channel to that channel's listeners."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Notice:
    """A message published on the channel, or ``missed``: messages may have been lost (the
    connection dropped, or the listener fell behind), so re-read what the channel is about."""

    data: bytes = b""
    missed: bool = False


MISSED = Notice(missed=True)


class Listener:
    """One consumer's view of a channel: the notices published since it joined, in order."""

    def __init__(self, channel: str, size: int) -> None:
        self.channel = channel
        self._size = size
        self._notices: deque[Notice] = deque()
        self._arrived = asyncio.Event()
        self.joining = True  # until its subscription is confirmed: a resubscription owes it no MISSED

    def deliver(self, notice: Notice) -> None:
        if self._notices and self._notices[0].missed:
            return  # the re-read MISSED asks for, made after this, covers it too
        if notice.missed or len(self._notices) >= self._size:
            self._notices.clear()  # whatever waited is covered by the re-read MISSED asks for
            notice = MISSED
        self._notices.append(notice)
        self._arrived.set()

    async def get(self, timeout: float) -> Notice | None:
        """The next notice, or None when none came within ``timeout`` seconds."""
        if not self._notices:
            self._arrived.clear()
            try:
                async with asyncio.timeout(max(0.0, timeout)):
                    await self._arrived.wait()
            except TimeoutError:
                return None
        return self._notices.popleft()

    def newest(self, first: Notice) -> Notice:
        """``first`` (just taken by ``get``) and every notice waiting behind it, as one: the
        newest, or ``MISSED`` if any of them was."""
        notices = [first, *self._notices]
        self._notices.clear()
        return MISSED if any(n.missed for n in notices) else notices[-1]

    def clear(self) -> None:
        """Drop the waiting notices (a consumer about to re-read the state needs none of them)."""
        self._notices.clear()

    @property
    def waiting(self) -> int:
        return len(self._notices)


class InboxRouter(Listener):
    """The hub's own listener on its process's inbox channel: each message says which channel it
    is about (``{channel}\n{data}``) and goes to the listeners addressed by that channel;
    ``MISSED`` goes to all of them."""

    def __init__(self, channel: str, size: int, addressed: dict[str, set[Listener]]) -> None:
        super().__init__(channel, size)
        self._addressed = addressed

    def deliver(self, notice: Notice) -> None:
        if notice.missed:
            for group in self._addressed.values():
                for listener in group:
                    listener.deliver(MISSED)
            return
        about, newline, data = notice.data.partition(b"\n")
        for listener in self._addressed.get(about.decode(), ()) if newline else ():
            listener.deliver(Notice(data=data))
