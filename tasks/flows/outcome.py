"""What a job handler hands back to the runner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasks.model.records import Connector


@dataclass
class Outcome:
    """The job's result, and the connector to store in the transaction that ends the job.

    Written together, a poller never sees the job ``succeeded`` before its connector is
    ``authorised`` (or the reverse), and the job's end costs one round trip, not two.
    """

    result: dict[str, Any]
    connector: Connector | None = None
