"""The connect page's HTML: one layout and the few page bodies, every value escaped here.

No script and no inline style (the Content-Security-Policy allows neither): the look comes from
``connect.css``, served from this package, and a page that waits refreshes itself with a
``<meta http-equiv="refresh">``. Errors are tied to their field (``aria-describedby``,
``aria-invalid``) and listed first in a summary whose links move focus to each field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

STYLESHEET = "/connect/static/connect.css"


@dataclass(frozen=True)
class Field:
    """One input of the form: a variable the end user supplies."""

    key: str
    label: str
    required: bool
    secret: bool
    value: str = ""             # what the form shows (never a secret's value)
    alias: str | None = None    # the name the provider uses, when the catalog has one
    keeps_current: bool = False  # a reconnect: left empty, the current (secret) value stays


@dataclass(frozen=True)
class Form:
    action: str
    implementation: str
    csrf: str
    system: str
    fields: list[Field]
    errors: dict[str, str] = field(default_factory=dict)   # field key -> message
    summary: list[str] = field(default_factory=list)       # messages that concern no one field
    back: str | None = None                                # the list of implementations
    give_up: str | None = None                             # return_url with status=failed


def layout(title: str, body: str, refresh_to: str | None = None) -> str:
    refresh = (f'<meta http-equiv="refresh" content="1;url={escape(refresh_to)}">' if refresh_to else "")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"{refresh}<title>{escape(title)} – authq</title>"
            f"<link rel=\"stylesheet\" href=\"{STYLESHEET}\"></head>"
            f"<body><main id=\"main\">{body}</main></body></html>\n")


def message_page(title: str, text: str, link: tuple[str, str] | None = None, refresh_to: str | None = None) -> str:
    status = ' role="status"' if refresh_to else ""
    more = f'<p><a class="button" href="{escape(link[0])}">{escape(link[1])}</a></p>' if link else ""
    return layout(title, f"<h1>{escape(title)}</h1><p{status}>{escape(text)}</p>{more}", refresh_to)


def chooser(choices: list[tuple[str, str, str]]) -> str:
    """The implementations offered: (link, system, what kind of sign-in)."""
    if not choices:
        return message_page("Nothing to connect", "This link offers no system that can be connected. "
                            "Ask the application you came from for a new one.")
    items = "".join(f'<li><a href="{escape(href)}"><span class="system">{escape(system)}</span>'
                    f'<span class="kind">{escape(kind)}</span></a></li>' for href, system, kind in choices)
    return layout("Connect an account", "<h1>Connect an account</h1>"
                  "<p>Choose the system to connect.</p>"
                  f'<ul class="choices">{items}</ul>')


def _input(f: Field, error: str | None) -> str:
    ident = f"field-{f.key}"
    described = []
    hint = ""
    hints = []
    if f.alias:
        hints.append(f"The provider calls this “{f.alias}”.")
    if f.keeps_current:
        hints.append("Leave it empty to keep the current value.")
    if hints:
        hint = f'<p class="hint" id="{ident}-hint">{escape(" ".join(hints))}</p>'
        described.append(f"{ident}-hint")
    error_html = ""
    if error:
        error_html = (f'<p class="error" id="{ident}-error">'
                      f'<span class="visually-hidden">Error: </span>{escape(error)}</p>')
        described.append(f"{ident}-error")
    attributes = [f'id="{ident}"', f'name="var.{escape(f.key)}"',
                  f'type="{"password" if f.secret else "text"}"',
                  'autocomplete="off"' if f.secret else 'autocomplete="on"', 'spellcheck="false"']
    if not f.secret:
        attributes.append(f'value="{escape(f.value)}"')
    if f.required and not f.keeps_current:
        attributes.append('required aria-required="true"')
    if error:
        attributes.append('aria-invalid="true"')
    if described:
        attributes.append(f'aria-describedby="{" ".join(described)}"')
    marker = ' <span class="required">(required)</span>' if f.required and not f.keeps_current else ""
    return (f'<div class="field{" invalid" if error else ""}">'
            f'<label for="{ident}">{escape(f.label)}{marker}</label>{hint}{error_html}'
            f'<input {" ".join(attributes)}></div>')


def form_page(form: Form) -> str:
    title = f"Connect {form.system}"
    summary = ""
    if form.errors or form.summary:
        items = [f"<li>{escape(m)}</li>" for m in form.summary]
        labels = {f.key: f.label for f in form.fields}
        items += [f'<li><a href="#field-{escape(k)}">{escape(labels.get(k, k))}: {escape(m)}</a></li>'
                  for k, m in form.errors.items()]
        summary = ('<div class="summary" role="alert" aria-labelledby="summary-title" tabindex="-1">'
                   '<h2 id="summary-title">The connection was not made</h2>'
                   f'<ul>{"".join(items)}</ul></div>')
    inputs = "".join(_input(f, form.errors.get(f.key)) for f in form.fields)
    if not form.fields:
        inputs = "<p>Nothing to fill in: continue to sign in with the provider.</p>"
    links = []
    if form.back:
        links.append(f'<a href="{escape(form.back)}">Choose another system</a>')
    if form.give_up:
        links.append(f'<a href="{escape(form.give_up)}">Cancel and go back</a>')
    nav = f'<p class="links">{" · ".join(links)}</p>' if links else ""
    body = (f"<h1>{escape(title)}</h1>{summary}"
            f'<form method="post" action="{escape(form.action)}" novalidate>'
            f'<input type="hidden" name="csrf_token" value="{escape(form.csrf)}">'
            f'<input type="hidden" name="implementation" value="{escape(form.implementation)}">'
            f'{inputs}<button type="submit">Connect</button></form>{nav}')
    return layout(("Error: " if summary else "") + title, body)
