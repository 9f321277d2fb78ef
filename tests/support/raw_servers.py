"""Loopback HTTP servers written on raw sockets, so they can misbehave byte by byte.

``RawServer`` listens on one 127.x address and port (optionally TLS, recording the SNI name each
client asked for) and answers every request with its current ``behaviour``:

    ok            200 with a small JSON body (``status`` and ``body`` can be set)
    trickle_head  the status line and headers one byte every ``interval`` seconds, never finishing
                  (it hangs up after ``trickle_seconds``)
    trickle_body  complete headers, then one body byte every ``interval`` seconds, never finishing
    flood         200 with a ``flood_bytes`` long body (``Content-Length``), written as fast as it goes

Each request it read (head and body, as text) is kept in ``requests`` with its arrival time, so a
test can say exactly what reached this address. ``server_pair`` binds two servers on one port at
two loopback addresses: what a client connects to is then decided by the address alone.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

CHUNK = 64 * 1024


@dataclass
class Received:
    text: str
    at: float  # time.monotonic() when the request had arrived

    def header(self, name: str) -> str | None:
        head = self.text.split("\r\n\r\n", 1)[0]
        for line in head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


@dataclass
class RawServer:
    host: str
    port: int = 0
    tls: ssl.SSLContext | None = None
    behaviour: str = "ok"
    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=dict)
    interval: float = 0.5
    trickle_seconds: float = 15.0  # a trickle then ends, closing the connection (a stuck client is freed)
    flood_bytes: int = 0
    requests: list[Received] = field(default_factory=list)
    sni_names: list[str | None] = field(default_factory=list)
    _listener: socket.socket | None = None
    _stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def url(self, name: str | None = None) -> str:
        """The base URL with ``name`` (a host a test's resolver maps here) or the address itself."""
        return f"{self.scheme}://{name or self.host}:{self.port}"

    def bind(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
        except OSError:
            listener.close()
            raise
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        if self.tls is not None:
            def record_sni(sslobj: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
                self.sni_names.append(name)
            self.tls.sni_callback = record_sni  # type: ignore[assignment]
        threading.Thread(target=self._accept, name=f"raw-server-{self.host}", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError, ssl.SSLError), contextlib.closing(conn):
            conn.settimeout(30)
            stream: socket.socket = conn
            if self.tls is not None:
                stream = self.tls.wrap_socket(conn, server_side=True)
            request = _read_request(stream)
            if request is None:
                return
            self.requests.append(Received(request, time.monotonic()))
            self._answer(stream)

    def _head(self, length: int | None) -> bytes:
        lines = [f"HTTP/1.1 {self.status} Status", "Content-Type: application/json", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _answer(self, stream: socket.socket) -> None:
        if self.behaviour == "ok":
            stream.sendall(self._head(len(self.body)) + self.body)
        elif self.behaviour == "trickle_head":
            self._trickle(stream, self._head(10) * 1000)
        elif self.behaviour == "trickle_body":
            stream.sendall(self._head(1_000_000))
            self._trickle(stream, b"x" * 1_000_000)
        elif self.behaviour == "flood":
            stream.sendall(self._head(self.flood_bytes))
            block, left = b"x" * CHUNK, self.flood_bytes
            while left > 0 and not self._stopped.is_set():
                stream.sendall(block[:left])
                left -= CHUNK
        else:
            raise AssertionError(f"unknown behaviour {self.behaviour!r}")

    def _trickle(self, stream: socket.socket, data: bytes) -> None:
        until = time.monotonic() + self.trickle_seconds
        for i in range(len(data)):
            if self._stopped.is_set() or time.monotonic() > until:
                return
            stream.sendall(data[i:i + 1])
            time.sleep(self.interval)


def _read_request(stream: socket.socket) -> str | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = stream.recv(CHUNK)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = stream.recv(CHUNK)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode(errors="replace")


def tls_context(ca: object, *names: str) -> ssl.SSLContext:
    """A server TLS context with a certificate for ``names``, issued by the trustme CA ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)  # type: ignore[attr-defined]
    return context


@contextlib.contextmanager
def server_pair(first: str, second: str, **options: object) -> Iterator[tuple[RawServer, RawServer]]:
    """Two servers on the same port, at ``first`` and ``second`` (two 127.x addresses)."""
    for _ in range(50):
        one = RawServer(first, **options)  # type: ignore[arg-type]
        one.bind()
        two = RawServer(second, port=one.port, **options)  # type: ignore[arg-type]
        try:
            two.bind()
        except OSError:  # that port is taken at the second address: try another
            one.stop()
            continue
        try:
            yield one, two
        finally:
            one.stop()
            two.stop()
        return
    raise RuntimeError(f"no port free at both {first} and {second}")


@contextlib.contextmanager
def raw_server(host: str = "127.0.0.1", **options: object) -> Iterator[RawServer]:
    server = RawServer(host, **options)  # type: ignore[arg-type]
    server.bind()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def slow_relay(target: RawServer, interval: float = 0.05) -> Iterator[RawServer]:
    """A TCP relay to ``target`` that hands the client what the target says one byte every
    ``interval`` seconds (its TLS handshake included); the client's bytes pass at once.
    Yields a ``RawServer`` only for its address and port (it answers nothing itself)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stopped = threading.Event()

    def pump(source: socket.socket, sink: socket.socket, slow: bool) -> None:
        with contextlib.suppress(OSError):
            while not stopped.is_set() and (data := source.recv(CHUNK)):
                for i in range(len(data)) if slow else [None]:
                    if stopped.is_set():
                        return
                    sink.sendall(data[i:i + 1] if i is not None else data)
                    if slow:
                        time.sleep(interval)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def accept() -> None:
        while not stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((target.host, target.port))
            threading.Thread(target=pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client, True), daemon=True).start()

    threading.Thread(target=accept, name="slow-relay", daemon=True).start()
    try:
        yield RawServer("127.0.0.1", port=listener.getsockname()[1], tls=target.tls)
    finally:
        stopped.set()
        listener.close()
