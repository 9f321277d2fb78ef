"""The connect page as an end user meets it (contract §11), in headless Chromium against the
real app, real workers and the loopback providers: each flow with JavaScript on (axe on every
page state) and off; screenshots of each state in the test's tmp_path.

- ``basic``: a wrong password shows the error beside the password field, the other values kept
  and the password empty; the right one ends at the session's return_url, connector authorised;
- OAuth 2 authorization code: through the page, the provider and authq's callback back to the
  page, then to return_url with the connector authorised; a refusal at the provider shows on
  the page and leaves the connector unauthorised;
- a reconnect session (``connector_id``) re-authorises that connector: same id, new
  credentials, the old ones working until then;
- the keyboard alone reaches the system, each field in order, and submits.
"""

from __future__ import annotations

from typing import Any

import httpx2
from selenium.webdriver.common.keys import Keys

from tests.support.browser import RETURN_URL, Browser, ReturnApp
from tests.support.helpers import PUBLIC_URL, REDIRECT_URI
from tests.support.oauth_helpers import CLIENT_SECRET, new_client_id
from tests.support.oauth_server import OAuthServer
from tests.support.provider import GOOD_KEY, GOOD_SECRET, Provider

SETTINGS = {"timezone": "Europe/London", "date_format": "Y-m-d", "rate_limit_unit": "minute",
            "rate_limit_duration": 60}
WRONG_SECRET = "cs_wrong_secret_typed_9090"


def _session(api: httpx2.Client, **body: Any) -> dict[str, Any]:
    answer = api.post("/api/v1/sessions", json={"defaults": SETTINGS, "return_url": RETURN_URL, **body})
    assert answer.status_code == 201, answer.text
    data: dict[str, Any] = answer.json()["data"]
    assert data["connect_url"].startswith(f"{PUBLIC_URL}/connect/")
    return data


def _connector(api: httpx2.Client, connector_id: str) -> dict[str, Any]:
    answer = api.get(f"/api/v1/connectors/{connector_id}")
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def _returned(browser: Browser, return_app: ReturnApp) -> dict[str, str]:
    browser.wait_for(lambda: browser.url.startswith(RETURN_URL))
    browser.state("returned", audit=False)  # the platform's page, not authq's
    query = browser.query()
    assert set(query) == {"connector_id", "status"} and query["status"] == "authorised", query
    assert return_app.visits[-1] == query
    return query


def _error_of(browser: Browser, key: str) -> str:
    field = browser.field(key)
    assert field.get_attribute("aria-invalid") == "true"
    described = (field.get_attribute("aria-describedby") or "").split()
    assert f"field-{key}-error" in described, described
    return str(browser.driver.find_element("id", f"field-{key}-error").text)


def test_basic_wrong_password_then_right_one(browser: Browser, api, fresh_provider: Provider,
                                             return_app: ReturnApp) -> None:
    session = _session(api, allowed_implementations=["test-basic"], end_user_id="user-1")
    browser.open(session["connect_url"])
    browser.state("chooser")
    browser.click_link("TestShop")
    browser.state("form")
    browser.type("base_url", fresh_provider.base_url)
    browser.type("consumer_key", GOOD_KEY)
    browser.type("consumer_secret", WRONG_SECRET)
    browser.submit()
    browser.wait_for(lambda: "not made" in browser.text)
    browser.state("wrong-password")
    assert "did not accept these credentials" in _error_of(browser, "consumer_secret")
    assert browser.field("consumer_key").get_attribute("value") == GOOD_KEY
    assert browser.field("base_url").get_attribute("value") == fresh_provider.base_url
    assert browser.field("consumer_secret").get_attribute("value") == ""
    assert browser.field("consumer_secret").get_attribute("required") is not None  # still marked required
    assert WRONG_SECRET not in browser.driver.page_source
    # The user corrects the password; the rest is as they left it.
    browser.type("consumer_secret", GOOD_SECRET)
    browser.submit()
    query = _returned(browser, return_app)
    connector = _connector(api, query["connector_id"])
    assert connector["status"] == "authorised" and connector["session_id"] == session["id"]
    assert connector["authentication_implementation_id"] == "test-basic" and connector["timezone"] == "Europe/London"


def _oauth_form(browser: Browser, server: OAuthServer, client_id: str, secret: str = CLIENT_SECRET) -> None:
    browser.type("base_url", server.http_url)
    browser.type("client_id", client_id)
    browser.type("client_secret", secret)


def _client(server: OAuthServer) -> str:
    cid = new_client_id("page")
    server.add_client(cid, CLIENT_SECRET, redirect_uris=[REDIRECT_URI], scope="read", require_pkce=True)
    return cid


def test_oauth2_code_flow_through_the_page(browser: Browser, api, fresh_oauth: OAuthServer,
                                          return_app: ReturnApp) -> None:
    cid = _client(fresh_oauth)
    session = _session(api, allowed_implementations=["test-oauth"])
    browser.open(session["connect_url"])
    browser.state("chooser")
    browser.click_link("TestOAuth")
    browser.state("form")
    _oauth_form(browser, fresh_oauth, cid)
    browser.submit()  # -> the provider's authorize page (it approves at once) -> authq -> the page -> the app
    query = _returned(browser, return_app)
    connector = _connector(api, query["connector_id"])
    assert connector["status"] == "authorised" and connector["credentials"]["scopes"] == ["read"]
    assert fresh_oauth.count("/token") == 1


def test_oauth2_refused_at_the_provider(js_browser: Browser, api, fresh_oauth: OAuthServer) -> None:
    browser = js_browser
    cid = _client(fresh_oauth)
    session = _session(api, allowed_implementations=["test-oauth"])
    browser.open(session["connect_url"])
    browser.click_link("TestOAuth")
    _oauth_form(browser, fresh_oauth, cid)
    fresh_oauth.deny_next = True  # the end user clicks "Deny"
    browser.submit()
    browser.wait_for(lambda: "refused access" in browser.text)
    browser.state("refused")
    assert browser.url.startswith(f"{PUBLIC_URL}/connect/")
    listed = api.get("/api/v1/connectors", params={"filter[session_id]": session["id"]}).json()["data"]
    assert listed and all(c["status"] != "authorised" for c in listed)
    assert fresh_oauth.count("/token") == 0


def test_reconnect_keeps_the_connector_and_swaps_its_credentials(js_browser: Browser, api, fresh_oauth: OAuthServer,
                                                                 return_app: ReturnApp) -> None:
    browser = js_browser
    first, second = _client(fresh_oauth), _client(fresh_oauth)
    made = _session(api, allowed_implementations=["test-oauth"])
    browser.open(made["connect_url"])
    browser.click_link("TestOAuth")
    _oauth_form(browser, fresh_oauth, first)
    browser.submit()
    connector_id = _returned(browser, return_app)["connector_id"]
    assert api.get(f"/api/v1/connectors/{connector_id}/proxy/me").json()["client_id"] == first

    again = _session(api, connector_id=connector_id)
    browser.open(again["connect_url"])
    browser.state("reconnect-form")
    # The connector's own values are shown (never its secret), and there is nothing to choose.
    assert browser.field("client_id").get_attribute("value") == first
    assert browser.field("client_secret").get_attribute("value") == ""
    assert "keep the current value" in browser.text
    # Until the new credentials replace them, the old ones still work.
    assert api.get(f"/api/v1/connectors/{connector_id}/proxy/me").json()["client_id"] == first
    browser.type("client_id", second)
    browser.type("client_secret", CLIENT_SECRET)
    browser.submit()
    query = _returned(browser, return_app)
    assert query["connector_id"] == connector_id
    connector = _connector(api, connector_id)
    assert connector["status"] == "authorised"
    assert next(v for v in connector["variables"] if v["key"] == "client_id")["value"] == second
    assert api.get(f"/api/v1/connectors/{connector_id}/proxy/me").json()["client_id"] == second


def test_keyboard_alone_reaches_and_submits_the_form(js_browser: Browser, api, fresh_provider: Provider,
                                                     return_app: ReturnApp) -> None:
    """Tab to the system, Enter; type into each field in tab order; Enter submits."""
    browser = js_browser
    session = _session(api, allowed_implementations=["test-basic"])
    browser.open(session["connect_url"])
    active = browser.driver.switch_to.active_element
    active.send_keys(Keys.TAB)
    focused = browser.driver.switch_to.active_element
    assert focused.tag_name == "a" and "TestShop" in focused.text
    focused.send_keys(Keys.ENTER)
    browser.wait_for(lambda: browser.driver.find_elements("id", "field-base_url"))
    browser.state("keyboard-form")
    body = browser.driver.find_element("tag name", "body")
    body.send_keys(Keys.TAB)
    for key, value in (("base_url", fresh_provider.base_url), ("consumer_key", GOOD_KEY),
                       ("consumer_secret", GOOD_SECRET)):
        focused = browser.driver.switch_to.active_element
        assert focused.get_attribute("id") == f"field-{key}", focused.get_attribute("outerHTML")
        focused.send_keys(value)
        if key != "consumer_secret":
            focused.send_keys(Keys.TAB)
    browser.driver.switch_to.active_element.send_keys(Keys.ENTER)
    query = _returned(browser, return_app)
    assert _connector(api, query["connector_id"])["status"] == "authorised"
