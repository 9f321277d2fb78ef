"""A session's ``return_url`` (contract §5): an absolute http(s) URL with no backslash, control
character or user info, stored normalised by the same library (yarl) that builds the
callback's redirect to it, so a URL that validates always makes a redirect.

The callback is driven with a state issued straight into Redis, as the authorise job issues
it (``tasks.storage.states``): no worker runs, the callback's job simply stays queued.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from yarl import URL

from tasks.model.records import new_id
from tasks.storage import schema, states
from tests.support.helpers import Tenant

SESSIONS = "/api/v1/sessions"
CALLBACK = "/api/v1/oauth/authenticate"


async def _rejected(client, tenant: Tenant, redis_client, url: str) -> list[str]:  # type: ignore[no-untyped-def]
    before = set(redis_client.scan_iter(match=f"authq:t:{tenant.name}:*"))
    answer = await client.post(SESSIONS, json={"return_url": url}, headers=tenant.headers)
    text = await answer.text()
    assert answer.status == 422, text
    errors = json.loads(text)["errors"]
    assert list(errors) == ["return_url"], errors
    assert set(redis_client.scan_iter(match=f"authq:t:{tenant.name}:*")) == before  # no session stored
    return list(errors["return_url"])


async def test_the_backslash_reproduction_is_422_and_leaves_nothing_to_call_back(client, tenant, redis_client):
    """``https://evil.example\\@a.example/`` was accepted; the callback then answered 500 after the
    state was claimed and the job queued. Now no session exists, so no callback can follow."""
    messages = await _rejected(client, tenant, redis_client, "https://evil.example\\@a.example/")
    assert any("backslash" in m for m in messages)
    assert list(redis_client.scan_iter(match=f"authq:t:{tenant.name}:job:*")) == []


@pytest.mark.parametrize("url", [
    "https://a.example\\path", "https://a.example/\\", "https://a.example/?next=\\evil",
    "https://a.example/\t", "https://a.example/\n", "https://a.example/x\r\nSet-Cookie: a=b", "https://a.\x00example/",
    "https://a.example/\x7f", "https://a.example/\x85",
    "https://user@a.example/", "https://user:pw@a.example/", "https://:@a.example/", "https://a.example@b.example/",
    "https://a .example/", "https://a..example/", "https://-a.example/", "https://a_b.example/",
    "https://a.example:99999/", "https://a.example:0/", "http://[::1/", "https:a.example/x", "//a.example/x",
    "ftp://a.example/", "javascript:alert(1)",
], ids=lambda u: repr(u)[1:40])
async def test_a_return_url_that_no_redirect_can_use_is_422(client, tenant, redis_client, url):
    await _rejected(client, tenant, redis_client, url)


@pytest.mark.parametrize(("given", "stored"), [
    ("HTTPS://App.Example:443/done", "https://app.example/done"),
    ("https://app.example/done now?q=a b#section", "https://app.example/done%20now?q=a+b#section"),
    ("https://bücher.example/ä?x=ü", "https://xn--bcher-kva.example/%C3%A4?x=%C3%BC"),
    ("http://127.0.0.1:3000/a/../b", "http://127.0.0.1:3000/b"),
    ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ("https://app.example", "https://app.example"),
])
async def test_a_return_url_is_stored_normalised(client, tenant, given, stored):
    answer = await client.post(SESSIONS, json={"return_url": given}, headers=tenant.headers)
    assert answer.status == 201, await answer.text()
    data = (await answer.json())["data"]
    assert data["return_url"] == stored
    assert str(URL(stored)) == stored  # normalised once is normalised for good
    shown = await client.get(f"{SESSIONS}/{data['id']}", headers=tenant.headers)
    assert (await shown.json())["data"]["return_url"] == stored


def _issue(redis_client, tenant: Tenant, return_url: str | None) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """An OAuth state as the authorise job leaves it: (the raw state, its connector id)."""
    raw, connector_id = states.new_state(), new_id("con")
    state = states.make_state("oauth", tenant=tenant.name, connector_id=connector_id, job_id=new_id("job"),
                              implementation_id="test-oauth", return_url=return_url)
    states.issue(redis_client, raw, state)
    return raw, connector_id


async def _callback(client, raw: str):  # type: ignore[no-untyped-def]
    return await client.get(f"{CALLBACK}?code=the-code&state={quote(raw)}", allow_redirects=False)


async def test_the_callback_redirects_to_the_stored_return_url(client, tenant, redis_client):
    made = await client.post(SESSIONS, json={"return_url": "https://App.example/done?x=1 2#frag"},
                             headers=tenant.headers)
    stored = (await made.json())["data"]["return_url"]
    raw, connector_id = _issue(redis_client, tenant, stored)
    answer = await _callback(client, raw)
    assert answer.status == 303, await answer.text()
    location = URL(answer.headers["Location"])
    assert (location.scheme, location.host, location.path, location.fragment) == ("https", "app.example", "/done",
                                                                                  "frag")
    assert location.query["x"] == "1 2" and location.query["connector_id"] == connector_id
    job_id = location.query["job_id"]
    assert redis_client.exists(schema.job(tenant.name, job_id))
    assert states.claimed_by(redis_client, raw) == job_id


async def test_a_return_url_stored_before_the_rules_never_makes_the_callback_fail(client, tenant, redis_client):
    """A session made before these rules may still hold such a URL: the callback shows the page
    that follows the job instead of answering 500 with the state spent."""
    raw, _ = _issue(redis_client, tenant, "https://evil.example\\@a.example/")
    answer = await _callback(client, raw)
    assert answer.status == 200, await answer.text()
    assert answer.content_type == "text/html"
    job_id = states.claimed_by(redis_client, raw)
    assert job_id and redis_client.exists(schema.job(tenant.name, job_id))
