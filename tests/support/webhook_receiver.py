"""A real webhook receiver on loopback: it verifies every message with the ``standardwebhooks``
package (the reference implementation of Standard Webhooks, not authq's signing code), records
each one with its ``webhook-id``, and answers as told.

Each endpoint is a path, ``/hooks/<name>``, with its own secret (``expect``) and its own script
of answers (``answer``): a status (``500``, ``410``), ``(429, {"Retry-After": "3"})``, or
``"hang"`` (hold the request for ``hang_seconds``); after the script, ``200``. A refused
connection is a port nobody listens on (``refusing_url``). Runs on its own thread and event
loop, as ``provider.py`` does; usable from sync code (a bench) and async tests alike.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

Answer = int | tuple[int, dict[str, str]] | str


@dataclass
class Received:
    endpoint: str
    id: str
    type: str
    body: dict[str, Any]
    raw: str
    headers: dict[str, str]
    at: float                       # time.time() when it arrived
    verified: bool
    answered: int | None = None


@dataclass
class Receiver:
    base_url: str = ""
    secrets: dict[str, str] = field(default_factory=dict)
    scripts: dict[str, list[Answer]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    hang_seconds: float = 60.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, name: str) -> str:
        return f"{self.base_url}/hooks/{name}"

    def expect(self, name: str, secret: str) -> None:
        """Messages to ``name`` are verified with ``secret`` (the one POST /webhooks answered)."""
        self.secrets[name] = secret

    def answer(self, name: str, *answers: Answer) -> None:
        self.scripts.setdefault(name, []).extend(answers)

    def of(self, name: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.endpoint == name]

    async def wait_for(self, name: str, until: Callable[[list[Received]], bool],
                       timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.of(name)
            if until(got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"the receiver's {name!r} did not get what was expected in {timeout}s: "
                                     f"{[(r.type, r.answered) for r in got]}")
            await asyncio.sleep(0.05)


def _app(receiver: Receiver) -> web.Application:
    async def hook(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        raw = await request.text()
        headers = {k.lower(): v for k, v in request.headers.items()}
        secret = receiver.secrets.get(name)
        verified = False
        if secret is not None:
            try:
                Webhook(secret).verify(raw, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        seen = Received(name, headers.get("webhook-id", ""), str(body.get("type", "")), body, raw, headers,
                        time.time(), verified)
        with receiver.lock:
            receiver.received.append(seen)
            script = receiver.scripts.get(name) or []
            planned: Answer = script.pop(0) if script else 200
        if not verified:
            seen.answered = 400
            return web.json_response({"message": "signature not verified"}, status=400)
        if planned == "hang":
            await asyncio.sleep(receiver.hang_seconds)
            planned = 200
        status, extra = planned if isinstance(planned, tuple) else (int(planned), {})
        seen.answered = status
        return web.Response(status=status, headers=extra, text="ok")

    app = web.Application()
    app.router.add_post("/hooks/{name}", hook)
    return app


def refusing_url() -> str:
    """An http URL on loopback where nothing listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/refused"


def start_receiver() -> tuple[Receiver, Callable[[], None]]:
    receiver = Receiver()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, web.AppRunner] = {}

    async def serve() -> None:
        runner = web.AppRunner(_app(receiver), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        receiver.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        box["runner"] = runner
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()),
                              name="test-webhook-receiver", daemon=True)
    thread.start()
    ready.wait(10)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return receiver, stop
