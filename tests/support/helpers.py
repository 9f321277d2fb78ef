"""Helpers the tests share: tenants, request bodies, polling, records written as a worker would."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import redis
from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from authq.redis_server import RedisServer
from tasks.model.bodies import VariableIn
from tasks.model.catalog import load_catalog
from tasks.model.records import Connector, RateLimit, new_id, utcnow
from tasks.security.sealing import SecretBox
from tasks.storage import schema
from tasks.storage.store import Store
from tasks.validation.variables import build_variables

ROOT = Path(__file__).resolve().parents[2]


TEST_CATALOG = Path(__file__).resolve().parent / "catalog.yaml"


PLATFORM_APP_SECRET = "platform-app-secret-value-9911"


PUBLIC_URL = "http://authq.test"


REDIRECT_URI = f"{PUBLIC_URL}/api/v1/oauth/authenticate"


@dataclass
class Tenant:
    name: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": self.key}


WEBHOOK_TEST_SCHEDULE = "1,2,3"


def base_env(redis_server: RedisServer, secret_key: str, ca_bundle: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHQ_")}
    env.update({
        "AUTHQ_REDIS_URL": redis_server.url,
        "AUTHQ_SECRET_KEY": secret_key,
        "AUTHQ_CATALOG": str(TEST_CATALOG),
        "AUTHQ_ALLOW_PRIVATE_NETWORKS": "true",
        "AUTHQ_OUTBOUND_TIMEOUT_SECONDS": "5",
        "AUTHQ_CA_BUNDLE": str(ca_bundle),
        "AUTHQ_PUBLIC_URL": PUBLIC_URL,
        "AUTHQ_REFRESH_SCAN_SECONDS": "1",   # scheduled refreshes are tested; don't wait 30 s
        # Webhook retries are tested on a short schedule (1 s, 2 s, 3 s: four attempts in all),
        # a short deadline (a hanging endpoint), and a scan five times a second.
        "AUTHQ_WEBHOOK_RETRY_SCHEDULE": WEBHOOK_TEST_SCHEDULE,
        "AUTHQ_WEBHOOK_TIMEOUT_SECONDS": "4",
        "AUTHQ_WEBHOOK_SCAN_SECONDS": "0.2",
        "TEST_APP_SECRET": PLATFORM_APP_SECRET,
    })
    return env


def authorise_body(**overrides: object) -> dict[str, object]:
    """A valid authorise body for the ``test-basic`` implementation (no base_url: tests add it)."""
    body: dict[str, object] = {
        "name": "My shop",
        "authentication_implementation_id": "test-basic",
        "timezone": "Europe/London",
        "date_format": "d/m/Y H:i",
        "rate_limit_unit": "minute",
        "rate_limit_duration": 60,
        "variables": [
            {"key": "base_url", "value": "http://127.0.0.1:9"},
            {"key": "consumer_key", "value": "ck_good_1234"},
            {"key": "consumer_secret", "value": "cs_good_secret_5678", "secret": True},
        ],
    }
    body.update(overrides)
    return body


async def poll_job(client: TestClient, tenant: Tenant, job_id: str, timeout: float = 30.0) -> dict[str, object]:
    """Poll ``GET /jobs/{id}`` as a client would, until the job ends."""

    deadline = time.monotonic() + timeout
    while True:
        answer = await client.get(f"/api/v1/jobs/{job_id}", headers=tenant.headers)
        assert answer.status == 200, await answer.text()
        job = (await answer.json())["data"]
        if job["status"] in ("succeeded", "failed"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not end in {timeout}s: {job}")
        await asyncio.sleep(0.1)


def save_connector(redis_client: redis.Redis, secret_key: str, owner: Tenant, base_url: str | None = None,
                   **fields: object) -> Connector:
    """Write a ``test-basic`` connector of ``owner`` straight into Redis, as a worker would.

    Its variables are built from ``authorise_body()``'s by the same code the jobs use (so the
    locked ``region`` is there with its default), its ``base_url`` variable ``base_url`` when
    given (a provider the proxy can reach); ``fields`` override the record's settings.
    """
    impl = load_catalog(TEST_CATALOG).implementation("test-basic")
    assert impl is not None
    body = authorise_body()
    if base_url is not None:
        body["variables"][0]["value"] = base_url  # type: ignore[index]
    items = [VariableIn.model_validate(v) for v in body["variables"]]  # type: ignore[union-attr]
    now = utcnow()
    values: dict[str, object] = {
        "id": new_id("con"), "tenant": owner.name, "name": "My shop", "authentication_implementation_id": impl.id,
        "type": impl.type, "system": impl.system, "status": "authorised", "timezone": "Europe/London",
        "date_format": "d/m/Y", "rate_limit": RateLimit(unit="minute", duration=60),
        "variables": build_variables(items, impl, SecretBox(secret_key), platform_app=False),
        "created_at": now, "updated_at": now, **fields,
    }
    record = Connector.model_validate(values)
    Store(redis_client, 3600).save_connector(record)
    return record


def job_keys(redis_client: redis.Redis, tenant_name: str) -> list[bytes]:
    """The tenant's job records (not their submissions, leases or other per-job keys)."""
    return [key for key in redis_client.scan_iter(match=schema.job.pattern(tenant_name), count=1000)
            if schema.job.parse(key) is not None]


def basic_body(provider, **overrides):  # type: ignore[no-untyped-def]
    body = authorise_body(**overrides)
    body["variables"][0]["value"] = provider.base_url  # type: ignore[index]
    return body


def pem_bundle(not_before: datetime, not_after: datetime) -> str:
    """A self-signed certificate and its private key, as one PEM, valid between the two times."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "authq test client")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM).decode() + key_pem.decode()
