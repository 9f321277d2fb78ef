"""The data dir of ``authq up``: generated-once secrets and the embedded Redis's address.

Files holding secrets are created 0600 inside a 0700 directory.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from pathlib import Path
from typing import IO

from tasks.errors import ConfigError
from tasks.security.sealing import generate_key


class DataDir:
    def __init__(self, path: Path) -> None:
        self.path = path.resolve()

    def prepare(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.path.chmod(0o700)
        (self.path / "logs").mkdir(exist_ok=True)

    def _secret_file(self, name: str, make) -> str:  # type: ignore[no-untyped-def]
        file = self.path / name
        if not file.exists():
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(make())
        return file.read_text().strip()

    def secret_key(self) -> str:
        """The Fernet key sealing secrets at rest, generated on the first ``up``."""
        return self._secret_file("secret.key", generate_key)

    def existing_secret_key(self) -> str | None:
        """The key(s) in ``secret.key`` if an ``up`` made (or an operator edited) one, else None."""
        file = self.path / "secret.key"
        return file.read_text().strip() if file.exists() else None

    def redis_password(self) -> str:
        return self._secret_file("redis.password", lambda: secrets.token_urlsafe(32))

    @property
    def redis_dir(self) -> Path:
        return self.path / "redis"

    @property
    def redis_url_file(self) -> Path:
        return self.path / "redis.url"

    def write_redis_url(self, url: str) -> None:
        fd = os.open(self.redis_url_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(url)

    def running_redis_url(self) -> str | None:
        """The URL of the Redis a running ``authq up`` started, if any."""
        return self.redis_url_file.read_text().strip() if self.redis_url_file.exists() else None

    def lock(self) -> IO[str]:
        """Hold this for the life of ``up``: two ``up`` on one data dir would share one Redis."""
        handle = open(self.path / "up.lock", "w")  # noqa: SIM115 (held, and closed, by the caller)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ConfigError(f"Another `authq up` is already running on {self.path}. Stop it first, "
                              "or give this one its own --data-dir.") from None
        return handle

    def log(self, name: str) -> Path:
        return self.path / "logs" / f"{name}.log"
