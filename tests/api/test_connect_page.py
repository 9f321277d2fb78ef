"""The connect page over HTTP (contract §11), without a browser: what it offers, the headers and
CSRF token every page carries, its 404 for unknown and expired tokens, validation errors beside
their fields (what was typed kept, never a secret), and its rate limit per token.
The flows through a real browser and real workers are in tests/browser/."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html.parser import HTMLParser

from tasks.model.records import utcnow
from tasks.storage import schema
from tests.support.helpers import PUBLIC_URL

SETTINGS = {"timezone": "Europe/London", "date_format": "Y-m-d", "rate_limit_unit": "minute",
            "rate_limit_duration": 60}


class _Elements(HTMLParser):
    """Every element's attributes, and the text of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        self.text.append(data)


def parsed(text: str) -> _Elements:
    parser = _Elements()
    parser.feed(text)
    return parser


def by_id(page: _Elements, ident: str) -> dict[str, str | None]:
    return next(attrs for _, attrs in page.elements if attrs.get("id") == ident)


async def _session(client, tenant, **body):  # type: ignore[no-untyped-def]
    answer = await client.post("/api/v1/sessions", json=body, headers=tenant.headers)
    assert answer.status == 201, await answer.text()
    data = (await answer.json())["data"]
    return data, data["connect_url"].removeprefix(PUBLIC_URL)


def _assert_page_headers(answer) -> None:  # type: ignore[no-untyped-def]
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'self'; frame-ancestors 'none'")
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["Content-Type"].startswith("text/html")


async def test_lists_allowed_implementations_whose_settings_are_complete(client, tenant) -> None:
    # test-basic and test-oauth have no catalog defaults: the session's make them complete.
    _, path = await _session(client, tenant, defaults=SETTINGS,
                             allowed_implementations=["test-basic", "test-oauth", "no-such-thing"])
    answer = await client.get(path)
    assert answer.status == 200
    _assert_page_headers(answer)
    links = [a["href"] for tag, a in parsed(await answer.text()).elements if tag == "a"]
    assert links == [f"{path}?implementation=test-basic", f"{path}?implementation=test-oauth"]
    # Without the settings nothing can be made: nothing is offered.
    _, bare = await _session(client, tenant, allowed_implementations=["test-basic"])
    text = await (await client.get(bare)).text()
    assert "Nothing to connect" in text and "implementation=test-basic" not in text
    assert (await client.get(bare, params={"implementation": "test-basic"})).status == 404


async def test_form_asks_what_the_end_user_supplies(client, tenant) -> None:
    _, path = await _session(client, tenant, defaults=SETTINGS)
    answer = await client.get(path, params={"implementation": "test-basic"})
    assert answer.status == 200
    _assert_page_headers(answer)
    page = parsed(await answer.text())
    inputs = {a["name"]: a for tag, a in page.elements if tag == "input"}
    # region is locked: the end user is not asked for it.
    assert set(inputs) == {"csrf_token", "implementation", "var.base_url", "var.consumer_key", "var.consumer_secret"}
    assert inputs["implementation"]["value"] == "test-basic"
    assert inputs["var.consumer_secret"]["type"] == "password" and inputs["var.consumer_key"]["type"] == "text"
    labels = {a["for"] for tag, a in page.elements if tag == "label"}
    assert labels == {"field-base_url", "field-consumer_key", "field-consumer_secret"}
    assert "Consumer secret" in "".join(page.text) and "(required)" in "".join(page.text)
    assert answer.cookies["authq_connect_csrf"]["samesite"] == "Strict"


async def test_unknown_and_expired_tokens_are_404_pages(client, tenant, redis_client) -> None:
    answer = await client.get("/connect/" + "A" * 43)
    assert answer.status == 404
    _assert_page_headers(answer)
    assert "unknown or has expired" in await answer.text()
    data, path = await _session(client, tenant, defaults=SETTINGS)
    assert (await client.get(path)).status == 200
    key = schema.session(tenant.name, data["id"])
    record = json.loads(redis_client.get(key))
    record["expires_at"] = (utcnow() - timedelta(seconds=1)).isoformat()
    redis_client.set(key, json.dumps(record))
    expired = await client.get(path)
    assert expired.status == 404 and "unknown or has expired" in await expired.text()


async def test_a_post_without_the_forms_csrf_token_is_refused(client, tenant) -> None:
    _, path = await _session(client, tenant, defaults=SETTINGS)
    await client.get(path, params={"implementation": "test-basic"})  # the cookie, but not the form's token
    answer = await client.post(path, data={"csrf_token": "forged", "implementation": "test-basic",
                                           "var.consumer_key": "x"})
    assert answer.status == 403
    _assert_page_headers(answer)


async def test_validation_error_is_beside_its_field_typed_values_kept_secret_not(client, tenant) -> None:
    _, path = await _session(client, tenant, defaults=SETTINGS)
    page = parsed(await (await client.get(path, params={"implementation": "test-basic"})).text())
    csrf = next(a["value"] for _, a in page.elements if a.get("name") == "csrf_token")
    typed_secret = "cs_typed_secret_value_0042"
    answer = await client.post(path, data={
        "csrf_token": csrf, "implementation": "test-basic", "var.base_url": "http://127.0.0.1:9",
        "var.consumer_key": "", "var.consumer_secret": typed_secret})
    assert answer.status == 422
    _assert_page_headers(answer)
    text = await answer.text()
    assert typed_secret not in text
    page = parsed(text)
    key_input = by_id(page, "field-consumer_key")
    assert key_input["aria-invalid"] == "true"
    assert "field-consumer_key-error" in (key_input["aria-describedby"] or "").split()
    assert "Enter a value." in "".join(page.text)
    assert by_id(page, "field-base_url")["value"] == "http://127.0.0.1:9"
    assert "value" not in by_id(page, "field-consumer_secret")


async def test_pages_are_rate_limited_per_token(client, tenant) -> None:
    _, path = await _session(client, tenant, defaults=SETTINGS)
    _, other = await _session(client, tenant, defaults=SETTINGS)
    statuses = [(await client.get(path)).status for _ in range(12)]
    assert 429 in statuses and statuses[0] == 200
    assert (await client.get(other)).status == 200  # another token's page is not held back


async def test_style_sheet_is_served_from_authqs_own_origin(client, tenant) -> None:
    _, path = await _session(client, tenant, defaults=SETTINGS)
    text = await (await client.get(path)).text()
    assert re.findall(r'(?:href|src)="([^"]+)"', text) and all(
        u.startswith("/") for u in re.findall(r'(?:href|src)="([^"]+)"', text))
    css = await client.get("/connect/static/connect.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
