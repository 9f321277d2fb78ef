"""Which handler runs each job type, and whether it needs a provider: declared here, once.

``needs_provider(ctx, body)`` is asked of the job's validated request before anything runs.
False promises that the handler calls no provider, sends no end user anywhere and writes
nothing before the job's end (it only reads): such a job's first delivery is run from its
message's copy and ended in one round trip (``runner.JobRun.from_copy``). True is always safe:
the job then runs from the store, the usual way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tasks.flows.authorise import authorise, authorise_needs_provider, reauthorise
from tasks.flows.callbacks import authenticate, woo_app_auth
from tasks.flows.outcome import Outcome, Step
from tasks.flows.refresh import refresh
from tasks.jobs.context import JobContext
from tasks.model.records import Job


def always(ctx: JobContext, body: dict[str, Any]) -> bool:
    """The handler may need a provider (or the end user) whatever the request."""
    return True


@dataclass(frozen=True)
class JobHandler:
    run: Callable[[JobContext, Job, dict[str, Any], Step], Outcome]
    needs_provider: Callable[[JobContext, dict[str, Any]], bool]


HANDLERS: dict[str, JobHandler] = {
    # A basic or token connector without a check request (or an implementation gone from
    # the catalog, which fails at once) is done here; every other flow calls or redirects.
    "authorise": JobHandler(authorise, needs_provider=authorise_needs_provider),
    # Its flow may be the stored connector's, which the request alone does not tell.
    "reauthorise": JobHandler(reauthorise, needs_provider=always),
    "authenticate": JobHandler(authenticate, needs_provider=always),
    "woo_app_auth": JobHandler(woo_app_auth, needs_provider=always),
    "refresh": JobHandler(refresh, needs_provider=always),
}
