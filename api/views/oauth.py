"""The seed endpoints (contract §5, Authorisation) and the pages a browser lands on."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web
from yarl import URL

from api import pages
from api.auth import tenant
from api.body import json_body
from api.connect import returning
from api.path_ids import path_id
from api.submit import accept, submit, unavailable
from api.typedefs import BOX, CATALOG, STORE
from tasks.errors import NotFound, QueueUnavailable, RequestInvalid
from tasks.model.bodies import AuthenticateIn, OAuth1AuthenticateIn, WooCallbackIn
from tasks.model.records import new_id
from tasks.validation.field_errors import parse
from tasks.validation.submission import validate_authorise, validate_reauthorise

AUTHENTICATE = "/api/v1/oauth/authenticate"
WOO = "/api/v1/oauth/woo-app-auth"


async def authorise(request: web.Request) -> web.StreamResponse:
    data = await json_body(request)
    body = validate_authorise(data, request.app[CATALOG], request.app[BOX])
    # The connector id is chosen now and travels in the job: a redelivered job reuses it.
    return await submit(request, tenant(request), "authorise", new_id("con"), body.model_dump(exclude_unset=True))


async def reauthorise(request: web.Request) -> web.StreamResponse:
    owner = tenant(request)
    connector = await request.app[STORE].connector(owner, path_id(request, "connector"))
    if connector is None:
        raise NotFound("Connector")
    data = await json_body(request)
    body, _ = validate_reauthorise(data, connector, request.app[CATALOG], request.app[BOX])
    return await submit(request, owner, "reauthorise", connector.id, body.model_dump(exclude_unset=True))


async def authenticate(request: web.Request) -> web.StreamResponse:
    """A front end forwards the provider's answer with its API key: ``{code, state}`` (OAuth 2)
    or ``{oauth_token, oauth_verifier}`` (OAuth 1.0a, whose request token is the state)."""
    data = await json_body(request)
    body: AuthenticateIn | OAuth1AuthenticateIn
    if isinstance(data, dict) and "oauth_token" in data:
        body = parse(OAuth1AuthenticateIn, data)
        raw, kind = body.oauth_token, "oauth1"
    else:
        body = parse(AuthenticateIn, data)
        if body.code is None and body.error is None:
            raise RequestInvalid({"code": ["The code field is required when error is not present."]})
        raw, kind = body.state, "oauth"
    owner = tenant(request)
    store = request.app[STORE]
    job_id = new_id("job")
    state = await store.auth_state(raw)
    connector_id = None
    if state is not None and state.kind == kind and state.tenant == owner:
        connector_id = state.connector_id
        # Only the first callback claims the state; any other's job fails with state_invalid.
        await store.claim_state(raw, state, job_id)
    return await submit(request, owner, "authenticate", connector_id, body.model_dump(exclude_unset=True),
                        job_id=job_id)


def return_to(return_url: str | None, **params: str) -> str | None:
    """The session's ``return_url`` with ``params`` added, written by yarl as the session's
    validation read it; None without one, or for one stored before that validation that
    cannot be made a redirect (the browser then gets the page that follows the job)."""
    if not return_url:
        return None
    try:
        return str(URL(return_url).extend_query(params))
    except ValueError:
        return None


async def authenticate_redirect(request: web.Request) -> web.StreamResponse:
    """The provider's redirect straight to authq (no API key: the state is the credential; for
    OAuth 1.0a, the request token in ``oauth_token``)."""
    oauth1 = "state" not in request.query and "oauth_token" in request.query
    raw = request.query.get("oauth_token" if oauth1 else "state", "")
    store = request.app[STORE]
    state = await store.auth_state(raw) if raw else None
    if state is None or state.kind != ("oauth1" if oauth1 else "oauth"):
        return pages.invalid_state()
    job_id = new_id("job")
    # Decided before the state is claimed: nothing after the claim can fail on the URL.
    location = return_to(state.return_url, connector_id=state.connector_id, job_id=job_id)
    if not await store.claim_state(raw, state, job_id):
        return pages.invalid_state()
    try:
        if oauth1:
            body: AuthenticateIn | OAuth1AuthenticateIn = parse(OAuth1AuthenticateIn, {
                "oauth_token": raw, "oauth_verifier": request.query.get("oauth_verifier", "")})
        else:
            fields = {k: request.query[k] for k in ("code", "error", "error_description", "iss")
                      if k in request.query}
            body = parse(AuthenticateIn, {"state": raw, **fields})
    except RequestInvalid:
        await store.release_state_claim(raw)
        return pages.page(400, "This answer is not valid", "The provider's answer is malformed; start again.")
    try:
        job, _ = await accept(request, state.tenant, "authenticate", state.connector_id,
                           body.model_dump(exclude_unset=True), job_id=job_id)
    except QueueUnavailable:
        await store.release_state_claim(raw)  # the provider's redirect may be retried by the user
        return pages.page(503, "Please try again", "authq could not queue the connection just now. Reload this page.")
    connect_page = await returning.page_for(request, state, job_id)
    if connect_page is not None:  # back to the connect page this browser came from, following the job
        raise returning.back_to_page(connect_page)
    if location is not None:
        raise web.HTTPSeeOther(location)
    return pages.job_status(job, f"{AUTHENTICATE}/status?" + urlencode({"state": raw}))


async def authenticate_status(request: web.Request) -> web.StreamResponse:
    """The page the GET callback leaves the browser on, following the job to its end."""
    raw = request.query.get("state", "")
    store = request.app[STORE]
    state = await store.auth_state(raw) if raw else None
    job_id = await store.state_claimed_by(raw) if state else None
    job = await store.job(state.tenant, job_id) if state and job_id else None
    return pages.job_status(job, f"{AUTHENTICATE}/status?" + urlencode({"state": raw}))


async def woo_app_auth(request: web.Request) -> web.StreamResponse:
    """WooCommerce posts the keys; 200 (empty) only once they are stored, else it deletes them."""
    body = parse(WooCallbackIn, await json_body(request))
    store = request.app[STORE]
    state = await store.auth_state(body.user_id)
    job_id = new_id("job")
    if state is None or state.kind != "woo" or not await store.claim_state(body.user_id, state, job_id):
        raise NotFound("State")
    keys = {"state": body.user_id, "consumer_key": body.consumer_key, "consumer_secret": body.consumer_secret,
            "key_permissions": body.key_permissions, "key_id": body.key_id}
    try:
        await accept(request, state.tenant, "woo_app_auth", state.connector_id, keys, job_id=job_id)
    except QueueUnavailable:
        await store.release_state_claim(body.user_id)
        return unavailable()
    return web.Response(status=200)


async def woo_return(request: web.Request) -> web.StreamResponse:
    """Where WooCommerce sends the store owner's browser afterwards (``?success=1&user_id=…``)."""
    raw = request.query.get("user_id", "")
    store = request.app[STORE]
    state = await store.auth_state(raw) if raw else None
    if state is None or state.kind != "woo":
        return pages.invalid_state()
    job_id = await store.state_claimed_by(raw)
    if job_id is None:
        if request.query.get("success") == "0":
            return pages.page(200, "Not connected", "The store owner did not approve the connection.")
        return pages.page(200, "Waiting for WooCommerce",
                          "The store has not sent its keys yet; this page updates itself.",
                          refresh_to=f"{WOO}?" + urlencode({"user_id": raw}))
    connect_page = await returning.page_for(request, state, job_id)
    if connect_page is not None:
        raise returning.back_to_page(connect_page)
    return pages.job_status(await store.job(state.tenant, job_id), f"{WOO}?" + urlencode({"user_id": raw}))
