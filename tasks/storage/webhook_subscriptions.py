"""Who hears what, kept between a worker's jobs: the tenant's subscriptions and their version.

Every change that emits events must know which endpoints hear them before it writes its batch
(the deliveries go into that batch). Read afresh, that is one more round trip for every job's
end — on this kind of machine a quarter of what a job costs a worker beyond Celery's own work.
So a process keeps each tenant's subscriptions with the *version* they were read at, and the
batch that records events is guarded on that version (``Heard.guard``): a batch written with
stale subscriptions is not written at all; the caller reads them again and writes it anew.

The version is a random token set (never counted up) by every write that changes the
subscriptions hash (``changed``, called by ``webhooks._subscribe`` and ``delete_webhook``): a
hash deleted and written again, or a Redis flushed, cannot come back to a version a process
still holds. No version (a tenant that never had an endpoint) is a version too: the guard then
asks that the token is still absent.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tasks.storage import schema
from tasks.storage.batch import Batch
from tasks.storage.steps import Lua, Op, Script, Transaction

Subscribers = Mapping[str, frozenset[str]]   # endpoint id -> the event types it hears

# The subscriptions and their version, read together (atomically) in one round trip.
_READ = Lua("return {redis.call('get', KEYS[2]), redis.call('hgetall', KEYS[1])}")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class Heard:
    """A tenant's subscriptions as read at ``version`` (None: no endpoint was ever made)."""

    tenant: str
    version: str | None
    subscribers: Subscribers

    def guard(self, batch: Batch) -> None:
        """Write ``batch`` only if the subscriptions are still the ones read."""
        key = schema.webhook_subscriptions_version(self.tenant)
        if self.version is None:
            batch.expect_absent(key)
        else:
            batch.expect(key, self.version)


def read(tenant: str) -> Op[Heard]:
    version, flat = yield Script(_READ, [schema.webhook_subscriptions(tenant),
                                         schema.webhook_subscriptions_version(tenant)], [])
    pairs = zip(flat[::2], flat[1::2], strict=True)
    return Heard(tenant, None if version is None else _text(version),
                 {_text(k): frozenset(_text(v).split()) for k, v in pairs})


def changed(into: Batch | Transaction, tenant: str) -> None:
    """Queue, with a write to the tenant's subscriptions hash, a new version of them."""
    into.set(schema.webhook_subscriptions_version(tenant), secrets.token_hex(12))


class SubscriptionCache:
    """Each tenant's ``Heard``, as last read by this process (shared by its job threads).

    Bounded: past ``size`` tenants it starts again from empty (a cache miss costs one read)."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._heard: dict[str, Heard] = {}
        self._lock = threading.Lock()

    def heard(self, run: Callable[[Op[Heard]], Heard], tenant: str) -> Heard:
        known = self._heard.get(tenant)
        return known if known is not None else self.refresh(run, tenant)

    def refresh(self, run: Callable[[Op[Heard]], Heard], tenant: str) -> Heard:
        """Read the tenant's subscriptions again (a guard on the old version failed)."""
        fresh = run(read(tenant))
        with self._lock:
            if len(self._heard) >= self._size:
                self._heard.clear()
            self._heard[tenant] = fresh
        return fresh
