"""Settings: one object, built at an entrypoint from ``AUTHQ_*`` and passed down.

Nothing in authq reads the environment anywhere else; importing a module never
reads it either.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tasks.model.api_keys import ApiKey, parse_static_keys

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
# Requests per second one API key may make (AUTHQ_API_RATE_LIMIT): on unless turned off, so one
# tenant's runaway client cannot fill Redis or starve the others; far above what a client that
# polls its jobs needs.
DEFAULT_API_RATE_LIMIT = 100.0
DEFAULT_WORKER_CONCURRENCY = 8
# Seconds between a webhook delivery's attempts (contract §10): quickly at first (an endpoint
# restarting), then ever further apart, over about 39 hours in all, as Svix and Stripe do.
DEFAULT_WEBHOOK_RETRY_SCHEDULE = "5,300,1800,7200,18000,36000,36000"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTHQ_", extra="ignore")

    redis_url: str | None = None
    broker_url: str | None = None
    api_keys: SecretStr = SecretStr("")
    # Several Fernet keys, comma separated, newest first: the newest encrypts, all decrypt.
    secret_key: SecretStr | None = None
    catalog: Path | None = None
    public_url: str | None = None
    redirect_uri: str | None = None
    ca_bundle: Path | None = None
    allow_private_networks: bool = False
    # The demo provider (contract §13): served under /demo/ by the API, its catalog entries
    # added and its origin let through the outbound guard. `authq up --demo` sets it.
    demo: bool = False
    data_dir: Path = Path(".authq")
    api_rate_limit: float | None = Field(default=DEFAULT_API_RATE_LIMIT, gt=0)
    max_queued_per_tenant: int = Field(default=100_000, ge=1)
    # How long a job's event stream stays open before it ends, asking the client to reconnect.
    stream_max_seconds: float = Field(default=600.0, gt=0)
    # The API's pool of Redis connections for commands (event streams use one connection of
    # their own per process): a request waits for a free one, at most 5 s, then answers 503.
    api_redis_connections: int = Field(default=50, ge=1)

    # Where the API listens (``authq api``/``up`` flags override these).
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # The API's id in /readyz answers: `authq up` gives its API a fresh one, to know its own
    # API's answer from another program's on the port. None: a random one per process.
    instance_id: str | None = None

    # Job behaviour; not in the contract's table, tunable for tests and operations.
    job_ttl_seconds: int = 7 * 24 * 3600
    max_attempts: int = Field(default=5, ge=1)  # starts of a job (a first run included)
    outbound_timeout_seconds: float = 15.0
    # The largest request body the proxy forwards (contract §9); a larger one is a 413.
    proxy_max_body: int = Field(default=16 * 1024 * 1024, ge=0)
    # Tokens expiring within this window are refreshed by a scan every refresh_scan_seconds.
    refresh_window_seconds: int = 300
    refresh_scan_seconds: float = 30.0
    log_level: str = "INFO"

    # Webhooks (contract §10): the intervals between attempts, each attempt's deadline, how
    # often the due deliveries are looked for, and how many deliveries one endpoint may have in
    # flight at once fleet-wide (so a hanging endpoint never holds every worker thread).
    webhook_retry_schedule: str = DEFAULT_WEBHOOK_RETRY_SCHEDULE
    webhook_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    webhook_scan_seconds: float = Field(default=1.0, gt=0, le=60)
    webhook_endpoint_concurrency: int = Field(default=4, ge=1, le=64)

    # Jobs one worker process runs at once (Celery's threads pool): a job mostly waits on its
    # provider, so a process with N threads keeps N providers busy (docs/decisions.md).
    worker_concurrency: int = Field(default=DEFAULT_WORKER_CONCURRENCY, ge=1, le=256)

    @field_validator("api_rate_limit", mode="before")
    @classmethod
    def _off_means_none(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in {"", "off", "0", "none"}:
            return None
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        parse_retry_schedule(value)
        return value

    @property
    def webhook_retry_intervals(self) -> tuple[float, ...]:
        return parse_retry_schedule(self.webhook_retry_schedule)

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def effective_redirect_uri(self) -> str:
        return self.redirect_uri or f"{self.effective_public_url}/api/v1/oauth/authenticate"

    @property
    def effective_broker_url(self) -> str:
        broker = self.broker_url or self.redis_url
        if not broker:
            raise ValueError("AUTHQ_BROKER_URL or AUTHQ_REDIS_URL must be set (or run `authq up`).")
        return broker

    @property
    def broker_is_store(self) -> bool:
        """The broker is the store's Redis (no ``AUTHQ_BROKER_URL``, or the same URL): a job's
        message can join the transaction that stores the job, and the workers can read every
        message there is (the orphan sweep). Another broker (``amqp://``, another Redis) is
        only ever spoken to through Celery."""
        return not self.broker_url or self.broker_url == self.redis_url

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise ValueError(
                "AUTHQ_REDIS_URL is not set. Point it at a Redis server "
                "(e.g. redis://127.0.0.1:6379/0), or run `authq up`, which starts one for you."
            )
        return self.redis_url

    def static_api_keys(self) -> dict[str, ApiKey]:
        """Map key -> its record from ``AUTHQ_API_KEYS`` (``tenant:key`` or ``tenant:key:scope+scope``)."""
        return parse_static_keys(self.api_keys.get_secret_value())


def parse_retry_schedule(value: str) -> tuple[float, ...]:
    """``AUTHQ_WEBHOOK_RETRY_SCHEDULE``: seconds, comma separated, each > 0 (empty: no retries)."""
    intervals = []
    for part in value.split(","):
        if not part.strip():
            continue
        try:
            seconds = float(part)
        except ValueError:
            raise ValueError(f"AUTHQ_WEBHOOK_RETRY_SCHEDULE holds {part.strip()!r}, which is not a number of "
                             "seconds; give seconds, comma separated (e.g. 5,300,1800).") from None
        if not 0 < seconds <= 7 * 86400:
            raise ValueError("Each interval of AUTHQ_WEBHOOK_RETRY_SCHEDULE must be more than 0 and at most "
                             "604800 seconds (a week).")
        intervals.append(seconds)
    if len(intervals) > 50:
        raise ValueError("AUTHQ_WEBHOOK_RETRY_SCHEDULE holds at most 50 intervals.")
    return tuple(intervals)
