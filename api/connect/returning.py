"""Bringing a connect page's browser back from the provider to the page that follows its job.

The page's token is kept only as its hash, so the provider's redirect (to authq's callback, by
the single-use state) cannot name the page. The page, as it sends the browser to the provider,
gives it the token in a cookie scoped to the callbacks' path (``HttpOnly``, ``SameSite=Lax``: a
top-level navigation back from the provider carries it); the callback then sends the browser to
the page when the cookie's session is the one that issued the state. Without the cookie the
callback answers as it always has (the session's ``return_url``, or the page following the job).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web

from api.connect.security import job_ref, page_key
from api.typedefs import SETTINGS, STORE
from tasks.model.catalog import Implementation
from tasks.storage.states import AuthState

RETURN_COOKIE = "authq_connect_return"
RETURN_PATH = "/api/v1/oauth/"
WOO_LANDING = "/api/v1/oauth/woo-app-auth"


def form_path(token: str, impl_id: str) -> str:
    return f"/connect/{token}?" + urlencode({"implementation": impl_id})


def follow_path(token: str, impl_id: str, ref: str) -> str:
    # (The token is the one part of a path: a page's addresses stay short whatever they carry.)
    return f"/connect/{token}/job?" + urlencode({"implementation": impl_id, "ref": ref})


def remember(response: web.StreamResponse, token: str, max_age: int, secure: bool) -> None:
    response.set_cookie(RETURN_COOKIE, token, path=RETURN_PATH, max_age=max(1, max_age), httponly=True,
                        samesite="Lax", secure=secure)


def provider_url(url: str, impl: Implementation, public_url: str) -> str:
    """Where the page sends the browser: the job's redirect, except that WooCommerce is asked to
    send the store owner back to authq's landing (then to this page), not straight to the
    session's ``return_url``, so the page can show how the connection ended."""
    if impl.type != "woocommerce_app":
        return url
    parts = urlsplit(url)
    query = [(k, public_url + WOO_LANDING if k == "return_url" else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def page_for(request: web.Request, state: AuthState, job_id: str) -> str | None:
    """The connect page following ``job_id``, when the browser came from the page of the session
    that issued ``state``; else None."""
    token = request.cookies.get(RETURN_COOKIE)
    if not token or state.session_id is None:
        return None
    session = await request.app[STORE].session_by_connect_token(token)
    if session is None or session.tenant != state.tenant or session.id != state.session_id:
        return None
    ref = job_ref(page_key(request.app[SETTINGS]), job_id, session.connect_token_sha256 or "")
    return follow_path(token, state.implementation_id, ref)


def back_to_page(location: str) -> web.HTTPSeeOther:
    answer = web.HTTPSeeOther(location)
    answer.del_cookie(RETURN_COOKIE, path=RETURN_PATH)
    return answer
