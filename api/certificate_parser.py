"""Certificate uploads are parsed in child processes, a few at a time, each within a deadline.

Opening an encrypted key runs its key derivation, and ``cryptography`` holds the GIL while
it does: in a thread it would still stop the event loop (``/healthz`` included) for as long.
A child process holds neither. Each parse gets a process of its own, forked from a small
server process that has the parsing code loaded (multiprocessing's ``forkserver``: cheap to
fork, and never a fork of the API with its sockets and threads); a parse over its deadline
is killed. The derivation's cost is bounded before any of this (``refuse_costly_key``); the
deadline is the guard for whatever else a hostile bundle finds.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tasks.errors import CertificateParserBusy, RequestInvalid
from tasks.provider import certificates
from tasks.provider.certificates import ParsedCertificate, parse_in_child

SLOTS = 2               # parses at once (a core each)
DEADLINE_SECONDS = 10.0  # one parse; the costliest key accepted opens in well under a second
QUEUE_SECONDS = 10.0    # waiting for a slot; beyond, the upload is answered 503


def _run(context: Any, pem: str, passphrase: str | None, deadline: float) -> tuple[str, Any]:
    """In a thread: start the child, wait for its answer up to ``deadline``, always reap it."""
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=parse_in_child, args=(send, pem, passphrase), daemon=True,
                            name="authq-certificate-parse")
    try:
        child.start()
        send.close()
        if not receive.poll(deadline):
            return "timeout", None
        return tuple(receive.recv())
    except EOFError:  # the child died without answering
        return "invalid", {"certificate": ["The certificate could not be parsed."]}
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join(5)


class CertificateParser:
    def __init__(self, slots: int = SLOTS, deadline: float = DEADLINE_SECONDS,
                 queue_seconds: float = QUEUE_SECONDS) -> None:
        self.deadline = deadline
        self.queue_seconds = queue_seconds
        self._slots = asyncio.Semaphore(slots)
        self._threads = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="authq-certificates")
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload([certificates.__name__])

    async def parse(self, pem: str, passphrase: str | None) -> ParsedCertificate:
        """The parsed bundle; ``RequestInvalid`` as ``parse_certificate`` raises it (or at
        ``certificate`` past the deadline); ``CertificateParserBusy`` when no slot freed in time."""
        try:
            await asyncio.wait_for(self._slots.acquire(), self.queue_seconds)
        except TimeoutError:
            raise CertificateParserBusy() from None
        running = asyncio.get_running_loop().run_in_executor(
            self._threads, _run, self._context, pem, passphrase, self.deadline)
        # The slot is free when the child is gone, not when this request is: a client that
        # leaves does not make room for more children.
        running.add_done_callback(lambda _: self._slots.release())
        kind, value = await asyncio.shield(running)
        if kind == "parsed":
            return value  # type: ignore[no-any-return]
        if kind == "timeout":
            raise RequestInvalid.one("certificate", f"The certificate took more than {self.deadline:g} seconds to "
                                                    "parse and was refused.")
        raise RequestInvalid(value)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
