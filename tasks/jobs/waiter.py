"""The API process waiting for a job's end, as the job's request carries it.

A submission with ``Prefer: wait`` names its API process's inbox (``schema.api_inbox``): the
worker publishes each save of the job there as well as on the job's own channel, so the waiting
process hears it on the one subscription it always holds, and subscribes to nothing per job
(``api/event_hub.py``). Only an inbox's shape is accepted: a request cannot make a worker
publish on any other channel.
"""

from __future__ import annotations

from typing import Any

from tasks.storage import schema

INBOX_FIELD = "waiter_inbox"


def inbox_of_request(body: dict[str, Any]) -> str | None:
    given = body.get(INBOX_FIELD)
    return given if isinstance(given, str) and schema.api_inbox.parse(given) is not None else None

