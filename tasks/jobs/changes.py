"""What a job's end writes to the audit log (contract §12): the change its flow made to its
connector (``Outcome.change``, or a failure's ``change``), by whom the job was queued.

The flows name the change, since only they know it: an ``authorise`` creates its connector
(``connector.created``, pending or authorised); a ``reauthorise`` that completes at once, or
the callback that completes one, re-authorises it; a ``refresh`` that replaced the tokens
refreshes it, and one the provider refused expires it. A job that changed nothing (a
reauthorise waiting for its callback, a refresh another run already made) writes no event,
nor does the callback that completes a new connector: its creation is already in the log.
"""

from __future__ import annotations

from tasks.errors import JobFailed
from tasks.flows.outcome import Outcome
from tasks.model.audit import Actor, AuditEvent, DetailValue
from tasks.model.records import Job


def change_event(job: Job, end: Outcome | JobFailed, actor: Actor) -> AuditEvent | None:
    """The event of the job's change, or None. Its details are ids and a status, never a
    variable or a credential."""
    if end.change is None or job.connector_id is None:
        return None
    details: dict[str, DetailValue] = {"job_id": job.id, "job_type": job.type}
    shown = (job.result or {}).get("connector") if isinstance(end, Outcome) else None
    if isinstance(shown, dict) and isinstance(shown.get("status"), str):
        details["status"] = shown["status"]
    return AuditEvent.new(end.change, actor, job.connector_id, **details)
