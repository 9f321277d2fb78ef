"""The session's secret registry and the end-of-session leak check.

Tests (and the fixtures and helpers that make up secrets) ``remember_secret()`` every
secret they hand to authq. ``tests/test_no_secrets_leaked.py``, the session's last test,
then dumps the session Redis (every key, every type) and reads every log the session wrote
(the workers', ``authq up``'s, the in-process API's), and fails if any secret is there in
clear, base64 or URL-encoded. Failures name the key or file and show a masked excerpt:
never the secret itself.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import redis

MIN_LENGTH = 6            # shorter strings match by accident (and are no one's secret)
ENCODED_MIN_LENGTH = 8    # base64 / URL-encoded forms are checked from this length
MARKERS = ("PRIVATE KEY-----",)  # never in clear in Redis or a log, whatever the key

_lock = threading.Lock()
_secrets: set[str] = set()


def remember_secret(value: object) -> None:
    """Register a secret the session used: it must appear in no Redis value and no log."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if not isinstance(value, str):
        return
    value = value.strip()
    if len(value) >= MIN_LENGTH:
        with _lock:
            _secrets.add(value)


PUBLIC_WINDOW = 12  # base64 characters (9 bytes): a run this long shared with the public key is the public key's
PRIVATE_RUN_MIN = 16  # a private run shorter than this is not registered (too little to be the key's alone)


def remember_pem(pem: str) -> None:
    """A private key PEM: the base64 of its private parts is a secret (a leak of the key holds them).

    Not its public parts: an unencrypted PKCS#8 key carries the public key (an EC key's point,
    an RSA key's modulus), and the certificate stored in clear beside it carries the same bytes,
    which at some alignments are the same base64 characters. Each line is registered without the
    runs it shares with the public key's encodings.
    """
    for secret in pem_secrets(pem):
        remember_secret(secret)


def pem_secrets(pem: str) -> list[str]:
    """What ``remember_pem`` registers for ``pem``."""
    public = _public_key_base64(pem)
    return [run for line in pem.splitlines() if line and not line.startswith(("-----", "Proc-Type", "DEK-Info"))
            for run in private_runs(line, public)]


def _public_key_base64(pem: str) -> list[str]:
    """The key's SubjectPublicKeyInfo in base64 at each of the three byte offsets (nothing for an
    encrypted key: its lines are ciphertext, which shares nothing with a certificate)."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (TypeError, ValueError):
        return []
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return [base64.b64encode(b"\0" * shift + der).decode() for shift in range(3)]


def private_runs(line: str, public: list[str]) -> list[str]:
    """``line`` less every window of it that one of the ``public`` encodings contains."""
    shared = [False] * len(line)
    for at in range(len(line) - PUBLIC_WINDOW + 1):
        if any(line[at:at + PUBLIC_WINDOW] in encoded for encoded in public):
            shared[at:at + PUBLIC_WINDOW] = [True] * PUBLIC_WINDOW
    runs, start = [], None
    for at, is_public in enumerate([*shared, True]):
        if not is_public and start is None:
            start = at
        elif is_public and start is not None:
            runs.append(line[start:at])
            start = None
    return [run for run in runs if len(run) >= PRIVATE_RUN_MIN]


def remembered() -> list[str]:
    with _lock:
        return sorted(_secrets)


def forms(secret: str) -> dict[str, str]:
    """The secret and the encodings it could hide under in a stored value or a log line."""
    found = {"clear": secret}
    if len(secret) >= ENCODED_MIN_LENGTH:
        raw = secret.encode()
        # Inside a longer base64 string the secret's encoding depends on its offset (mod 3):
        # check the groups that lie wholly within it, at each of the three offsets.
        for shift in range(3):
            padded = b"\0" * shift + raw
            first, last = (1 if shift else 0), len(padded) // 3
            for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
                stable = encode(padded).decode()[first * 4:last * 4]
                if len(stable) >= ENCODED_MIN_LENGTH:
                    found[f"{name}@{shift}"] = stable
        for name, encoded in (("url-encoded", quote(secret, safe="")), ("form-encoded", quote_plus(secret))):
            if encoded != secret:
                found[name] = encoded
    return found


def _mask(text: str, needle: str) -> str:
    return text.replace(needle, f"<SECRET:{len(needle)} chars>")


def _excerpt(text: str, needle: str, at: int) -> str:
    start, end = max(0, at - 60), min(len(text), at + len(needle) + 60)
    return _mask(text[start:end], needle).replace("\n", "\\n")


def find_leaks(sources: Iterable[tuple[str, str]], secrets: list[str]) -> list[str]:
    """One line per (source, secret form) found: ``where: form of secret #n: …excerpt…``."""
    needles = [(index, form, text) for index, secret in enumerate(secrets) for form, text in forms(secret).items()]
    leaks = []
    for where, text in sources:
        for index, form, needle in needles:
            at = text.find(needle)
            if at >= 0:
                leaks.append(f"{where}: {form} form of secret #{index} ({len(needle)} chars): "
                             f"…{_excerpt(text, needle, at)}…")
        for marker in MARKERS:
            at = text.find(marker)
            if at >= 0:
                leaks.append(f"{where}: {marker!r} in clear: …{_excerpt(text, '', at)[:120]}…")
    return leaks


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (list, tuple, set)):
        return "\n".join(_text(v) for v in value)
    if isinstance(value, dict):
        return "\n".join(f"{_text(k)}={_text(v)}" for k, v in value.items())
    return str(value)


def redis_dump(client: redis.Redis) -> Iterator[tuple[str, str]]:
    """(``redis key …``, its value as text) for every key: strings, hashes, lists, sets, zsets.

    Keys of other types (streams …) are dumped with XRANGE, anything else by its type only,
    so the check still names them.
    """
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        try:
            if kind == "string":
                value: object = client.get(key)
            elif kind == "hash":
                value = client.hgetall(key)
            elif kind == "list":
                value = client.lrange(key, 0, -1)
            elif kind == "set":
                value = client.smembers(key)
            elif kind == "zset":
                value = client.zrange(key, 0, -1, withscores=True)
            elif kind == "stream":
                value = client.xrange(key)
            elif kind == "none":  # expired between SCAN and TYPE
                continue
            else:
                value = f"<{kind}: not dumped>"
        except redis.ResponseError as exc:
            value = f"<{kind}: {exc}>"
        name = _text(key)
        yield f"redis key {name!r} ({kind})", f"{name}\n{_text(value)}"


def log_files(root: Path) -> list[Path]:
    """Every log the session wrote under its base temp dir: ``*.log`` at any depth."""
    return sorted(p for p in root.rglob("*.log") if p.is_file())


def read_logs(paths: Iterable[Path]) -> Iterator[tuple[str, str]]:
    for path in paths:
        yield f"log {path}", path.read_text(errors="replace")


def session_log_handler(path: Path) -> logging.Handler:
    """What the in-process API logs, as production writes it: JSON lines, redaction filter on."""
    from tasks.telemetry.logs import JsonFormatter
    from tasks.telemetry.redaction import RedactingFilter

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    handler.setLevel(logging.INFO)
    return handler
