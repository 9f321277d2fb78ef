"""Jobs that finish a redirect flow: ``authenticate`` (the OAuth 2 code, or the OAuth 1.0a
verifier) and ``woo_app_auth`` (the keys).

The state must be one authq issued to this tenant, unexpired, and claimed by *this* job
(the API claims it atomically when the callback arrives): anything else is
``state_invalid`` and changes nothing. The connector is replaced in one write, with its
new credentials, only once the provider accepted them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2

from tasks.errors import Deferred, ErrorCode, JobFailed, ProviderError, ProviderUnreachable
from tasks.flows.oauth1 import fetch_access_token, with_oauth1_tokens
from tasks.flows.oauth2 import exchange_code, with_tokens
from tasks.flows.outcome import Outcome, Step
from tasks.jobs.context import JobContext
from tasks.model.bodies import AuthenticateIn, OAuth1AuthenticateIn
from tasks.model.catalog import Implementation
from tasks.model.records import Connector, Credentials, Job
from tasks.model.views import AuditType
from tasks.provider.connection import http_options
from tasks.provider.failures import ProviderDeclined, reached_provider
from tasks.provider.guard import render_url
from tasks.storage import states
from tasks.telemetry.redaction import scrub, scrub_optional
from tasks.validation.variables import plain_values


def _state(ctx: JobContext, job: Job, raw: str, kind: str) -> states.AuthState:
    state = states.load(ctx.store.redis, raw)
    if (state is None or state.kind != kind or state.tenant != job.tenant
            or states.claimed_by(ctx.store.redis, raw) != job.id):
        raise JobFailed(ErrorCode.STATE_INVALID, "The state was never issued, was already used or has expired.",
                        "state")
    return state


def _target(ctx: JobContext, job: Job, state: states.AuthState) -> tuple[Connector, Implementation]:
    """The connector the callback completes: a reauthorise's candidate, else the pending one.

    Either way the connector must still exist: a callback never brings a deleted one back.
    """
    found = ctx.store.connector(job.tenant, state.connector_id)
    if found is None:
        raise JobFailed(ErrorCode.CONNECTOR_NOT_FOUND, "The connector was deleted before the callback arrived.")
    if state.candidate is not None:
        # The new settings, over the current credential version (a refresh may have run since).
        connector = Connector.model_validate(state.candidate).model_copy(
            update={"credential_version": found.credential_version})
    else:
        connector = found
    impl = ctx.catalog.implementation(connector.authentication_implementation_id)
    if impl is None:
        raise JobFailed(ErrorCode.IMPLEMENTATION_NOT_FOUND, "The connector's implementation left the catalog.",
                        "authentication_implementation_id")
    return connector, impl


def _store(ctx: JobContext, connector: Connector) -> None:
    """Replace the stored connector in one write, unless it was deleted during the callback."""
    if not ctx.store.replace_connector_if_exists(connector):
        raise JobFailed(ErrorCode.CONNECTOR_NOT_FOUND,
                        "The connector was deleted while the callback was completing it.")


def _change(state: states.AuthState) -> AuditType | None:
    """A callback completing a reauthorise re-authorises its connector; one completing a new
    connector writes no event (its authorise recorded the creation)."""
    return "connector.reauthorised" if state.candidate is not None else None


def _fail_pending(ctx: JobContext, connector: Connector, state: states.AuthState) -> None:
    if state.candidate is None and connector.status == "pending":
        failed = connector.model_copy(update={"status": "failed", "updated_at": ctx.now()})
        ctx.store.replace_connector_if_exists(failed)  # a connector deleted meanwhile stays deleted


def authenticate(ctx: JobContext, job: Job, body: dict[str, Any], step: Step) -> Outcome:
    if "oauth_token" in body:
        return authenticate_oauth1(ctx, job, body, step)
    req = AuthenticateIn.model_validate(body)
    step("lookup_state")
    state = _state(ctx, job, req.state, "oauth")
    job.connector_id = state.connector_id
    connector, impl = _target(ctx, job, state)
    try:
        if state.issuer and req.iss != state.issuer:
            # RFC 9207 (error responses included): another issuer's answer is a mix-up attack.
            raise JobFailed(ErrorCode.STATE_INVALID, "The authorization response names an unexpected issuer (iss).",
                            "iss")
        if req.error:
            # The provider's words reach the job's error, scrubbed of anything token-like.
            code = ErrorCode.ACCESS_DENIED if req.error == "access_denied" else ErrorCode.PROVIDER_ERROR
            error, description = scrub(req.error), scrub_optional(req.error_description)
            raise JobFailed(code, description or f"The provider answered {error!r}.", None,
                            provider={"error": error, "error_description": description})
        if not req.code:
            raise JobFailed(ErrorCode.STATE_INVALID, "The authorization response carries no code.", "code")
        verifier = ctx.box.open(state.code_verifier_sealed) if state.code_verifier_sealed else None
        auth_code = req.code
        token = _exchange_once(ctx, job, state, req.state, connector, step,
                               lambda: exchange_code(ctx, connector, impl, auth_code, verifier))
    except JobFailed as exc:
        if not exc.retryable:
            _fail_pending(ctx, connector, state)
        raise
    if token is None:  # an earlier run of this job stored the tokens, then its worker died
        stored = ctx.store.connector(job.tenant, connector.id)
        return Outcome({"connector": (stored or connector).view(), "next_action": None}, change=_change(state))
    connector = with_tokens(ctx, connector, impl, token)
    step("store_connector")
    _store(ctx, connector)
    return Outcome({"connector": connector.view(), "next_action": None}, change=_change(state))


def _exchange_once(ctx: JobContext, job: Job, state: states.AuthState, raw: str, connector: Connector,
                   step: Step, send: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """Send the code (or OAuth 1.0a verifier) to the token endpoint at most once, whatever
    happens to the worker.

    Providers treat a code used twice as an attack and revoke the grant, so a run that finds
    the exchange already started (its worker died) never sends it again: it reports the
    tokens the earlier run stored (``None``), or fails asking for a new authorisation. A failed
    exchange leaves the code unspent only when it cannot have been used (``reached_provider``).
    """
    client = ctx.store.redis
    if not client.set(states.exchange_key(raw), job.id, nx=True, ex=states.ttl_of(state) + 86400):
        if connector.status == "authorised" and connector.credential_version > state.credential_version:
            return None
        raise JobFailed(ErrorCode.STATE_INVALID, "An earlier attempt already spent this authorization code and did not "
                        "finish; start the authorisation again.", "code")
    step("token_exchange")
    try:
        return send()
    except (JobFailed, Deferred) as exc:
        if not reached_provider(exc) or isinstance(exc, ProviderDeclined):
            # Not spent: never sent (no address, refused, no connection, no permit yet), or the
            # provider's 5xx / 429 said it did not serve it. A later attempt sends it.
            client.delete(states.exchange_key(raw))
        elif isinstance(exc, ProviderUnreachable):
            # Sent, and no usable answer: the provider may have spent the code, and may revoke
            # the grant if it comes again. Only a new authorisation can go on.
            raise JobFailed(exc.code, f"{exc.message} The authorization code may have reached the provider, so it "
                            "is not sent again: start the authorisation again.", "code", retryable=False) from None
        raise


def authenticate_oauth1(ctx: JobContext, job: Job, body: dict[str, Any], step: Step) -> Outcome:
    """OAuth 1.0a's callback: the request token plays the state's part (single-use, bound to
    tenant, connector and job, expiring); its verifier is traded once for token credentials.

    A verifier the provider refuses (400/401: it was not the one the provider issued) changes
    nothing: the request token's claim and exchange mark are freed and the connector stays as
    it was, so the user's own callback, with the right verifier, can still complete it."""
    req = OAuth1AuthenticateIn.model_validate(body)
    step("lookup_state")
    state = _state(ctx, job, req.oauth_token, "oauth1")
    job.connector_id = state.connector_id
    connector, impl = _target(ctx, job, state)
    secret = ctx.box.open(state.request_token_secret_sealed or "")
    try:
        token = _exchange_once(ctx, job, state, req.oauth_token, connector, step, lambda: fetch_access_token(
            ctx, connector, impl, req.oauth_token, secret, req.oauth_verifier))
    except ProviderError as exc:
        if (exc.provider or {}).get("error") in ("http_400", "http_401"):
            ctx.store.redis.delete(states.exchange_key(req.oauth_token))
            states.release(ctx.store.redis, req.oauth_token)
            raise JobFailed(ErrorCode.STATE_INVALID, "The provider refused the oauth_verifier; nothing changed, and "
                            "the authorisation can still complete with the provider's own redirect.",
                            "oauth_verifier") from None
        if not exc.retryable:
            _fail_pending(ctx, connector, state)
        raise
    except JobFailed as exc:
        if not exc.retryable:
            _fail_pending(ctx, connector, state)
        raise
    if token is None:  # an earlier run of this job stored the tokens, then its worker died
        stored = ctx.store.connector(job.tenant, connector.id)
        return Outcome({"connector": (stored or connector).view(), "next_action": None}, change=_change(state))
    connector = with_oauth1_tokens(ctx, connector, impl, token["oauth_token"], token["oauth_token_secret"])
    step("store_connector")
    _store(ctx, connector)
    return Outcome({"connector": connector.view(), "next_action": None}, change=_change(state))


def woo_app_auth(ctx: JobContext, job: Job, body: dict[str, Any], step: Step) -> Outcome:
    step("lookup_state")
    state = _state(ctx, job, str(body.get("state", "")), "woo")
    job.connector_id = state.connector_id
    connector, impl = _target(ctx, job, state)
    key, secret = str(body["consumer_key"]), str(body["consumer_secret"])
    try:
        if impl.check is not None:
            step("credential_check")
            url = render_url(impl.check.url, plain_values(connector.variables, ctx.box))
            ctx.outbound.check(impl.check.method, url, auth=httpx2.BasicAuth(key, secret),
                               options=http_options(ctx, connector))
    except JobFailed as exc:
        if not exc.retryable:
            _fail_pending(ctx, connector, state)
        raise
    now = ctx.now()
    connector = connector.model_copy(update={
        "status": "authorised",
        "credentials": Credentials(token_type="basic", scopes=[str(body.get("key_permissions") or impl.scope)]),
        "credentials_sealed": ctx.box.seal_json({"username": key, "password": secret,
                                                 "key_id": body.get("key_id")}),
        "credential_version": connector.credential_version + 1,
        "authorised_at": now, "updated_at": now,
    })
    step("store_connector")
    _store(ctx, connector)
    return Outcome({"connector": connector.view(), "next_action": None}, change=_change(state))
