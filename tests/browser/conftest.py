"""The connect page in a real browser: the real app served on loopback at authq's public URL
(as the browser resolves it), the session's real workers, and the loopback providers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest

from tasks.settings import Settings
from tests.support.browser import APP_HOST, Browser, ReturnApp, start_browser
from tests.support.demo import DemoDeployment, start_demo
from tests.support.helpers import PUBLIC_URL, Tenant
from tests.support.served_app import serve_in_thread


@pytest.fixture(scope="session")
def return_app() -> Iterator[ReturnApp]:
    app = ReturnApp()
    yield app
    app.stop()


@pytest.fixture
def served(settings: Settings, workers: object) -> Iterator[str]:
    """The API on a loopback port; its base URL (the browser reaches it as PUBLIC_URL)."""
    from api.app import create_app
    from worker.queues import make_job_queue

    yield from serve_in_thread(create_app(settings, make_job_queue(settings)), name="connect-page-api")


@pytest.fixture
def api(served: str, tenant: Tenant) -> Iterator[httpx2.Client]:
    """The platform's back end, calling the API with the tenant's key."""
    with httpx2.Client(base_url=served, headers=tenant.headers, timeout=30) as client:
        yield client


def _rules(served: str, return_app: ReturnApp) -> str:
    public = urlsplit(PUBLIC_URL)
    return f"MAP {public.hostname}:80 127.0.0.1:{urlsplit(served).port}, MAP {APP_HOST}:80 127.0.0.1:{return_app.port}"


@pytest.fixture(params=[True, False], ids=["js", "no-js"])
def browser(request: pytest.FixtureRequest, served: str, return_app: ReturnApp, tmp_path: Path) -> Iterator[Browser]:
    """The browser, with JavaScript on (axe runs on each page state) and then off."""
    yield from start_browser(tmp_path, javascript=request.param, host_rules=_rules(served, return_app))


@pytest.fixture
def js_browser(served: str, return_app: ReturnApp, tmp_path: Path) -> Iterator[Browser]:
    yield from start_browser(tmp_path, javascript=True, host_rules=_rules(served, return_app))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, secret_key: str, ca_bundle: Path) -> Iterator[DemoDeployment]:
    """An ``authq up --demo`` deployment (its own Redis and worker): the demo provider under /demo/."""
    yield from start_demo(tmp_path_factory.mktemp("demo"), secret_key, ca_bundle)


@pytest.fixture(params=[True, False], ids=["js", "no-js"])
def demo_browser(request: pytest.FixtureRequest, demo: DemoDeployment, return_app: ReturnApp,
                 tmp_path: Path) -> Iterator[Browser]:
    """The browser for the demo (reached at its own loopback address), JavaScript on, then off."""
    yield from start_browser(tmp_path, javascript=request.param,
                             host_rules=f"MAP {APP_HOST}:80 127.0.0.1:{return_app.port}")
