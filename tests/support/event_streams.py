"""Reading a job's server-sent events as a client does, and jobs no worker will run."""

from __future__ import annotations

import asyncio

from aiohttp import ClientResponse

from tasks.model.records import Job, new_id, utcnow
from tasks.storage.store import Store


async def read_events(response: ClientResponse, timeout: float = 30.0) -> list[dict[str, str]]:
    """Parse an event stream until the server closes it (the test fails if it does not)."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async with asyncio.timeout(timeout):
        while True:
            line = await response.content.readline()
            if not line:  # end of stream: the server closed it
                return events
            text = line.decode().rstrip("\r\n")
            if not text:
                if current:
                    events.append(current)
                    current = {}
            elif not text.startswith(":"):
                name, _, val = text.partition(":")
                current[name] = val[1:] if val.startswith(" ") else val


def stored_job(store: Store, owner: str) -> Job:
    """A job record the store keeps, with no broker message: nothing runs it but the test."""
    job = Job(id=new_id("job"), tenant=owner, type="authorise", connector_id=new_id("con"), created_at=utcnow())
    store.create_job(job, "sealed-request-not-used")
    return job
