"""The webhook events a job's end emits (contract §10), written in the batch that ends it.

- ``job.succeeded`` / ``job.failed``: every job, with the job as ``GET /jobs/{id}`` shows it;
- ``connector.authorised``: an authorise, reauthorise, authenticate or woo job that succeeded
  with its connector ``authorised`` and nothing left to do (not a redirect still to follow);
- ``connector.failed``: an authorise or a callback's job that failed and left its connector
  ``failed`` (the runner or the callback marked it before the end);
- ``connector.expired``: a refresh the provider refused (``invalid_grant``), which expired the
  connector before the end (``refresh.py``).

A redelivered job that ends again emits again (at least once); a receiver drops repeats by
``webhook-id`` only within one emission, so these are rare by design: an end is written once.
"""

from __future__ import annotations

from collections.abc import Callable

from tasks.errors import JobFailed
from tasks.flows.outcome import Outcome
from tasks.model.records import Connector, Job
from tasks.model.views import ConnectorView
from tasks.model.webhooks import Event

AUTHORISING = frozenset({"authorise", "reauthorise", "authenticate", "woo_app_auth"})
FAILING = frozenset({"authorise", "authenticate", "woo_app_auth"})


def connector_event_type(job: Job, end: Outcome | JobFailed) -> str | None:
    """Which connector event the end emits, if any (before reading the connector)."""
    if isinstance(end, JobFailed):
        if end.change == "connector.expired":
            return "connector.expired"
        return "connector.failed" if job.type in FAILING and job.connector_id else None
    result = job.result or {}
    shown = result.get("connector")
    if (job.type in AUTHORISING and result.get("next_action") is None and isinstance(shown, dict)
            and shown.get("status") == "authorised"):
        return "connector.authorised"
    return None


def job_end_events(job: Job, end: Outcome | JobFailed,
                   read_connector: Callable[[], Connector | None]) -> list[Event]:
    """The events of the job's end; ``read_connector`` is called only for a failure's connector."""
    events = []
    kind = connector_event_type(job, end)
    shown: ConnectorView | None = None
    if kind == "connector.authorised":
        shown = (job.result or {})["connector"]
    elif kind is not None:
        stored = read_connector()
        wanted = "expired" if kind == "connector.expired" else "failed"
        shown = stored.view() if stored is not None and stored.status == wanted else None
    if kind is not None and shown is not None:
        events.append(Event.of_connector(kind, shown, job.id))  # type: ignore[arg-type]
    events.append(Event.of_job(job.view()))
    return events
