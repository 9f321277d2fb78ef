"""The demo provider's HTML: server-rendered, no JavaScript, nothing from another origin.

Every page has a language, a title, one ``h1`` and a ``main``; its buttons are real
``<button>``s of a form (reachable and pressed with the keyboard). The one style block is
allowed by its hash in ``Content-Security-Policy``, which allows nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable

from aiohttp import web

from tasks.demo import facts

STYLE = ("body{font-family:system-ui,sans-serif;max-width:42em;margin:2em auto;padding:0 1em;line-height:1.5}"
         "button{font-size:1em;padding:.5em 1.2em;margin-right:.8em}button:focus{outline:3px solid #1a5fb4}"
         "code{background:#eee;padding:0 .2em}dt{font-weight:bold}")
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
HEADERS = {
    "Content-Security-Policy": f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def page(title: str, body: str, status: int = 200) -> web.Response:
    text = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)} — authq demo</title><style>{STYLE}</style></head>"
            f"<body><main><h1>{esc(title)}</h1>{body}</main></body></html>")
    return web.Response(status=status, text=text, content_type="text/html", headers=HEADERS)


def problem(title: str, message: str, status: int = 400) -> web.Response:
    return page(title, f"<p role=\"alert\">{esc(message)}</p>", status)


def decision_form(action: str, request_id: str, question_id: str, approve: str, deny: str) -> str:
    """Approve and Deny as the two buttons of one form, which carries the pending request's id."""
    return (f"<form method=\"post\" action=\"{esc(action)}\" aria-labelledby=\"{question_id}\">"
            f"<input type=\"hidden\" name=\"request\" value=\"{esc(request_id)}\">"
            f"<button type=\"submit\" name=\"decision\" value=\"approve\">{esc(approve)}</button>"
            f"<button type=\"submit\" name=\"decision\" value=\"deny\">{esc(deny)}</button></form>")


def consent(request_id: str, scopes: Iterable[str]) -> web.Response:
    items = "".join(f"<li><code>{esc(s)}</code></li>" for s in scopes)
    body = (f"<p>Signed in as <strong>{esc(facts.USER_NAME)}</strong> (<code>{esc(facts.USERNAME)}</code>).</p>"
            f"<h2 id=\"question\">Allow <code>{esc(facts.CLIENT_ID)}</code> to use your demo account?</h2>"
            f"<p>It asks for these scopes:</p><ul>{items}</ul>"
            + decision_form(facts.AUTHORIZE_PATH, request_id, "question", "Approve", "Deny"))
    return page("Authorize access", body)


def store_approval(request_id: str, app_name: str, scope_label: str) -> web.Response:
    body = (f"<p>Logged in to the demo store as <strong>{esc(facts.USER_NAME)}</strong>.</p>"
            f"<h2 id=\"question\"><strong>{esc(app_name)}</strong> would like to connect to the demo store</h2>"
            f"<p>This will give it <strong>{esc(scope_label)}</strong> access: new REST API keys are made and sent "
            "to it.</p>" + decision_form(facts.WOO_AUTHORIZE_PATH, request_id, "question", "Approve", "Deny"))
    return page("Connect an app to the demo store", body)


def index(public_url: str) -> web.Response:
    base = esc(public_url)
    body = (
        "<p>A small provider served by this authq itself, so that every flow can be tried on a machine "
        "with no internet. The catalog has four implementations pointing here.</p>"
        "<h2>What to type</h2><dl>"
        f"<dt><code>demo-basic</code></dt><dd>username <code>{esc(facts.USERNAME)}</code>, password "
        f"<code>{esc(facts.PASSWORD)}</code> (anything else is refused).</dd>"
        f"<dt><code>demo-oauth2</code>, <code>demo-client-credentials</code></dt><dd>client ID "
        f"<code>{esc(facts.CLIENT_ID)}</code>, client secret <code>{esc(facts.CLIENT_SECRET)}</code> (the "
        "catalog fills them in); the consent page has Approve and Deny.</dd>"
        "<dt><code>demo-woo</code></dt><dd>nothing: the store's page has Approve and Deny and sends new keys "
        "to authq.</dd></dl>"
        "<h2>Where things are</h2><ul>"
        f"<li>OAuth 2: <code>{base}{facts.AUTHORIZE_PATH}</code> (code + PKCE S256) and "
        f"<code>{base}{facts.TOKEN_PATH}</code> (refresh tokens rotate; client credentials)</li>"
        f"<li>Store: <code>{base}{facts.WOO_AUTHORIZE_PATH}</code></li>"
        f"<li>API: <code>{base}{facts.API_PATH}/me</code> answers who the credentials belong to "
        f"(<code>401</code> without valid ones), <code>{base}{facts.API_PATH}/orders</code> a few orders</li>"
        "</ul><p>The API's documentation: <a href=\"/api/docs\">/api/docs</a>.</p>")
    return page("The authq demo provider", body)
