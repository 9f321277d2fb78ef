"""The usage metrics of ``authq up --api-processes 2``: proxied requests that the kernel spread over
the two API processes (``SO_REUSEPORT``, a new connection each) are counted once each, and every
scrape, whichever process answers it, shows the fleet's total within a flush period."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from authq.redis_server import free_port
from tests.e2e.test_up import Up, http
from tests.e2e.test_up import up_env as up_env  # (the fixture)
from tests.support.provider import GOOD_KEY, GOOD_SECRET, Provider

pytestmark = pytest.mark.integration
PROXY_ROUTE = "/api/v1/connectors/{connector}/proxy/{path}"
REQUESTS = 40


def samples(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as answer:  # a new connection: either process
        text = answer.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_two_api_processes_count_the_proxy_once_on_every_page(tmp_path: Path, up_env: dict[str, str],
                                                              provider: Provider) -> None:
    data_dir = tmp_path / "data"
    up = Up(data_dir, free_port(), up_env, "--api-processes", "2")
    try:
        up.wait_ready()
        key = (data_dir / "api-key").read_text().strip()
        body = {"authentication_implementation_id": "test-basic", "timezone": "UTC", "date_format": "Y-m-d",
                "rate_limit_unit": "second", "rate_limit_duration": 1000,
                "variables": [{"key": "base_url", "value": provider.base_url},
                              {"key": "consumer_key", "value": GOOD_KEY},
                              {"key": "consumer_secret", "value": GOOD_SECRET}]}
        status, answer = http("POST", f"{up.base}/api/v1/oauth/authorise", key, body, headers={"Prefer": "wait=30"})
        assert answer["data"]["status"] == "succeeded", answer
        connector_id = answer["data"]["connector_id"]
        for i in range(REQUESTS):  # urllib: one connection a request, spread by the kernel
            status, _ = http("GET", f"{up.base}/api/v1/connectors/{connector_id}/proxy/echo/{i}", key)
            assert status == 200

        total = ("authq_proxy_requests_total", (("class", "2xx"), ("code", ""), ("system", "TestShop")))
        deadline = time.monotonic() + 10
        while samples(up.base).get(total) != REQUESTS:
            assert time.monotonic() < deadline, "the two processes' counts never added up"
            time.sleep(0.2)
        # Whichever process answers the scrape, the page holds the fleet's counts. (Which process
        # the kernel hands each connection is its choice: every request may land on one of them.)
        for _ in range(30):
            page = samples(up.base)
            assert page[total] == REQUESTS
            assert page[("authq_permits_total", (("outcome", "granted"), ("via", "proxy")))] == REQUESTS
    finally:
        if up.process.poll() is None:
            up.stop()
