"""A deployment with the demo on (``AUTHQ_DEMO``), as ``authq up --demo`` runs one: the real app
on a real loopback port, serving the API and ``/demo/`` together, and a real worker process,
both with the public URL of that port and *without* ``AUTHQ_ALLOW_PRIVATE_NETWORKS``, so the
outbound guard's one exception (the demo's origin) is what lets the jobs and the proxy through.

It has a Redis of its own (a ``Fleet``): the session's workers know no demo catalog, and must
not take its jobs.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import redis

from authq.redis_server import free_port
from tasks.security.key_check import ensure_key_check
from tasks.security.sealing import SecretBox
from tasks.settings import Settings
from tests.support.fleet import Fleet
from tests.support.helpers import TEST_CATALOG, Tenant
from tests.support.leakcheck import remember_secret
from tests.support.served_app import serve_in_thread

REQUEST_ID = 'name="request" value="'


@dataclass
class DemoDeployment:
    base: str
    tenant: Tenant
    fleet: Fleet
    settings: Settings

    def http(self) -> httpx2.Client:
        """A client of the service, as a platform's back end or a browser would be (no redirects followed)."""
        return httpx2.Client(base_url=self.base, follow_redirects=False, timeout=30, trust_env=False)

    def redis(self) -> redis.Redis:
        return self.fleet.client()

    def authorise(self, body: dict[str, Any]) -> dict[str, Any]:
        """Submit an authorise and wait (``Prefer: wait``) for its job to end."""
        with self.http() as http:
            answer = http.post("/api/v1/oauth/authorise", json=body,
                               headers={**self.tenant.headers, "Prefer": "wait=25"})
        assert answer.status_code in (200, 202), answer.text
        return self.job(answer.json()["data"]["id"])

    def job(self, job_id: str, timeout: float = 40) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.http() as http:
            while True:
                job = http.get(f"/api/v1/jobs/{job_id}", headers={**self.tenant.headers, "Prefer": "wait=10"}).json()
                if job["data"]["status"] in ("succeeded", "failed"):
                    return dict(job["data"])
                assert time.monotonic() < deadline, job
                time.sleep(0.1)

    def connector(self, connector_id: str) -> dict[str, Any]:
        with self.http() as http:
            answer = http.get(f"/api/v1/connectors/{connector_id}", headers=self.tenant.headers)
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["data"])

    def proxy(self, connector_id: str, path: str) -> httpx2.Response:
        with self.http() as http:
            return http.get(f"/api/v1/connectors/{connector_id}/proxy/{path}", headers=self.tenant.headers)


def demo_body(implementation_id: str, variables: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"authentication_implementation_id": implementation_id, "timezone": "UTC", "date_format": "Y-m-d",
            "rate_limit_unit": "second", "rate_limit_duration": 50, "variables": variables or []}


def pending_request(page: str) -> str:
    """The id of the request an Approve/Deny form carries (its hidden ``request`` field)."""
    start = page.index(REQUEST_ID) + len(REQUEST_ID)
    return page[start:page.index('"', start)]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def start_demo(tmp: Path, secret_key: str, ca_bundle: Path) -> Iterator[DemoDeployment]:
    fleet = Fleet(tmp, secret_key, ca_bundle)
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with fleet.client() as client:
            ensure_key_check(client, SecretBox(secret_key))
        fleet.extra_env = {"AUTHQ_DEMO": "true", "AUTHQ_PUBLIC_URL": base, "AUTHQ_ALLOW_PRIVATE_NETWORKS": "false"}
        fleet.start_worker("demo-worker")
        tenant = Tenant(f"t{secrets.token_hex(4)}", f"key-{secrets.token_urlsafe(18)}")
        remember_secret(tenant.key)
        settings = Settings(redis_url=fleet.url, secret_key=secret_key, catalog=TEST_CATALOG,
                            api_keys=f"{tenant.name}:{tenant.key}:manage+proxy+credentials", public_url=base,
                            allow_private_networks=False, demo=True, port=port,
                            _env_file=None)  # type: ignore[call-arg]
        from api.app import create_app
        from worker.queues import make_job_queue

        served = serve_in_thread(create_app(settings, make_job_queue(settings)), "demo-api", port)
        assert next(served) == base
        try:
            yield DemoDeployment(base, tenant, fleet, settings)
        finally:
            served.close()
    finally:
        fleet.stop()
