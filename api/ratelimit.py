"""``AUTHQ_API_RATE_LIMIT``: requests per second per API key, fleet-wide (429 above it).

The same sliding-window Lua script that limits outbound calls (``tasks/provider/limiter.py``),
keyed by the API key's hash (never the key). It runs on every request, so it goes through the
auto-pipeline (``api/pipelining.py``): sent on its own, its round trip's per-call costs halved
the API's request rate at load.
"""

from __future__ import annotations

import math
import secrets

from api.pipelining import AutoPipeline
from tasks.provider.limiter import RATE_LIMIT_SCRIPT
from tasks.storage import schema


class ApiRateLimiter:
    def __init__(self, pipeline: AutoPipeline, per_second: float) -> None:
        # A rate r becomes `limit` requests per `limit / r` seconds (e.g. 0.5/s: 1 per 2 s).
        self.limit = max(1, math.floor(per_second))
        self.window_us = max(1, round(self.limit / per_second * 1_000_000))
        self.pipeline = pipeline

    async def wait_for(self, key_hash: str) -> float:
        """0.0 when the request may pass, else seconds until it could."""
        wait, _, _ = await self.pipeline.eval(RATE_LIMIT_SCRIPT, [schema.api_rate_log(key_hash)],
                                              [self.limit, self.window_us, secrets.token_hex(6)])
        return int(wait) / 1_000_000
