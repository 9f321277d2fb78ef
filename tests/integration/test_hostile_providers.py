"""A provider that trickles or floods holds no worker (contract §8), through the API and the
session's real workers (their AUTHQ_OUTBOUND_TIMEOUT_SECONDS is 5: ``tests/support/helpers.base_env``).

A check answered a byte every half second ends ``provider_unreachable`` at the deadline, though no
single read ever waits long; an answer of 100 MiB ends ``provider_unreachable`` after its first MiB,
and the worker's peak memory does not grow with it. Afterwards the same provider answers normally
and the job's next attempt ends at once: the worker was free again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.support.helpers import Tenant, authorise_body, poll_job
from tests.support.processes import descendants
from tests.support.raw_servers import RawServer, raw_server

WORKER_DEADLINE = 5.0
SLACK = 2.5
MIB = 1024 * 1024


async def submit(client: Any, tenant: Tenant, server: RawServer) -> str:
    body = authorise_body()
    body["variables"][0]["value"] = server.url()  # type: ignore[index]
    answer = await client.post("/api/v1/oauth/authorise", json=body, headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    return str((await answer.json())["data"]["id"])


async def first_failure(client: Any, tenant: Tenant, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = (await (await client.get(f"/api/v1/jobs/{job_id}", headers=tenant.headers)).json())["data"]
        if job["error"] is not None or job["status"] == "succeeded":
            return job  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"the job was still waiting on the provider after {timeout}s: {job}"
        await asyncio.sleep(0.05)


def peak_rss(pids: list[int]) -> dict[int, int]:
    """VmHWM (the most resident memory each process ever had), in bytes."""
    peaks = {}
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks[pid] = int(line.split()[1]) * 1024
    return peaks


def worker_pids(workers: list[Any]) -> list[int]:
    return sorted({p.pid for p in workers} | {c for p in workers for c in descendants(p.pid)})


async def answer_normally_then_end(client: Any, tenant: Tenant, job_id: str, server: RawServer) -> None:
    server.behaviour, server.status = "ok", 401
    ended = await poll_job(client, tenant, job_id, timeout=20)
    assert ended["status"] == "failed" and ended["error"]["code"] == "credentials_rejected", ended  # type: ignore[index]


async def test_a_trickling_check_ends_at_the_deadline(client, tenant, workers) -> None:  # type: ignore[no-untyped-def]
    with raw_server(behaviour="trickle_body", interval=0.5) as server:
        job_id = await submit(client, tenant, server)
        failed = await first_failure(client, tenant, job_id, timeout=WORKER_DEADLINE + 15)
        took = time.monotonic() - server.requests[0].at
        assert failed["error"]["code"] == "provider_unreachable", failed
        assert took <= WORKER_DEADLINE + SLACK, f"the worker was held {took:.1f}s"
        await answer_normally_then_end(client, tenant, job_id, server)


async def test_a_flooding_check_ends_after_one_mib_and_the_worker_stays_small(  # type: ignore[no-untyped-def]
        client, tenant, workers) -> None:
    pids = worker_pids(workers)
    before = peak_rss(pids)
    with raw_server(behaviour="flood", flood_bytes=100 * MIB) as server:
        job_id = await submit(client, tenant, server)
        failed = await first_failure(client, tenant, job_id, timeout=WORKER_DEADLINE + 15)
        assert failed["error"] is not None, f"a 100 MiB answer passed: {failed}"
        assert failed["error"]["code"] == "provider_unreachable" and "1 MiB" in failed["error"]["message"], failed
        await answer_normally_then_end(client, tenant, job_id, server)
    after = peak_rss(pids)
    grown = {pid: (after[pid] - before[pid]) / MIB for pid in before if pid in after}
    assert max(grown.values()) < 16, f"a worker's peak memory grew by {grown} MiB"
