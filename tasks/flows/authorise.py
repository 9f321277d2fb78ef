"""The ``authorise`` and ``reauthorise`` jobs: look everything up, apply the settings,
run the implementation's flow, store the connector.

A redelivered authorise job writes the same connector id again (the id was chosen at
submission), so it can never create a second connector. A reauthorise builds the new
connector beside the old one and replaces it in one write, only once the flow succeeded:
the old credentials keep working until then.
"""

from __future__ import annotations

from typing import Any

from tasks.errors import ErrorCode, JobFailed, RequestInvalid
from tasks.flows import lookups, redirects
from tasks.flows.basic_token import complete_basic_or_token
from tasks.flows.jwt_grants import jwt_bearer_token
from tasks.flows.oauth1 import complete_oauth1_token
from tasks.flows.oauth2 import client_credentials_token, with_tokens
from tasks.flows.outcome import Outcome, Step
from tasks.jobs.context import JobContext
from tasks.model.bodies import AuthoriseIn, ReauthoriseIn
from tasks.model.catalog import Implementation
from tasks.model.records import Connector, Job, RateLimit
from tasks.validation.variables import build_variables, merge_variables


def _implementation(ctx: JobContext, implementation_id: str) -> Implementation:
    impl = ctx.catalog.implementation(implementation_id)
    if impl is None:
        raise JobFailed(ErrorCode.IMPLEMENTATION_NOT_FOUND,
                        f"The implementation {implementation_id!r} is no longer in the catalog.",
                        "authentication_implementation_id")
    return impl


def _lookups(ctx: JobContext, tenant: str, impl: Implementation, step: Step, *, session_id: str | None,
             certificate_id: str | None, pool_id: int | None, platform_app_key: str | None) -> None:
    if session_id:
        step("lookup_session")
        lookups.session(ctx, tenant, session_id, impl)
    if certificate_id:
        step("lookup_certificate")
        lookups.certificate(ctx, tenant, certificate_id)
    if pool_id is not None:
        step("lookup_connection_pool")
        lookups.connection_pool(ctx, tenant, pool_id)
    if platform_app_key:
        step("lookup_platform_app")
        lookups.platform_app(ctx, platform_app_key, impl)


def _invalid(exc: RequestInvalid) -> JobFailed:
    # The API validated the same rules before queueing; only a connector changed in between gets here.
    field, messages = next(iter(exc.errors.items()))
    return JobFailed(ErrorCode.VARIABLES_INVALID, messages[0], field)


def _complete(ctx: JobContext, job: Job, connector: Connector, impl: Implementation, step: Step, *,
              reauthorise: bool) -> tuple[Connector | None, dict[str, Any] | None]:
    """Run the implementation's flow: (the connector to store now or None, the next_action)."""
    if impl.type in ("basic", "token"):
        return complete_basic_or_token(ctx, connector, impl, step), None
    if impl.type == "oauth1_token":
        return complete_oauth1_token(ctx, connector, impl, step), None
    if impl.type == "oauth2_client_credentials":
        step("token_request")
        return with_tokens(ctx, connector, impl, client_credentials_token(ctx, connector, impl)), None
    if impl.type == "oauth2_jwt_bearer":
        step("token_request")
        return with_tokens(ctx, connector, impl, jwt_bearer_token(ctx, connector, impl)), None
    # Authorization code, OAuth 1.0a and WooCommerce need the end user: answer a redirect. A new
    # connector waits `pending`; a reauthorised one stays as it is until the callback.
    step("issue_state")
    next_action = redirects.begin(ctx, job, connector, impl, candidate=reauthorise)
    return (None if reauthorise else connector), next_action


def _waits(impl: Implementation) -> bool:
    """Whether the flow waits on someone else (a provider call, the end user). Only then is the
    connector worth storing as ``pending`` first; a flow done here writes it once, finished."""
    return impl.type not in ("basic", "token", "oauth1_token") or impl.check is not None


def authorise_needs_provider(ctx: JobContext, body: dict[str, Any]) -> bool:
    """Whether an authorise of this (validated) request calls a provider or sends the end user
    to one. If not, it writes nothing before its end. An implementation gone from the catalog
    needs nobody: the job fails here, at once."""
    impl = ctx.catalog.implementation(str(body.get("authentication_implementation_id")))
    return impl is not None and _waits(impl)


def _result(connector: Connector, next_action: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"connector": connector.view(), "next_action": next_action}


def authorise(ctx: JobContext, job: Job, body: dict[str, Any], step: Step) -> Outcome:
    req = AuthoriseIn.model_validate(body)
    impl = _implementation(ctx, req.authentication_implementation_id)
    _lookups(ctx, job.tenant, impl, step, session_id=req.session_id, certificate_id=req.certificate_id,
             pool_id=req.connection_pool_id, platform_app_key=req.platform_app_key)
    step("apply_settings")
    try:
        variables = build_variables(req.variables, impl, ctx.box, platform_app=req.platform_app_key is not None)
    except RequestInvalid as exc:
        raise _invalid(exc) from None
    assert job.connector_id is not None
    now = ctx.now()
    connector = Connector(
        id=job.connector_id, tenant=job.tenant, name=req.name or impl.system,
        authentication_implementation_id=impl.id, type=impl.type, system=impl.system, status="pending",
        timezone=req.timezone, date_format=req.date_format,
        rate_limit=RateLimit(unit=req.rate_limit_unit, duration=req.rate_limit_duration),
        connection_pool_id=req.connection_pool_id, certificate_id=req.certificate_id,
        session_id=req.session_id, platform_app_key=req.platform_app_key, variables=variables,
        # The job's creation, not this run's start: a redelivered job writes the same connector.
        created_at=job.created_at, updated_at=now,
    )
    if _waits(impl):  # (the flows of which ``authorise_needs_provider`` says so)
        ctx.store.save_connector(connector)  # pending meanwhile; the runner marks it failed if the job fails
    done, next_action = _complete(ctx, job, connector, impl, step, reauthorise=False)
    if done is not None and next_action is None:
        step("store_connector")
        return Outcome(_result(done), connector=done, change="connector.created")  # stored with the job's end
    return Outcome(_result(done or connector, next_action), change="connector.created")


def reauthorise(ctx: JobContext, job: Job, body: dict[str, Any], step: Step) -> Outcome:
    req = ReauthoriseIn.model_validate(body)
    assert job.connector_id is not None
    current = ctx.store.connector(job.tenant, job.connector_id)
    if current is None:
        raise JobFailed(ErrorCode.CONNECTOR_NOT_FOUND, "The connector was deleted before the job ran.", None)
    impl = _implementation(ctx, req.authentication_implementation_id or current.authentication_implementation_id)
    given = req.model_fields_set

    def pick(name: str, default: Any) -> Any:
        return getattr(req, name) if name in given else default

    platform_app_key = pick("platform_app_key", current.platform_app_key)
    certificate_id = pick("certificate_id", current.certificate_id)
    pool_id = pick("connection_pool_id", current.connection_pool_id)
    session_id = pick("session_id", current.session_id)
    _lookups(ctx, job.tenant, impl, step, session_id=session_id if "session_id" in given else None,
             certificate_id=certificate_id, pool_id=pool_id, platform_app_key=platform_app_key)
    step("apply_settings")
    given_for = ctx.catalog.implementation(current.authentication_implementation_id)
    try:
        variables = merge_variables(current.variables, req.variables or [], impl, ctx.box,
                                    platform_app=platform_app_key is not None, given_for=given_for)
    except RequestInvalid as exc:
        raise _invalid(exc) from None
    rate_limit = RateLimit(unit=pick("rate_limit_unit", current.rate_limit.unit) or current.rate_limit.unit,
                           duration=pick("rate_limit_duration", current.rate_limit.duration)
                           or current.rate_limit.duration)
    candidate = current.model_copy(update={
        "name": pick("name", current.name) or current.name,
        "authentication_implementation_id": impl.id, "type": impl.type, "system": impl.system,
        "timezone": pick("timezone", current.timezone) or current.timezone,
        "date_format": pick("date_format", current.date_format) or current.date_format,
        "rate_limit": rate_limit, "connection_pool_id": pool_id, "certificate_id": certificate_id,
        "session_id": session_id, "platform_app_key": platform_app_key, "variables": variables,
        "updated_at": ctx.now(),
    })
    done, next_action = _complete(ctx, job, candidate, impl, step, reauthorise=True)
    if done is None:
        return Outcome(_result(current, next_action))  # the callback's job applies the candidate
    step("store_connector")
    # Stored with the job's end: the one write in which the new credentials replace the old.
    return Outcome(_result(done), connector=done, change="connector.reauthorised")
