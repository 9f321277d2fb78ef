"""The real app on a real loopback port, in a thread with its own event loop.

A test's client then shares nothing with the server but the socket: what it measures is what
a client of a separate process would see (the two still share the interpreter)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

from aiohttp import web


def serve_in_thread(app: web.Application, name: str = "test-api", port: int = 0) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1:``port`` (0: a free one) in a thread with its own loop; yield its base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    started = threading.Event()
    bound: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        bound.append(runner.addresses[0][1])

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    assert started.wait(30), "the API did not start"
    try:
        yield f"http://127.0.0.1:{bound[0]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
