"""Run leases: at most one worker runs a given job at any moment.

At-least-once delivery can hand one job to two workers at the same time: a message restored
while its worker still ran it (a Redis outage that outlasted the worker's visibility
renewals), or a retry published just before its worker died, next to the original that the
broker then redelivers. ``run_job`` is safe to call twice in a row (a finished job is left
alone); the lease makes it safe to call twice *at once*.

A run takes the job's lease (``SET NX PX`` with a random token) in the script that reads
the job and counts the start (``commands.start_job``: the read runs after the ``SET``, so it
sees what the holder may act on); it gives the lease back in the batch that stores the
job's end, or when it returns. The process's heartbeat thread renews the leases it holds
every few seconds, so a lease outlives its run only when the worker dies, and then by at
most ``ttl``. A delivery that finds the lease taken runs again once the lease could have
expired: it never runs beside the holder, and it never drops the job either (if the holder
died, that delivery may be the job's only message).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from tasks.storage import schema
from tasks.storage.batch import Batch

log = logging.getLogger("authq.jobs")

LEASE_SECONDS = 30.0
# Compare-and-delete / compare-and-extend: only the holder's token touches the lease.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"


@dataclass
class Lease:
    """A job's lease while a run holds it."""

    tenant: str
    job_id: str
    key: str
    token: str
    released: bool = False

    def release_on(self, batch: Batch) -> None:
        """Queue the release on the batch that stores the job's end; call ``released_now`` once it ran."""
        batch.release_lease(self.key, self.token)

    def released_now(self) -> None:
        self.released = True


class RunLeases:
    """The leases of one process (thread-safe: jobs take them, the heartbeat renews them)."""

    def __init__(self, client: redis.Redis, ttl: float = LEASE_SECONDS) -> None:
        self.redis = client
        self.ttl_ms = int(ttl * 1000)
        self._held: dict[str, str] = {}
        self._unreleased: dict[str, str] = {}  # runs ended while Redis was away
        self._lock = threading.Lock()
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)

    def new(self, tenant: str, job_id: str) -> Lease:
        """A lease to take (``SET NX PX`` of ``token`` at ``key``, by ``commands.start_job``)."""
        return Lease(tenant, job_id, schema.job_lease(tenant, job_id), secrets.token_hex(16))

    @contextmanager
    def holding(self, lease: Lease) -> Iterator[Lease]:
        """Renew a taken lease while the block runs; release it after, unless the block did."""
        with self._lock:
            self._held[lease.key] = lease.token
        try:
            yield lease
        finally:
            with self._lock:  # first: a lease we fail to delete must not be renewed for ever
                self._held.pop(lease.key, None)
            if not lease.released:
                try:
                    self._release(keys=[lease.key], args=[lease.token])
                except redis.RedisError:
                    # Released by ``settle`` once Redis answers again (or it expires by itself).
                    with self._lock:
                        self._unreleased[lease.key] = lease.token
                    log.warning("job lease not released yet (Redis unreachable)",
                                extra={"job_id": lease.job_id, "tenant": lease.tenant})

    def settle(self) -> None:
        """Release the leases of runs that ended while Redis was unreachable."""
        with self._lock:
            pending = list(self._unreleased.items())
        for key, token in pending:
            self._release(keys=[key], args=[token])  # compare-and-delete: never another run's lease
            with self._lock:
                self._unreleased.pop(key, None)

    def renew(self) -> int:
        """Extend every lease this process holds (called by the heartbeat); returns how many."""
        self.settle()
        with self._lock:
            held = list(self._held.items())
        renewed = 0
        for key, token in held:
            renewed += int(bool(self._renew(keys=[key], args=[token, self.ttl_ms])))
        return renewed

    def held(self) -> int:
        with self._lock:
            return len(self._held)
