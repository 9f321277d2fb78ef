"""Typed keys for what the app factory puts on the application."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from api.event_hub import EventHub
from api.governor import Governor
from api.key_usage import KeyUsage
from api.ratelimit import ApiRateLimiter
from api.store import ApiStore
from api.stream_slots import StreamSlots
from tasks.jobs.queue_port import InlineJobQueue, JobQueue
from tasks.model.api_keys import ApiKey
from tasks.model.catalog import Catalog
from tasks.model.catalog_view import CatalogViews
from tasks.security.sealing import SecretBox
from tasks.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
STORE = web.AppKey("store", ApiStore)
EVENT_HUB = web.AppKey("event_hub", EventHub)         # the process's one pub/sub connection
STREAM_SLOTS = web.AppKey("stream_slots", StreamSlots)  # open event streams per API key
GOVERNOR = web.AppKey("governor", Governor)         # permits for the platform's own calls (§9)
API_RATE = web.AppKey("api_rate", ApiRateLimiter)   # set unless AUTHQ_API_RATE_LIMIT is off
CATALOG = web.AppKey("catalog", Catalog)
CATALOG_VIEWS = web.AppKey("catalog_views", CatalogViews)  # GET /implementations, built once
BOX = web.AppKey("box", SecretBox)
QUEUE = web.AppKey("queue", JobQueue)
# The same queue when its messages join the store's transaction (decided once: a runtime
# Protocol check per request cost more than building the message).
INLINE_QUEUE = web.AppKey("inline_queue", InlineJobQueue)
# sha256(key) -> its record, for the keys in AUTHQ_API_KEYS
STATIC_KEYS: web.AppKey[dict[str, ApiKey]] = web.AppKey("static_keys")
KEY_USAGE = web.AppKey("key_usage", KeyUsage)        # when each key was last used, noted once a minute
# This API process's id, reported by /readyz (AUTHQ_INSTANCE_ID, else random).
INSTANCE = web.AppKey("instance", str)

# Request-scoped values.
TENANT = web.RequestKey("tenant", str)          # the tenant the API key belongs to
CALLER = web.RequestKey("caller", ApiKey)       # the API key itself (its id, scopes), never the key's text
REQUEST_ID = web.RequestKey("request_id", str)  # echoed as X-Request-Id, logged with every event
