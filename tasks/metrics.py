"""Fleet-wide job metrics, kept in Redis so that one ``/metrics`` shows every worker.

Workers count into a few Redis hashes as jobs end (one pipeline per job); the API reads
them when scraped. Counters only ever grow, as Prometheus expects; they live as long as
the Redis does.
"""

from __future__ import annotations

import redis

from .keys import PREFIX

JOBS = f"{PREFIX}:metrics:jobs"                  # "type|outcome" -> count
DURATION = f"{PREFIX}:metrics:job-duration"      # "type|le" -> count, "type|sum", "type|count"
RETRIES = f"{PREFIX}:metrics:retries"            # "type" -> count
WAITS = f"{PREFIX}:metrics:rate-limit-waits"     # "reason" -> count (rate_limit, connection_pool, …)
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class JobMetrics:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def finished(self, job_type: str, outcome: str, seconds: float) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(JOBS, f"{job_type}|{outcome}", 1)
            for bound in BUCKETS:
                if seconds <= bound:
                    pipe.hincrby(DURATION, f"{job_type}|{bound}", 1)
            pipe.hincrbyfloat(DURATION, f"{job_type}|sum", seconds)
            pipe.hincrby(DURATION, f"{job_type}|count", 1)
            pipe.execute()

    def retried(self, job_type: str) -> None:
        self.redis.hincrby(RETRIES, job_type, 1)

    def waited(self, reason: str) -> None:
        self.redis.hincrby(WAITS, reason, 1)
