"""Every Redis key authq uses, in one place.

Tenant records live under ``authq:t:{tenant}:``, so a lookup with another tenant's key
simply finds nothing: cross-tenant reads are impossible by construction, not by check.
"""

from __future__ import annotations

import hashlib

PREFIX = "authq"
WORKERS = f"{PREFIX}:workers"            # zset: worker name -> last heartbeat (unix time)
API_KEYS = f"{PREFIX}:apikeys"           # hash: key id -> sha256 of the key
EXPIRING = f"{PREFIX}:expiring"          # zset: "tenant/connector" -> token expiry (unix time)
REFRESH_SCAN_LOCK = f"{PREFIX}:refresh-scan"
KEY_CHECK = f"{PREFIX}:key-check"       # a known text sealed under AUTHQ_SECRET_KEY (tasks/security/key_check.py)


def expiring_member(t: str, connector_id: str) -> str:
    return f"{t}/{connector_id}"


def tenant(t: str) -> str:
    return f"{PREFIX}:t:{t}"


def job(t: str, job_id: str) -> str:
    return f"{tenant(t)}:job:{job_id}"


def job_events(t: str, job_id: str) -> str:
    """Pub/sub channel: the job's status, published after every save (the API's event stream)."""
    return f"{job(t, job_id)}:events"


def submission(t: str, job_id: str) -> str:
    return f"{tenant(t)}:job:{job_id}:submission"


def job_starts(t: str, job_id: str) -> str:
    """How many times a run of the job started (INCR at each start, kept apart from the job's
    record so that a start is counted before anything else is written: ``Store.start_job``)."""
    return f"{tenant(t)}:job:{job_id}:starts"


def active_jobs(t: str) -> str:
    """Set of the tenant's jobs that are queued or running (added at accept, removed at end)."""
    return f"{tenant(t)}:active-jobs"


def connector(t: str, connector_id: str) -> str:
    return f"{tenant(t)}:connector:{connector_id}"


def connectors(t: str) -> str:
    return f"{tenant(t)}:connectors"


def pool(t: str, pool_id: int | str) -> str:
    return f"{tenant(t)}:pool:{pool_id}"


def pools(t: str) -> str:
    return f"{tenant(t)}:pools"


def pool_seq(t: str) -> str:
    return f"{tenant(t)}:pool-seq"


def certificate(t: str, certificate_id: str) -> str:
    return f"{tenant(t)}:certificate:{certificate_id}"


def certificates(t: str) -> str:
    return f"{tenant(t)}:certificates"


def session(t: str, session_id: str) -> str:
    return f"{tenant(t)}:session:{session_id}"


def sessions(t: str) -> str:
    return f"{tenant(t)}:sessions"


def api_key(key_hash: str) -> str:
    return f"{PREFIX}:apikey:{key_hash}"


def hash_api_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def oauth_state(state: str) -> str:
    """A single-use authorization state (not tenant-scoped: providers call back without a key)."""
    return f"{PREFIX}:state:{hashlib.sha256(state.encode()).hexdigest()}"
