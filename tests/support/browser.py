"""A real browser for the connect page's tests: Debian's chromium, headless, through its
chromium-driver (Selenium's WebDriver), driven as a person would (open, click, type, submit).

Host names the tests use resolve inside the browser alone (``--host-resolver-rules``): authq's
public URL (``http://authq.test``) to the API served on loopback, and ``app.test`` to a small
page playing the platform's app that a session's ``return_url`` names.

Each ``Browser.state(name)`` is one look at a page: a screenshot in the test's folder, axe-core
(vendored, injected by the driver; never from a CDN) failing on any serious or critical
violation, and the network log, in which nothing a page loads comes from another origin.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

AXE = (Path(__file__).resolve().parent / "vendor" / "axe.min.js").read_text()
APP_HOST = "app.test"
RETURN_URL = f"http://{APP_HOST}/connected"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# A phone's viewport: the page must be readable there.
PHONE = (412, 915)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Browser:
    def __init__(self, driver: webdriver.Chrome, out: Path, javascript: bool) -> None:
        self.driver, self.out, self.javascript = driver, out, javascript
        self.shots = 0

    # -- what a person does ---------------------------------------------------------------
    def open(self, url: str) -> None:
        self.driver.get(url)

    def click_link(self, text: str) -> None:
        self.driver.find_element(By.PARTIAL_LINK_TEXT, text).click()

    def click_link_to(self, path_end: str) -> None:
        """Click the link whose address ends so (links whose text alone does not tell them apart)."""
        self.driver.find_element(By.CSS_SELECTOR, f"a[href$='{path_end}']").click()

    def press(self, label: str) -> None:
        """Press the button that reads ``label``."""
        self.driver.find_element(By.XPATH, f"//button[normalize-space()='{label}']").click()

    def field(self, key: str) -> WebElement:
        return self.driver.find_element(By.ID, f"field-{key}")

    def type(self, key: str, value: str) -> None:
        element = self.field(key)
        element.clear()
        element.send_keys(value)

    def submit(self) -> None:
        self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()

    def wait_for(self, predicate: Any, timeout: float = 40) -> None:
        # (A page being replaced by the next one has elements that go stale mid-read: read again.)
        WebDriverWait(self.driver, timeout, poll_frequency=0.2,
                      ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(
            lambda d: predicate())

    @property
    def url(self) -> str:
        return str(self.driver.current_url)

    @property
    def text(self) -> str:
        try:
            return str(self.driver.find_element(By.TAG_NAME, "body").text)
        except WebDriverException as exc:
            # The body found belonged to the page being replaced, and ChromeDriver says so in its
            # own words rather than as a stale element: the same race, so ``wait_for`` reads again.
            if "does not belong to the document" in str(exc.msg):
                raise StaleElementReferenceException(exc.msg) from exc
            raise

    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.url).query).items()}

    # -- one look at the page ---------------------------------------------------------------
    def state(self, name: str, *, audit: bool = True) -> None:
        self.shots += 1
        self.driver.save_screenshot(str(self.out / f"{self.shots:02d}-{name}{'' if self.javascript else '-nojs'}.png"))
        self.assert_same_origin_loads()
        if audit and self.javascript:
            self.assert_accessible(name)

    def assert_accessible(self, name: str) -> None:
        self.driver.execute_script(AXE)
        result = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']})"
            ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.map(n => n.html)})))).catch(e => done({error: String(e)}));")
        assert not isinstance(result, dict), result
        serious = [v for v in result if v["impact"] in ("serious", "critical")]
        (self.out / f"{self.shots:02d}-{name}-axe.json").write_text(json.dumps(result, indent=1))
        assert not serious, f"{name}: {serious}"

    def assert_same_origin_loads(self) -> None:
        """Every request a page made for itself (style sheets, images, scripts …) went to the
        page's own origin; only navigations (to the provider and back) leave it."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] != "Network.requestWillBeSent":
                continue
            params = message["params"]
            if params.get("type") == "Document" or params["request"]["url"].startswith("data:"):
                continue
            assert _origin(params["request"]["url"]) == _origin(params["documentURL"]), params["request"]["url"]


def start_browser(out: Path, *, javascript: bool, host_rules: str) -> Iterator[Browser]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
    assert not missing, (f"{missing} not installed: the browser tests need Debian's chromium and chromium-driver "
                         "(`apt-get install chromium chromium-driver`, as .ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={PHONE[0]},{PHONE[1]}", f"--host-resolver-rules={host_rules}",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--disable-default-apps", "--metrics-recording-only"):
        options.add_argument(argument)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield Browser(driver, out, javascript)
    finally:
        driver.quit()


class ReturnApp:
    """The platform's page a session's ``return_url`` leads to: it records each visit's query."""

    def __init__(self) -> None:
        self.visits: list[dict[str, str]] = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                url = urlsplit(self.path)
                if url.path == urlsplit(RETURN_URL).path:  # (not the browser's /favicon.ico)
                    app.visits.append({k: v[0] for k, v in parse_qs(url.query).items()})
                body = (b"<!doctype html><html lang=en><head><meta charset=utf-8><title>The app</title></head>"
                        b"<body><main><h1>Back in the app</h1></main></body></html>")
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="return-app", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
