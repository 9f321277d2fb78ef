"""Secrets at rest: an authenticated cipher (Fernet: AES-128-CBC + HMAC-SHA256).

``AUTHQ_SECRET_KEY`` holds one or more Fernet keys, comma separated, newest first. The
newest seals; every one of them opens, so a key can be rotated without downtime
(``authq secrets rotate`` re-seals everything under the newest).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tasks.errors import ConfigError, SecretUnreadable

KEY_HELP = (
    "AUTHQ_SECRET_KEY must be one or more Fernet keys, comma separated, newest first. "
    "Make one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


def generate_key() -> str:
    return Fernet.generate_key().decode()


class SecretBox:
    """Seals and opens secrets under ``AUTHQ_SECRET_KEY``.

    ``keep``: how many opened secrets to keep in memory, by their sealed text (0, the default:
    none). The API keeps them: it opens the same connector's credentials for every proxied
    request and credentials read, and a Fernet opening (HMAC, then AES) is a large share of
    such a request's cost. A sealed text always opens to the same secret (its keys are fixed
    for the process's life), so a kept opening is never stale; a re-sealed or changed secret
    has a new text. The oldest kept is forgotten first.
    """

    def __init__(self, keys: str | None, keep: int = 0) -> None:
        self._keep = keep
        self._kept: dict[str, str] = {}
        self._keeping = threading.Lock()
        if not keys or not keys.strip():
            raise ConfigError("AUTHQ_SECRET_KEY is not set. " + KEY_HELP)
        try:
            self._fernets = [Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()]
        except (ValueError, TypeError):
            raise ConfigError("AUTHQ_SECRET_KEY is not a valid key. " + KEY_HELP) from None
        self._multi = MultiFernet(self._fernets)

    def seal(self, plaintext: str) -> str:
        return self._multi.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        kept = self._kept.get(sealed)
        if kept is not None:
            return kept
        try:
            opened = self._multi.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable(
                "A stored secret does not open with AUTHQ_SECRET_KEY: the key is wrong, or an old "
                "key was removed before `authq secrets rotate` re-sealed everything."
            ) from None
        if self._keep:
            with self._keeping:  # the API opens on its loop and, for TLS set-ups, in threads
                if len(self._kept) >= self._keep:
                    del self._kept[next(iter(self._kept))]
                self._kept[sealed] = opened
        return opened

    @property
    def kept(self) -> int:
        """How many opened secrets are kept now."""
        return len(self._kept)

    def seal_json(self, value: Any) -> str:
        return self.seal(json.dumps(value, separators=(",", ":")))

    def open_json(self, sealed: str) -> Any:
        return json.loads(self.open(sealed))

    def rotate(self, sealed: str) -> str:
        """Re-seal under the newest key (what ``authq secrets rotate`` does per value).

        Raises ``cryptography.fernet.InvalidToken`` when no configured key opens ``sealed``.
        """
        return self._multi.rotate(sealed.encode()).decode()

    def is_current(self, sealed: str) -> bool:
        """True when the newest key opens ``sealed``: rotating it would change nothing."""
        try:
            self._fernets[0].decrypt(sealed.encode())
        except InvalidToken:
            return False
        return True

    def check(self, sealed: str) -> None:
        """Raise ConfigError unless ``sealed`` opens (a start-up probe of the key)."""
        try:
            self.open(sealed)
        except SecretUnreadable as exc:
            raise ConfigError(str(exc)) from None
