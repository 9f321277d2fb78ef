"""The connect page with the demo provider (contract §11, §13), as a newcomer would use it after
``authq up --demo``: in headless Chromium, JavaScript on (axe on every page state, the demo's
pages too) and off, against a demo deployment with its own worker and no private-network
allowance (the guard's one exception lets the jobs reach the demo).

- demo-oauth2: the page, the demo's consent page, Approve, back at return_url authorised;
  Deny: the page says the user refused, and the connector is not authorised;
- demo-woo: the page, the demo store's approval page, Approve, back at return_url authorised;
- demo-basic: a wrong password shows the error beside the password field; ``demo``/``demo`` ends
  at return_url authorised.
"""

from __future__ import annotations

from typing import Any

from tasks.demo import facts
from tasks.demo.catalog import DEMO_IDS
from tests.support.browser import RETURN_URL, Browser, ReturnApp
from tests.support.demo import DemoDeployment


def _session(demo: DemoDeployment) -> str:
    with demo.http() as http:
        answer = http.post("/api/v1/sessions", headers=demo.tenant.headers,
                           json={"return_url": RETURN_URL, "allowed_implementations": list(DEMO_IDS)})
    assert answer.status_code == 201, answer.text
    url: str = answer.json()["data"]["connect_url"]
    assert url.startswith(f"{demo.base}/connect/")
    return url


def _returned(browser: Browser, return_app: ReturnApp) -> str:
    browser.wait_for(lambda: browser.url.startswith(RETURN_URL))
    browser.state("returned", audit=False)
    query = browser.query()
    assert query["status"] == "authorised" and return_app.visits[-1] == query, query
    return query["connector_id"]


def _start(browser: Browser, demo: DemoDeployment, implementation_id: str) -> None:
    browser.open(_session(demo))
    browser.state("chooser")
    browser.click_link_to(f"implementation={implementation_id}")
    browser.state(f"{implementation_id}-form")


def _me(demo: DemoDeployment, connector_id: str) -> dict[str, Any]:
    answer = demo.proxy(connector_id, "me")
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def test_demo_oauth2_approved(demo_browser: Browser, demo: DemoDeployment, return_app: ReturnApp) -> None:
    browser = demo_browser
    _start(browser, demo, "demo-oauth2")
    assert "Nothing to fill in" in browser.text  # the catalog gives the demo's client id and secret
    browser.submit()
    browser.wait_for(lambda: "Approve" in browser.text)
    browser.state("consent")
    assert browser.url.startswith(f"{demo.base}{facts.AUTHORIZE_PATH}")
    browser.press("Approve")
    connector_id = _returned(browser, return_app)
    assert demo.connector(connector_id)["status"] == "authorised"
    assert _me(demo, connector_id)["grant"] == "authorization_code"


def test_demo_oauth2_denied(demo_browser: Browser, demo: DemoDeployment) -> None:
    browser = demo_browser
    _start(browser, demo, "demo-oauth2")
    browser.submit()
    browser.wait_for(lambda: "Deny" in browser.text)
    browser.press("Deny")
    browser.wait_for(lambda: "refused access" in browser.text)
    browser.state("denied")
    assert browser.url.startswith(f"{demo.base}/connect/")
    with demo.http() as http:
        listed = http.get("/api/v1/connectors", headers=demo.tenant.headers,
                          params={"filter[authentication_implementation_id]": "demo-oauth2"}).json()["data"]
    denied = max(listed, key=lambda c: c["created_at"])
    assert denied["status"] != "authorised" and denied["credentials"]["token_type"] is None


def test_demo_woo_approved(demo_browser: Browser, demo: DemoDeployment, return_app: ReturnApp) -> None:
    browser = demo_browser
    _start(browser, demo, "demo-woo")
    browser.submit()
    browser.wait_for(lambda: "Approve" in browser.text)
    browser.state("store-approval")
    assert browser.url.startswith(f"{demo.base}{facts.WOO_AUTHORIZE_PATH}")
    browser.press("Approve")
    connector_id = _returned(browser, return_app)
    assert demo.connector(connector_id)["status"] == "authorised"
    assert _me(demo, connector_id)["auth"] == "woocommerce_keys"


def test_demo_basic_wrong_then_right_password(demo_browser: Browser, demo: DemoDeployment,
                                             return_app: ReturnApp) -> None:
    browser = demo_browser
    _start(browser, demo, "demo-basic")
    browser.type("username", facts.USERNAME)
    browser.type("password", "not-the-password")
    browser.submit()
    browser.wait_for(lambda: "not made" in browser.text)
    browser.state("wrong-password")
    password = browser.field("password")
    assert password.get_attribute("aria-invalid") == "true" and password.get_attribute("value") == ""
    assert "password-error" in (password.get_attribute("aria-describedby") or "")
    assert "did not accept" in browser.driver.find_element("id", "field-password-error").text
    assert browser.field("username").get_attribute("value") == facts.USERNAME
    browser.type("password", facts.PASSWORD)
    browser.submit()
    connector_id = _returned(browser, return_app)
    assert demo.connector(connector_id)["status"] == "authorised"
    assert _me(demo, connector_id)["auth"] == "basic"
