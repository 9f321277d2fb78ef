"""What a job handler is handed to report its progress, and what it hands back to the runner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tasks.model.records import Connector
from tasks.model.views import AuditType

# Records a progress step (``Job.progress``) as the handler reaches it.
Step = Callable[[str], None]


@dataclass
class Outcome:
    """The job's result, and the connector to store in the transaction that ends the job.

    Written together, a poller never sees the job ``succeeded`` before its connector is
    ``authorised`` (or the reverse), and the job's end costs one round trip, not two.
    """

    result: dict[str, Any]
    connector: Connector | None = None
    # What the job did to its connector, as the audit log names it (None: nothing worth an
    # event, e.g. a reauthorise waiting for its callback); written with the job's end.
    change: AuditType | None = None
