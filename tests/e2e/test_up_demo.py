"""``authq up --demo`` end to end (contract §13), as the README's "Try it" runs it: the shipped
catalog, no AUTHQ_ALLOW_PRIVATE_NETWORKS, no internet needed.

Proves: the banner says where the API, docs, metrics and demo are and how to try it; ``/demo/``
is served on the API's own port; demo-basic is authorised and used through the proxy; and the
OAuth 2 consent works across two API processes sharing the port (the demo keeps its state in
Redis, so the page and its form may be answered by different processes). Without ``--demo``
the same command serves no ``/demo/`` (``test_up.py``'s runs, and this file's last check).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from authq.redis_server import free_port
from tests.e2e.test_up import Up, http
from tests.support.demo import pending_request

pytestmark = pytest.mark.integration


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AUTHQ_")}


def _body(implementation_id: str, variables: list[dict[str, str]]) -> dict[str, object]:
    return {"authentication_implementation_id": implementation_id, "timezone": "UTC", "date_format": "Y-m-d",
            "rate_limit_unit": "second", "rate_limit_duration": 5, "variables": variables}


def test_up_demo_serves_the_demo_and_its_flows(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    up = Up(data_dir, free_port(), _env(), "--demo", "--api-processes", "2")
    try:
        up.wait_ready()
        banner = up.output()
        for line in (f"API:     {up.base}/api/v1", f"docs:    {up.base}/api/docs", f"metrics: {up.base}/metrics",
                     f"demo:    {up.base}/demo/", "demo-basic", f"curl -s -X POST {up.base}/api/v1/sessions"):
            assert line in banner, banner
        key = (data_dir / "api-key").read_text().strip()
        connect_url = next(line.split()[1] for line in banner.splitlines() if line.strip().startswith("connect:"))
        assert connect_url.startswith(f"{up.base}/connect/"), banner
        with httpx2.Client(base_url=up.base, follow_redirects=False, timeout=30, trust_env=False) as client:
            assert client.get("/demo/").status_code == 200
            # The banner's ready-made link opens the connect page, offering the demo's systems.
            offered = client.get(connect_url)
            assert offered.status_code == 200, offered.text
            for impl_id in ("demo-oauth2", "demo-client-credentials", "demo-basic", "demo-woo"):
                assert f"implementation={impl_id}\"" in offered.text, offered.text
            assert client.get("/").json()["demo"] == "/demo/"

            status, answer = http("POST", f"{up.base}/api/v1/oauth/authorise", key,
                                  _body("demo-basic", [{"key": "username", "value": "demo"},
                                                       {"key": "password", "value": "demo"}]),
                                  headers={"Prefer": "wait=30"})
            assert status == 200 and answer["data"]["status"] == "succeeded", answer
            me = client.get(f"/api/v1/connectors/{answer['data']['connector_id']}/proxy/me",
                            headers={"Authorization": key})
            assert me.status_code == 200 and me.json()["auth"] == "basic", me.text

            status, answer = http("POST", f"{up.base}/api/v1/oauth/authorise", key, _body("demo-oauth2", []),
                                  headers={"Prefer": "wait=30"})
            assert status == 200 and answer["data"]["status"] == "succeeded", answer
            connector_id = answer["data"]["connector_id"]
            for _ in range(3):  # new connections each time: the kernel spreads them over both processes
                page = client.get(answer["data"]["result"]["next_action"]["url"])
                assert page.status_code == 200 and "Approve" in page.text
            decided = client.post("/demo/oauth/authorize", data={"request": pending_request(page.text),
                                                                  "decision": "approve"})
            assert decided.status_code == 303, decided.text
            location = decided.headers["Location"]
            assert "code" in parse_qs(urlsplit(location).query)
            assert client.get(location).status_code == 200
            for _ in range(100):
                status, connector = http("GET", f"{up.base}/api/v1/connectors/{connector_id}", key)
                if connector["data"]["status"] == "authorised":
                    break
                time.sleep(0.2)
            assert connector["data"]["status"] == "authorised", connector
            me = client.get(f"/api/v1/connectors/{connector_id}/proxy/me", headers={"Authorization": key})
            assert me.status_code == 200 and me.json()["grant"] == "authorization_code", me.text
    finally:
        assert up.stop() == 0, up.output()


def test_up_without_demo_serves_none_of_it(tmp_path: Path) -> None:
    up = Up(tmp_path / "data", free_port(), _env())
    try:
        up.wait_ready()
        assert "demo:" not in up.output() and "/demo/" not in up.output()
        assert httpx2.get(f"{up.base}/demo/", trust_env=False).status_code == 404
    finally:
        assert up.stop() == 0, up.output()
