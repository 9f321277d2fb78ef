"""What every connect page carries: its security headers, a CSRF token bound to the browser,
signed links to a job, and a rate limit per page token.

CSRF: the page sets a random cookie (``HttpOnly``, ``SameSite=Strict``, path ``/connect/``) and
each form carries an HMAC of that cookie and the session's token hash; a post whose field does
not match what its own cookie gives is refused. A link to a job (``/connect/{token}/jobs/{ref}``)
is signed the same way, so one session's page cannot be made to show another's job.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from aiohttp import web

from tasks.settings import Settings

CSRF_COOKIE = "authq_connect_csrf"
CSRF_FIELD = "csrf_token"
COOKIE_PATH = "/connect/"
# Requests per second one page token may make (its pages refresh once a second while they wait).
RATE_PER_SECOND = 5.0

HEADERS = {
    # Everything from authq's own origin; no frame may hold a page. (No ``form-action``: a post's
    # answer redirects the browser on to the provider or the return_url, which it would block.)
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def page_key(settings: Settings) -> bytes:
    """The pages' HMAC key, derived from the newest ``AUTHQ_SECRET_KEY`` key (never used for anything else)."""
    newest = (settings.secret_key.get_secret_value() if settings.secret_key else "").split(",")[0].strip()
    return hashlib.sha256(b"authq connect page\0" + newest.encode()).digest()


def _mac(key: bytes, *parts: str) -> str:
    return hmac.new(key, "\0".join(parts).encode(), hashlib.sha256).hexdigest()


def with_headers(response: web.Response) -> web.Response:
    response.headers.update(HEADERS)
    return response


def csrf_cookie(request: web.Request) -> str:
    """The browser's CSRF cookie, or a new one (``remember_csrf`` sets it on the answer)."""
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def remember_csrf(response: web.Response, cookie: str, secure: bool) -> None:
    response.set_cookie(CSRF_COOKIE, cookie, path=COOKIE_PATH, httponly=True, samesite="Strict", secure=secure)


def csrf_token(key: bytes, cookie: str, token_sha256: str) -> str:
    return _mac(key, "csrf", cookie, token_sha256)


def csrf_valid(key: bytes, request: web.Request, posted: str, token_sha256: str) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    return bool(cookie and posted) and hmac.compare_digest(csrf_token(key, cookie or "", token_sha256), posted)


def job_ref(key: bytes, job_id: str, token_sha256: str) -> str:
    """A job's reference in the page's links: the id and a MAC binding it to this session."""
    return f"{job_id}.{_mac(key, 'job', job_id, token_sha256)[:32]}"


def job_of_ref(key: bytes, ref: str, token_sha256: str) -> str | None:
    job_id, _, _ = ref.partition(".")
    return job_id if job_id and hmac.compare_digest(job_ref(key, job_id, token_sha256), ref) else None
