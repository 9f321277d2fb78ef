"""The start-up check of ``AUTHQ_SECRET_KEY`` against the data already in Redis.

The key check (``schema.KEY_CHECK``) holds a known text sealed under the newest key by the first process
that started on this Redis (``authq secrets rotate`` re-seals it with everything else).
The API, every worker and ``authq up`` open it before doing anything else: keys that do
not open it would write secrets nobody else can read, and fail to read the ones stored,
so they stop at once with a message naming ``AUTHQ_SECRET_KEY``.

Data written before the key check existed has none: then a few stored secrets are tried
instead, and the key check is written only if they open.
"""

from __future__ import annotations

import time

import redis

from tasks.errors import ConfigError, SecretUnreadable
from tasks.security.rotation import KINDS, scan_keys, sealed_values
from tasks.security.sealing import SecretBox
from tasks.storage.schema import KEY_CHECK

KEY_CHECK_TEXT = "authq key check: AUTHQ_SECRET_KEY opens the secrets in this Redis"
PROBE_VALUES = 5          # stored secrets tried when there is no key check yet
PROBE_SCAN_BATCHES = 50   # SCAN calls per kind spent looking for them
REDIS_WAIT_SECONDS = 30.0  # how long a starting process waits for Redis to answer

WRONG_KEY = (
    "AUTHQ_SECRET_KEY does not open the secrets already stored in this Redis ({what}): the key is wrong, "
    "or the key that sealed them was removed before `authq secrets rotate` re-sealed everything. "
    "Start with the key(s) the data was sealed with (several keys can be given, comma separated, newest first)."
)


def _opens(box: SecretBox, sealed: str) -> bool:
    try:
        box.check(sealed)
    except ConfigError:
        return False
    return True


def _probe(client: redis.Redis, box: SecretBox) -> None:
    """No key check yet: make sure the key opens a few of the secrets already stored."""
    tried = 0
    for kind in KINDS:
        if kind.name == "key-check":
            continue
        for batches, names in enumerate(scan_keys(client, kind)):
            for key, raw in zip(names, client.mget(names), strict=True):
                for path, sealed in sealed_values(kind, raw) if raw is not None else []:
                    if not _opens(box, sealed):
                        raise ConfigError(WRONG_KEY.format(what=f"tried {key} {path}".strip()))
                    tried += 1
                    if tried >= PROBE_VALUES:
                        return
            if batches + 1 >= PROBE_SCAN_BATCHES:
                break


def verify_key_check(box: SecretBox, sealed: bytes | str) -> None:
    text = sealed.decode() if isinstance(sealed, bytes) else sealed
    try:
        matches = box.open(text) == KEY_CHECK_TEXT
    except SecretUnreadable:
        matches = False
    if not matches:
        raise ConfigError(WRONG_KEY.format(what=f"checked against {KEY_CHECK}"))


def ensure_key_check(client: redis.Redis, box: SecretBox) -> None:
    """Raise ConfigError unless ``box`` opens this Redis's key check (made on first use)."""
    sealed = client.get(KEY_CHECK)
    if sealed is None:
        _probe(client, box)
        client.set(KEY_CHECK, box.seal(KEY_CHECK_TEXT), nx=True)   # NX: a racing first start wins
        sealed = client.get(KEY_CHECK)
        if sealed is None:   # removed between the two commands: nothing to compare against
            return
    verify_key_check(box, sealed)


def check_at_start(client: redis.Redis, box: SecretBox, wait: float = REDIS_WAIT_SECONDS) -> None:
    """``ensure_key_check`` for a starting process: Redis may still be starting, so a
    connection error is retried for ``wait`` seconds before it becomes a ConfigError."""
    deadline = time.monotonic() + wait
    while True:
        try:
            ensure_key_check(client, box)
            return
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            if time.monotonic() >= deadline:
                raise ConfigError(f"Redis (AUTHQ_REDIS_URL) did not answer the start-up check of "
                                  f"AUTHQ_SECRET_KEY within {wait:.0f}s: {exc}") from None
            time.sleep(0.5)


def check_at_start_url(url: str, box: SecretBox, wait: float = REDIS_WAIT_SECONDS) -> None:
    """``check_at_start`` on a short-lived connection (the asyncio API runs it in a thread)."""
    # Timeouts: a start-up that cannot hear Redis must fail and say so, not hang.
    client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
    try:
        check_at_start(client, box, wait)
    finally:
        client.close()
