"""A provider's answer body, read under the request's deadline and never past 1 MiB.

authq asks for answers unencoded (``Accept-Encoding: identity``). A provider that compresses
anyway (gzip or deflate) is decoded here, under the same limit counted on what it decodes to:
1 MiB of gzip must not become a gigabyte further up. Any other encoding is refused.

The body holds what the request still owns — its pool slot, in the gate's ``permit`` — and gives
it back when it is closed: at its end, or when the limit or the deadline cut it short.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterable, Iterator

import httpx2

from tasks.errors import ProviderUnreachable
from tasks.provider.network import classified, request_deadline

MAX_ANSWER_BYTES = 1024 * 1024
DECODED = {"gzip", "x-gzip", "deflate"}


class AnswerTooLong(ProviderUnreachable):
    def __init__(self) -> None:
        super().__init__("The provider's answer is longer than 1 MiB; authq reads no more of any answer.")


def decoding(headers: httpx2.Headers) -> str | None:
    """The encoding this module must undo (then dropped from the headers), or None."""
    encoding = headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding not in DECODED:
        raise ProviderUnreachable(f"The provider's answer is encoded as {encoding[:40]!r}, which authq does not read.")
    del headers["Content-Encoding"]
    headers.pop("Content-Length", None)
    return encoding


class LimitedBody(httpx2.SyncByteStream):
    def __init__(self, inner: Iterable[bytes], deadline: float, owned: contextlib.ExitStack,
                 encoding: str | None = None, limit: int = MAX_ANSWER_BYTES) -> None:
        self.inner = inner
        self.deadline = deadline
        self.owned = owned
        self.limit = limit
        self.read = 0      # bytes handed up (decoded, when the answer was compressed)
        self.received = 0  # bytes that came over the wire
        # gzip or zlib, told by its header (32 + MAX_WBITS).
        self.decoder = zlib.decompressobj(32 + zlib.MAX_WBITS) if encoding else None

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self.inner)
        try:
            while True:
                with request_deadline(self.deadline), classified():
                    chunk = next(chunks, None)
                if chunk is not None and self.decoder is not None:
                    self.received += len(chunk)
                    if self.received > self.limit:
                        raise AnswerTooLong()
                if chunk is None:
                    if self.decoder is not None:
                        yield self._decoded(self.decoder.flush())
                    return
                yield self._decoded(chunk) if self.decoder is not None else self._counted(chunk)
        finally:
            self.close()

    def _counted(self, chunk: bytes) -> bytes:
        self.read += len(chunk)
        if self.read > self.limit:
            raise AnswerTooLong()
        return chunk

    def _decoded(self, chunk: bytes) -> bytes:
        assert self.decoder is not None
        parts = []
        try:
            data = chunk
            while data:  # at most what the limit leaves (+1 to notice a longer answer) at each step
                parts.append(self._counted(self.decoder.decompress(data, self.limit - self.read + 1)))
                data = self.decoder.unconsumed_tail
        except zlib.error:
            raise ProviderUnreachable("The provider's compressed answer could not be decoded.") from None
        return b"".join(parts)

    def close(self) -> None:
        try:
            close = getattr(self.inner, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):  # a connection cut short is dropped, not reused
                    close()
        finally:
            self.owned.close()
