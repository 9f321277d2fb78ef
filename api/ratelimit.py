"""``AUTHQ_API_RATE_LIMIT``: requests per second per API key, fleet-wide (429 above it).

A GCRA (generic cell rate algorithm; a token bucket kept as one timestamp): each key has a
"theoretical arrival time" in Redis, pushed one interval (``1 / rate``) later by every request
that passes; a request passes while that time is at most a second's worth of requests ahead of
the server's clock. So a key may send ``rate`` requests at once, then ``rate`` a second.

Unlike the sliding-window log of the connectors' own limits (contract §8, which must never allow
a burst beyond the window), this one is a single small string per key whatever the rate: the
log held a member per request of the last second, thousands at a high limit, and trimming and
adding to it on every request cost the API a fifth of its accept rate. It runs on every request,
so it goes through the auto-pipeline (``api/pipelining.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from api.pipelining import AutoPipeline
from tasks.storage import schema

# KEYS[1] the key's arrival time (µs, server clock); ARGV[1] interval µs, ARGV[2] burst µs (the
# most the arrival time may run ahead of now). Returns 0 (passed) or the µs until one would pass.
GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < now then tat = now end
local ahead = tat + interval - now
if ahead > tonumber(ARGV[2]) then
  return ahead - tonumber(ARGV[2])
end
redis.call('SET', KEYS[1], string.format('%d', tat + interval), 'PX', math.ceil(ahead / 1000) + 1)
return 0
"""


class ApiRateLimiter:
    def __init__(self, pipeline: AutoPipeline, per_second: float,
                 key: Callable[[str], str] = schema.api_rate) -> None:
        # A rate r lets max(1, floor(r)) requests go at once, then one every 1/r seconds.
        self.interval_us = max(1, round(1_000_000 / per_second))
        self.burst_us = max(1, math.floor(per_second)) * self.interval_us
        self.pipeline = pipeline
        self.key = key   # the arrival time's key of what is limited (by default an API key's hash)

    async def wait_for(self, key_hash: str) -> float:
        """0.0 when the request may pass, else seconds until it could."""
        wait = await self.pipeline.eval(GCRA_SCRIPT, [self.key(key_hash)],
                                        [self.interval_us, self.burst_us])
        return int(wait) / 1_000_000
