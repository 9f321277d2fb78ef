"""Every Redis key authq uses: its name, the SCAN pattern of its kind, and how a key reads back.

    authq:workers                                zset    worker name -> last heartbeat (unix time)
    authq:apikeys                                hash    API key id -> sha256 of the key
    authq:apikey:{sha256}                        string  the API key's record
    authq:apikeys-used                           hash    API key id -> when it was last used (unix time)
    authq:api-arrival:{sha256}                   string  the API key's rate limit (GCRA arrival time)
    authq:api-streams:{sha256}                   zset    the API key's open event streams (leases)
    authq:api-inbox:{id}                         channel an API process's: saves of the jobs it waits for
    authq:refresh-tenants                        zset    tenant -> its refresh schedule's earliest score (or less)
    authq:expiring                               zset    "tenant/connector" -> token expiry: earlier versions' schedule
    authq:refresh-scan, authq:orphan-sweep       string  one scan, one sweep per period fleet-wide
    authq:orphan-suspects                        hash    "tenant/job" -> how the job looked
    authq:key-check                              string  a known text sealed under AUTHQ_SECRET_KEY
    authq:metrics:{jobs,job-duration-v2,retries,rate-limit-waits}   hash   the fleet's job counters
    authq:state:{sha256}[:claim|:exchange]       string  a single-use authorization state
    authq:t:{tenant}:job:{id}                    string  the job (its public view, as polled)
        ...:submission | :starts | :lease        string  its sealed request, start count, run lease
        ...:deferred                             string  milliseconds the job was deferred, in all
        ...:events                               channel its changes (pub/sub)
    authq:t:{tenant}:active-jobs                 set     the tenant's queued and running jobs
    authq:t:{tenant}:connector:{id}              string  the connector; its index: ...:connectors (zset)
        ...:refresh-lock | :refresh-queued:{version}     its refresh's lock, scheduled refreshes of a version
    authq:t:{tenant}:refresh-schedule            zset    connector -> token expiry, or its next attempt + the window
    authq:t:{tenant}:rate:{connector}[:blocked]  zset    the connector's rate-limit log; a provider's 429
    authq:t:{tenant}:pool:{id}, :pool-slots:{id} string, zset   a connection pool, its taken slots
        ...:pool-slots:{id}:freed                channel a slot of the pool was freed (pub/sub)
        ...:pools (zset), :pool-seq (counter)    its index, its next id
    authq:t:{tenant}:permit:{id}                 string  a permit of the API's governor, until it lapses
    authq:t:{tenant}:certificate:{id}            string  a certificate; its index: ...:certificates
    authq:t:{tenant}:session:{id}                string  an end-user session
    authq:connect:{sha256}                       string  "tenant/session" of a connect page's token
    authq:connect-arrival:{sha256}               string  the connect page token's rate limit (GCRA arrival time)
    authq:t:{tenant}:idempotency:{sha256}        string  an Idempotency-Key's first answer
    authq:t:{tenant}:audit-events                zset    the tenant's audit events (JSON) by time (ms)
        ...:audit-connector:{id}, :audit-type:{type}     zset   the same events of one connector, of one type
    authq:t:{tenant}:webhook:{id}                string  a webhook endpoint; its index: ...:webhooks (zset)
        ...:deliveries | :slots                  zset    its deliveries log, its attempts in flight
    authq:t:{tenant}:webhook-subscriptions       hash    endpoint id -> the event types it hears
        ...:webhook-subscriptions-version        string  a token set anew with every change of that hash
    authq:t:{tenant}:delivery:{webhook}.{msg}[:lease]    string  one event's delivery to one endpoint; its attempt
    authq:webhook-due, authq:webhook-scan        zset, string    deliveries due ("tenant/webhook/msg"); the scan lock
    authq:metrics:webhook-{deliveries,delivery-seconds}  hash    webhook attempts by outcome; their durations
    authq:connectors-by-status:{status}          set     "tenant/connector" of that status (the authq_connectors gauge)
    authq:demo-{consent,store-request}:{id}      string  the demo provider's requests awaiting the user (api/demo/)
    authq:demo-{code,access,refresh,woo-key}:{sha256}  string  what the demo provider issued, by the credential's hash

Tenant records live under ``authq:t:{tenant}:``, so a lookup with another tenant's key simply
finds nothing: cross-tenant reads are impossible by construction, not by check. Neither a
tenant name nor an id holds a ``:`` (tenants are made by ``authq keys create`` or named in
``AUTHQ_API_KEYS`` before the first ``:``; ids are generated), so every segment of a key is
one field and a key reads back without guessing (``parse``); an id given from outside that
holds one names no record (``is_id``).

Each kind of key is one ``Shape``: called, it builds a key (``schema.job(tenant, job_id)``);
``pattern()`` is its ``SCAN``/``PSUBSCRIBE`` glob; ``parse(key)`` reads a key of exactly that
shape back into its parts, or None.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

PREFIX = "authq"
EVERY_KEY = f"{PREFIX}:*"                     # SCAN MATCH of everything authq keeps

WORKERS = f"{PREFIX}:workers"
API_KEYS = f"{PREFIX}:apikeys"
API_KEYS_USED = f"{PREFIX}:apikeys-used"      # tasks/storage/api_keys.py: written at most once a minute a key
# The tenants with a refresh schedule, by its earliest entry (tasks/storage/refresh_schedule.py).
REFRESH_TENANTS = f"{PREFIX}:refresh-tenants"
EXPIRING = f"{PREFIX}:expiring"               # earlier versions' one schedule: the scan adopts what it holds
REFRESH_SCAN_LOCK = f"{PREFIX}:refresh-scan"
ORPHAN_SWEEP_LOCK = f"{PREFIX}:orphan-sweep"
ORPHAN_SUSPECTS = f"{PREFIX}:orphan-suspects"
KEY_CHECK = f"{PREFIX}:key-check"             # tasks/security/key_check.py
JOB_OUTCOMES = f"{PREFIX}:metrics:jobs"       # "type|outcome" -> count (tasks/storage/job_counters.py)
# ("-v2": the cumulative layout of earlier versions lived under the old name.)
# "type|le" -> count in (previous le, le], "type|sum", "type|count"
JOB_DURATIONS = f"{PREFIX}:metrics:job-duration-v2"
JOB_RETRIES = f"{PREFIX}:metrics:retries"             # "type" -> count
RATE_LIMIT_WAITS = f"{PREFIX}:metrics:rate-limit-waits"   # "reason" -> count
# Webhook deliveries due (tasks/storage/webhook_queue.py): "tenant/webhook/message" -> when (unix time)
# the scan should hand it to a worker next (claimed: pushed on while an attempt may be running).
WEBHOOK_DUE = f"{PREFIX}:webhook-due"
WEBHOOK_SCAN_LOCK = f"{PREFIX}:webhook-scan"                # one due-deliveries scan per period
WEBHOOK_OUTCOMES = f"{PREFIX}:metrics:webhook-deliveries"  # "outcome" -> attempts (tasks/storage/webhook_queue.py)
WEBHOOK_DURATIONS = f"{PREFIX}:metrics:webhook-delivery-seconds"   # "le" -> attempts, "sum", "count"
# The platform's use of its connectors (api/usage_metrics.py): '["series", label…]' -> count or sum
USAGE_METRICS = f"{PREFIX}:metrics:usage"

_FLEET_KEYS = {WORKERS: "workers", API_KEYS: "api_keys", API_KEYS_USED: "api_keys_used", EXPIRING: "expiring",
               REFRESH_TENANTS: "refresh_tenants",
               REFRESH_SCAN_LOCK: "refresh_scan_lock",
               ORPHAN_SWEEP_LOCK: "orphan_sweep_lock", ORPHAN_SUSPECTS: "orphan_suspects", KEY_CHECK: "key_check",
               JOB_OUTCOMES: "job_outcomes", JOB_DURATIONS: "job_durations", JOB_RETRIES: "job_retries",
               RATE_LIMIT_WAITS: "rate_limit_waits", WEBHOOK_DUE: "webhook_due",
               WEBHOOK_SCAN_LOCK: "webhook_scan_lock", WEBHOOK_OUTCOMES: "webhook_outcomes",
               WEBHOOK_DURATIONS: "webhook_durations", USAGE_METRICS: "usage_metrics"}
_TENANT, _ID, _N = "{tenant}", "{id}", "{n}"   # the fields of a shape; every other segment is literal
_FIELDS = (_TENANT, _ID, _N)
_GLOB = str.maketrans({c: f"\\{c}" for c in "*?[]\\"})


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hash_api_key(raw: str) -> str:
    """What an API key is stored and looked up by (never the key itself)."""
    return sha256(raw)


def is_id(value: str) -> bool:
    """Whether ``value`` can be a record's id: one key segment. An id from a URL that is not
    one (``job_1:submission``) names no record, rather than another key of the tenant's."""
    return bool(value) and ":" not in value


@dataclass(frozen=True)
class Key:
    """A key read back: its kind (the shape's name in this module), tenant and id (None where
    the kind has none; for a hashed kind, the SHA-256)."""

    kind: str
    tenant: str | None = None
    id: str | None = None


class Shape:
    """One kind of key: ``authq:`` then ``segments``, where ``{tenant}``, ``{id}`` and ``{n}`` are fields."""

    def __init__(self, kind: str, *segments: str, hashed: bool = False) -> None:
        self.kind = kind
        self.segments = (PREFIX, *segments)
        self.hashed = hashed  # the id is the SHA-256 of what the caller names the record by
        # The literal text around the fields, for building a key by concatenation (the fastest way).
        chunks = re.split(r"\{tenant\}|\{id\}|\{n\}", ":".join(self.segments))
        self._a, self._b, self._c, self._d = (*chunks, "", "", "")[:4]
        SHAPES.append(self)

    def pattern(self, tenant: str = "*") -> str:
        """The glob matching every key of this shape (of one tenant, when given).

        A glob's ``*`` also matches ``:``, so it may match keys of neighbouring shapes
        (``...:connector:*`` matches each connector's lock): check what it finds with ``parse``."""
        glob = {_TENANT: tenant if tenant == "*" else tenant.translate(_GLOB), _ID: "*", _N: "*"}
        return ":".join(glob.get(s, s) for s in self.segments)

    def parse(self, key: str | bytes) -> Key | None:
        """The parts of ``key`` if it has exactly this shape, else None."""
        parts = (key.decode() if isinstance(key, bytes) else key).split(":")
        if len(parts) != len(self.segments):
            return None
        found: dict[str, str] = {}
        for part, segment in zip(parts, self.segments, strict=True):
            if segment in _FIELDS:
                if not part:
                    return None
                found[segment] = part
            elif part != segment:
                return None
        if self.hashed and not _is_sha256(found[_ID]):
            return None
        return Key(self.kind, found.get(_TENANT), found.get(_ID))


class TenantKey(Shape):
    """``authq:t:{tenant}:<name>``: one per tenant (an index, a set, a counter)."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(kind, "t", _TENANT, name)

    def __call__(self, tenant: str) -> str:
        return f"{self._a}{tenant}{self._b}"


class Record(Shape):
    """``authq:t:{tenant}:<record>:{id}[:<part>]``: a tenant's record, or what hangs off it."""

    def __init__(self, kind: str, record: str, *part: str, hashed: bool = False) -> None:
        super().__init__(kind, "t", _TENANT, record, _ID, *part, hashed=hashed)

    def __call__(self, tenant: str, record_id: str | int) -> str:
        if self.hashed:
            record_id = sha256(str(record_id))
        return f"{self._a}{tenant}{self._b}{record_id}{self._c}"


class Versioned(Shape):
    """``authq:t:{tenant}:<record>:{id}:<part>:{n}``: one of a record's markers per number."""

    def __init__(self, kind: str, record: str, part: str) -> None:
        super().__init__(kind, "t", _TENANT, record, _ID, part, _N)

    def __call__(self, tenant: str, record_id: str, n: int) -> str:
        return f"{self._a}{tenant}{self._b}{record_id}{self._c}{n}{self._d}"


class FleetRecord(Shape):
    """``authq:<record>:{id}[:<part>]``: a record not under a tenant (looked up before one is known)."""

    def __init__(self, kind: str, record: str, *part: str, hashed: bool = False) -> None:
        super().__init__(kind, record, _ID, *part, hashed=hashed)

    def __call__(self, record_id: str) -> str:
        return f"{self._a}{sha256(record_id) if self.hashed else record_id}{self._b}"


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


SHAPES: list[Shape] = []

# jobs
job = Record("job", "job")
submission = Record("submission", "job", "submission")                  # the job's sealed request
# How many times a run of the job started (INCR at each start, apart from the job's record,
# so that a start is counted before anything else is written: ``commands.start_job``).
job_starts = Record("job_starts", "job", "starts")
job_lease = Record("job_lease", "job", "lease")                         # tasks/storage/leases.py
# Milliseconds the job was deferred in all (waiting for permits is not an attempt, but it is
# bounded): INCRBY at each deferral, read by the start, deleted by the job's end.
job_deferred = Record("job_deferred", "job", "deferred")
job_events = Record("job_events", "job", "events")                      # pub/sub: the job as stored, after every save
active_jobs = TenantKey("active_jobs", "active-jobs")                   # added at accept, removed at the end
# How long a finished job is kept: AUTHQ_JOB_TTL_SECONDS for a job somebody asked for, but at
# most this for a refresh the scan queued by itself. With hourly tokens a connector has one such
# job an hour; kept 7 days they would outweigh the connector 140 times (docs/operations.md).
SCHEDULED_JOB_KEPT_SECONDS = 3600

# connectors, and what governs their outbound requests
connector = Record("connector", "connector")
connectors = TenantKey("connectors", "connectors")
refresh_lock = Record("refresh_lock", "connector", "refresh-lock")      # tasks/flows/refresh.py
# The refresh job a credentials read queued for one credential version: every other read of that
# version waits on the same job instead of queueing its own (api/views/credentials.py).
refresh_for_use = Versioned("refresh_for_use", "connector", "refresh-for-use")
# How many scheduled refreshes were queued for one credential version (the backoff's exponent).
refresh_queued = Versioned("refresh_queued", "connector", "refresh-queued")
refresh_schedule = TenantKey("refresh_schedule", "refresh-schedule")    # tasks/storage/refresh_schedule.py
rate_log = Record("rate_log", "rate")                                   # by connector id (tasks/provider/gate.py)
rate_blocked = Record("rate_blocked", "rate", "blocked")                # the provider said 429 + Retry-After
pool = Record("pool", "pool")
pools = TenantKey("pools", "pools")
pool_seq = TenantKey("pool_seq", "pool-seq")
pool_slots = Record("pool_slots", "pool-slots")
pool_freed = Record("pool_freed", "pool-slots", "freed")                # pub/sub: a slot was released
permit = Record("permit", "permit")                                     # tasks/provider/permits.py

certificate = Record("certificate", "certificate")
certificates = TenantKey("certificates", "certificates")
session = Record("session", "session")
idempotency = Record("idempotency", "idempotency", hashed=True)         # by the Idempotency-Key header
# The audit log (tasks/storage/audit.py): every event of the tenant, and the same events by
# connector and by type, so a filtered page is read from its own set, not found by a scan.
audit_events = TenantKey("audit_events", "audit-events")
audit_by_connector = Record("audit_by_connector", "audit-connector")
audit_by_type = Record("audit_by_type", "audit-type")                   # by the event's type

# webhooks (tasks/storage/webhooks.py, tasks/storage/webhook_queue.py)
webhook = Record("webhook", "webhook")                                  # the endpoint (its sealed secret)
webhooks = TenantKey("webhooks", "webhooks")                            # endpoint ids by creation time
# endpoint id -> the event types it hears (space separated): what a change reads to know who to tell
webhook_subscriptions = TenantKey("webhook_subscriptions", "webhook-subscriptions")
# a random token, set anew with every change of that hash (tasks/storage/webhook_subscriptions.py)
webhook_subscriptions_version = TenantKey("webhook_subscriptions_version", "webhook-subscriptions-version")
webhook_deliveries = Record("webhook_deliveries", "webhook", "deliveries")   # message id -> created (ms)
webhook_slots = Record("webhook_slots", "webhook", "slots")             # attempts in flight: token -> expiry (ms)
delivery = Record("delivery", "delivery")                               # by "{webhook id}.{message id}"
delivery_lease = Record("delivery_lease", "delivery", "lease")          # the attempt running now

# connector ids ("tenant/id") by status, fleet-wide: the authq_connectors gauge counts them
connectors_by_status = FleetRecord("connectors_by_status", "connectors-by-status")

# not tenant-scoped: looked up by what a caller presents (an API key, a provider's callback)
api_key = FleetRecord("api_key", "apikey")                              # by hash_api_key(key)
api_rate = FleetRecord("api_rate", "api-arrival")                       # by hash_api_key(key)
api_streams = FleetRecord("api_streams", "api-streams")                 # by hash_api_key(key) (api/stream_slots.py)
# An API process's own channel (pub/sub): the saves of the jobs it waits for (api/event_hub.py)
api_inbox = FleetRecord("api_inbox", "api-inbox")                       # by the process's random inbox id
# A connect page's token (contract §11), by its SHA-256: "tenant/session id", expiring with the session.
connect_token = FleetRecord("connect_token", "connect", hashed=True)
connect_rate = FleetRecord("connect_rate", "connect-arrival")           # by the token's SHA-256 (its rate limit)
auth_state = FleetRecord("auth_state", "state", hashed=True)            # by the state itself (tasks/storage/states.py)
auth_state_claim = FleetRecord("auth_state_claim", "state", "claim", hashed=True)
# Set (NX) before a code is sent to the token endpoint: a code is spent at most once.
auth_state_exchange = FleetRecord("auth_state_exchange", "state", "exchange", hashed=True)

# The demo provider (AUTHQ_DEMO, api/demo/store.py): requests awaiting Approve or Deny, by the id
# their form carries; what it issued, by the credential's SHA-256 (never the credential).
demo_consent = FleetRecord("demo_consent", "demo-consent")
demo_store_request = FleetRecord("demo_store_request", "demo-store-request")
demo_code = FleetRecord("demo_code", "demo-code", hashed=True)
demo_access = FleetRecord("demo_access", "demo-access", hashed=True)
demo_refresh = FleetRecord("demo_refresh", "demo-refresh", hashed=True)
demo_woo_key = FleetRecord("demo_woo_key", "demo-woo-key", hashed=True)


def tenant_keys(tenant: str) -> str:
    """The glob matching every key of ``tenant``."""
    return f"{PREFIX}:t:{tenant.translate(_GLOB)}:*"


def parse(key: str | bytes) -> Key | None:
    """Any authq key read back (its shape's kind, tenant and id), or None if it is not one."""
    text = key.decode() if isinstance(key, bytes) else key
    if text in _FLEET_KEYS:
        return Key(_FLEET_KEYS[text])
    for shape in SHAPES:
        found = shape.parse(text)
        if found is not None:
            return found
    return None


# Members and fields that name a tenant's record inside a fleet-wide key ("tenant/id").
def expiring_member(tenant: str, connector_id: str) -> str:
    """The connector's member of ``EXPIRING`` (earlier versions' schedule)."""
    return f"{tenant}/{connector_id}"


def orphan_suspect(tenant: str, job_id: str) -> str:
    """The job's field of ``ORPHAN_SUSPECTS``."""
    return f"{tenant}/{job_id}"


def due_member(tenant: str, webhook_id: str, message_id: str) -> str:
    """A delivery's member of ``WEBHOOK_DUE``."""
    return f"{tenant}/{webhook_id}/{message_id}"


def due_parts(member: object) -> tuple[str, str, str]:
    """(tenant, webhook id, message id) of a ``due_member``."""
    tenant, webhook_id, message_id = _member_text(member).rsplit("/", 2)
    return tenant, webhook_id, message_id


def delivery_id(webhook_id: str, message_id: str) -> str:
    return f"{webhook_id}.{message_id}"


def _member_text(member: object) -> str:
    return member.decode() if isinstance(member, bytes) else str(member)


def member_parts(member: object) -> tuple[str, str]:
    """(tenant, id) of an ``expiring_member`` or an ``orphan_suspect`` (str or bytes, as Redis answers)."""
    tenant, _, record_id = (member.decode() if isinstance(member, bytes) else str(member)).partition("/")
    return tenant, record_id
