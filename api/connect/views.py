"""The connect page's handlers (contract §11), routed by ``api/connect/routes.py``.

``/connect/{token}`` lists what the session offers (a reconnect session shows its connector's
form); ``?implementation=…`` is one implementation's form, posted back to ``/connect/{token}``;
``/connect/{token}/job?implementation=…&ref=…`` follows the queued job until the browser goes to
the provider, to the session's ``return_url``, or sees the form again with what went wrong.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from api.connect import render, returning, security, templates
from api.connect.errors import place_job_error, place_validation
from api.connect.offer import asked, offered
from api.connect.submission import build, connector_of, submit, typed
from api.ratelimit import ApiRateLimiter
from api.typedefs import CATALOG, SETTINGS, STORE
from api.views.oauth import return_to
from api.waiting import wait_for_job
from tasks.errors import QueueUnavailable, RequestInvalid, TenantFull
from tasks.model.catalog import Implementation
from tasks.model.records import Connector, Job, Session, utcnow
from tasks.storage import schema

# How long a post (or a job's page) holds its answer for the job to end, before it shows a page
# that refreshes itself: most checks and redirects are ready well within it.
POST_WAIT_SECONDS = 10.0
FOLLOW_WAIT_SECONDS = 2.0
STYLE = resources.files("api.connect").joinpath("connect.css").read_bytes()


class _Page:
    """The session a request's token opens, and what its pages need to know of it."""

    def __init__(self, request: web.Request, session: Session, token: str) -> None:
        self.request, self.session, self.token = request, session, token
        self.key = security.page_key(request.app[SETTINGS])
        self.token_sha256 = session.connect_token_sha256 or ""
        self.secure = request.app[SETTINGS].effective_public_url.startswith("https://")
        self.cookie = security.csrf_cookie(request)

    def answer(self, status: int, text: str) -> web.Response:
        response = render.html(status, text)
        security.remember_csrf(response, self.cookie, self.secure)
        return response

    def form(self, impl: Implementation, values: dict[str, str], connector: Connector | None, status: int = 200,
             errors: dict[str, str] | None = None, summary: list[str] | None = None) -> web.Response:
        reconnect = self.session.connector_id is not None
        back_with = {"connector_id": self.session.connector_id} if self.session.connector_id else {}
        give_up = return_to(self.session.return_url, status="cancelled", **back_with)
        form = templates.Form(action=f"/connect/{self.token}", implementation=impl.id,
                              csrf=security.csrf_token(self.key, self.cookie, self.token_sha256),
                              system=impl.system, fields=render.fields(impl, values, connector),
                              errors=errors or {}, summary=summary or [],
                              back=None if reconnect else f"/connect/{self.token}", give_up=give_up)
        return self.answer(status, templates.form_page(form))


async def _page(request: web.Request) -> _Page | web.Response:
    token = request.match_info["token"]
    limiter = ApiRateLimiter(request.app[STORE].pipelined, security.RATE_PER_SECOND, key=schema.connect_rate)
    wait = await limiter.wait_for(schema.sha256(token))
    if wait > 0:
        return render.html(429, templates.message_page("Too many requests", "Wait a moment, then reload the page."),
                           headers={"Retry-After": str(max(1, round(wait)))})
    session = await request.app[STORE].session_by_connect_token(token)
    return render.not_found() if session is None else _Page(request, session, token)


async def _implementation(page: _Page, impl_id: str) -> Implementation | None:
    """The implementation the page may connect: one it offers, or the reconnected connector's."""
    catalog = page.request.app[CATALOG]
    if page.session.connector_id is not None:
        connector = await connector_of(page.request, page.session)
        impl = catalog.implementation(connector.authentication_implementation_id) if connector else None
        return impl if impl is not None and impl.id == impl_id else None
    return next((i for i in offered(page.session, catalog) if i.id == impl_id), None)


async def index(request: web.Request) -> web.StreamResponse:
    page = await _page(request)
    if isinstance(page, web.Response):
        return page
    if "implementation" in request.query:
        impl = await _implementation(page, request.query["implementation"])
        if impl is None:
            return render.not_found()
        return page.form(impl, {}, await connector_of(request, page.session))
    if page.session.connector_id is not None:
        connector = await connector_of(request, page.session)
        impl = request.app[CATALOG].implementation(connector.authentication_implementation_id) if connector else None
        if connector is None or impl is None:
            return page.answer(404, templates.message_page(
                "Nothing to reconnect", "The account this link reconnects no longer exists."))
        return page.form(impl, {}, connector)
    choices = [(returning.form_path(page.token, impl.id), impl.system, render.KINDS.get(impl.type, impl.type))
               for impl in offered(page.session, request.app[CATALOG])]
    return page.answer(200, templates.chooser(choices))


async def post(request: web.Request) -> web.StreamResponse:
    page = await _page(request)
    if isinstance(page, web.Response):
        return page
    if request.content_type != "application/x-www-form-urlencoded":
        return page.answer(415, templates.message_page("Not a form", "This address takes the page's form only."))
    posted = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    impl = await _implementation(page, posted.get("implementation", ""))
    if impl is None:
        return render.not_found()
    if not security.csrf_valid(page.key, request, posted.get(security.CSRF_FIELD, ""), page.token_sha256):
        return page.answer(403, templates.message_page(
            "Please try again", "The form had expired or came from elsewhere. Reload the page and send it again "
            "(the page needs cookies).", link=(returning.form_path(page.token, impl.id), "Reload the form")))
    connector = await connector_of(request, page.session)
    values = typed(posted, impl)
    asked_for = build(page.session, impl, values, connector)
    try:
        job, job_json = await submit(request, page.session, asked_for, connector)
    except RequestInvalid as exc:
        by_field, rest = place_validation(exc.errors, asked_for.sent, [v.key for v in asked(impl)])
        return page.form(impl, values, connector, 422, by_field, rest)
    except (QueueUnavailable, TenantFull):
        return page.answer(503, templates.message_page("Please try again", "The connection could not be started "
                                                       "just now. Wait a few seconds and send the form again."))
    stored = await wait_for_job(request, page.session.tenant, job.id, job_json.encode(), POST_WAIT_SECONDS)
    return await _after(page, impl, Job.from_stored(stored, page.session.tenant), values)


async def follow(request: web.Request) -> web.StreamResponse:
    page = await _page(request)
    if isinstance(page, web.Response):
        return page
    impl = await _implementation(page, request.query.get("implementation", ""))
    job_id = security.job_of_ref(page.key, request.query.get("ref", ""), page.token_sha256)
    job = await request.app[STORE].job(page.session.tenant, job_id) if impl and job_id else None
    if impl is None or job is None:
        return render.not_found()
    if not job.finished:
        stored = await wait_for_job(request, page.session.tenant, job.id, job.stored_json().encode(),
                                    FOLLOW_WAIT_SECONDS)
        job = Job.from_stored(stored, page.session.tenant)
    return await _after(page, impl, job, None)


async def _after(page: _Page, impl: Implementation, job: Job, values: dict[str, str] | None) -> web.StreamResponse:
    """Where a job leaves the browser: following it, at the provider, back at the form, or done."""
    ref = security.job_ref(page.key, job.id, page.token_sha256)
    here = returning.follow_path(page.token, impl.id, ref)
    if not job.finished:
        return page.answer(200, templates.message_page(
            "Connecting…", f"Connecting to {impl.system}; this page updates itself.", refresh_to=here))
    connector = await connector_of(page.request, page.session)
    if job.status == "failed":
        if values is None and connector is None and job.connector_id:
            # Back after the provider: what the user typed is on the connector the job left (never a secret).
            failed = await page.request.app[STORE].connector(page.session.tenant, job.connector_id)
            values = {v.key: v.value for v in failed.variables if not v.secret and v.value} if failed else {}
        by_field, rest = place_job_error(job.error, impl, [v.key for v in asked(impl)])
        return page.form(impl, values or {}, connector, 200, by_field, rest)
    next_action = (job.result or {}).get("next_action")
    if next_action and next_action.get("type") == "redirect":
        public_url = page.request.app[SETTINGS].effective_public_url
        answer = web.HTTPSeeOther(returning.provider_url(next_action["url"], impl, public_url))
        remaining = int((page.session.expires_at - utcnow()).total_seconds())
        returning.remember(answer, page.token, remaining, page.secure)
        answer.headers.update(security.HEADERS)
        raise answer
    status = "authorised"
    location = return_to(page.session.return_url, connector_id=job.connector_id or "", status=status)
    if location is not None:
        raise web.HTTPSeeOther(location, headers=security.HEADERS)
    return page.answer(200, templates.message_page(
        "Connected", f"Your {impl.system} account is connected. You can close this window."))


async def stylesheet(request: web.Request) -> web.StreamResponse:
    return web.Response(body=STYLE, content_type="text/css",
                        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})
