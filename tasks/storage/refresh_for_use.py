"""One refresh job per credential version for every credentials read that needs one.

Two hundred platform flows reading an expiring connector at once must not queue two hundred
refresh jobs (each would make its worker wait on the refresh lock, to find the work done): the
first read claims the version with its job's id, and the others wait on that job.
"""

from __future__ import annotations

from tasks.storage import schema
from tasks.storage.steps import Lua, Op, Script

CLAIM_SECONDS = 60  # longer than a read waits; a claim whose job was lost is given up after it

CLAIM = Lua("""
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
""")
RELEASE = Lua("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0")


def claim_refresh(tenant: str, connector_id: str, version: int, job_id: str) -> Op[str | None]:
    """The id of the job already refreshing this version, or None: ``job_id`` now is that job."""
    running = yield Script(CLAIM, [schema.refresh_for_use(tenant, connector_id, version)], [job_id, CLAIM_SECONDS])
    return None if running is None else running.decode() if isinstance(running, bytes) else str(running)


def release_refresh(tenant: str, connector_id: str, version: int, job_id: str) -> Op[None]:
    """Give up a claim whose job could not be queued (so the next read queues its own)."""
    yield Script(RELEASE, [schema.refresh_for_use(tenant, connector_id, version)], [job_id])
