"""Fleet-wide job metrics, kept in Redis so that one ``/metrics`` shows every worker.

Workers count into a few Redis hashes as jobs end, in the atomic batch that stores the
job's end (``Store.save_job(job, also=…)``); the API reads them when scraped. Counters only
ever grow, as Prometheus expects; they live as long as the Redis does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from tasks.storage import schema
from tasks.storage.batch import Batch

# The four hashes, in the order ``parse`` takes them. Each job adds 1 to the one duration
# bucket its duration falls in (not to every bucket above it, as Prometheus's cumulative
# buckets would need: 12 writes a job instead of 3); the reader adds them up.
HASHES = (schema.JOB_OUTCOMES, schema.JOB_DURATIONS, schema.JOB_RETRIES, schema.RATE_LIMIT_WAITS)
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class JobMetrics:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    @staticmethod
    def count_finished(pipe: Batch, job_type: str, outcome: str, seconds: float) -> None:
        """Queue the counts of one ended job on the batch that stores its end."""
        pipe.hincrby(schema.JOB_OUTCOMES, f"{job_type}|{outcome}", 1)
        bucket = next((bound for bound in BUCKETS if seconds <= bound), None)
        if bucket is not None:  # above the last bound: counted only in count (the +Inf bucket)
            pipe.hincrby(schema.JOB_DURATIONS, f"{job_type}|{bucket}", 1)
        pipe.hincrbyfloat(schema.JOB_DURATIONS, f"{job_type}|sum", seconds)
        pipe.hincrby(schema.JOB_DURATIONS, f"{job_type}|count", 1)

    def retried(self, job_type: str) -> None:
        self.redis.hincrby(schema.JOB_RETRIES, job_type, 1)

    def waited(self, reason: str) -> None:
        self.redis.hincrby(schema.RATE_LIMIT_WAITS, reason, 1)


# --- reading (the API's /metrics) -----------------------------------------------------------
# Known label values, shown at 0 before anything happened (Prometheus prefers a series that
# exists at 0 to one that appears later). Values found in Redis are shown too, known or not.
OUTCOMES = ("succeeded", "failed")
WAIT_REASONS = ("rate_limit", "connection_pool", "provider_rate_limited", "refresh_lock")  # gate.py, refresh.py


@dataclass
class Duration:
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound -> observations <= it
    sum: float = 0.0
    count: float = 0.0


@dataclass
class FleetMetrics:
    jobs: dict[tuple[str, str], float] = field(default_factory=dict)    # (type, outcome) -> count
    durations: dict[str, Duration] = field(default_factory=dict)        # type -> histogram
    retries: dict[str, float] = field(default_factory=dict)             # type -> count
    waits: dict[str, float] = field(default_factory=dict)               # reason -> count


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def parse(job_types: tuple[str, ...], jobs: dict, durations: dict, retries: dict, waits: dict) -> FleetMetrics:  # type: ignore[type-arg]
    """The four hashes (as HGETALL returns them) as numbers, known labels filled with 0."""
    out = FleetMetrics()
    for job_type in job_types:
        out.durations[job_type] = Duration({bound: 0.0 for bound in BUCKETS})
        out.retries[job_type] = 0.0
        for outcome in OUTCOMES:
            out.jobs[(job_type, outcome)] = 0.0
    out.waits.update({reason: 0.0 for reason in WAIT_REASONS})
    for raw_field, raw_value in jobs.items():
        job_type, _, outcome = _text(raw_field).partition("|")
        out.jobs[(job_type, outcome)] = float(raw_value)
    for raw_field, raw_value in durations.items():
        job_type, _, part = _text(raw_field).partition("|")
        duration = out.durations.setdefault(job_type, Duration({bound: 0.0 for bound in BUCKETS}))
        if part == "sum":
            duration.sum = float(raw_value)
        elif part == "count":
            duration.count = float(raw_value)
        else:
            duration.buckets[float(part)] = duration.buckets.get(float(part), 0.0) + float(raw_value)
    for duration in out.durations.values():  # per-bucket counts -> Prometheus's cumulative ones
        total = 0.0
        for bound in sorted(duration.buckets):
            total += duration.buckets[bound]
            duration.buckets[bound] = total
    out.retries.update({_text(k): float(v) for k, v in retries.items()})
    out.waits.update({_text(k): float(v) for k, v in waits.items()})
    return out
