"""Secrets at rest under rotating keys, and the start-up check of ``AUTHQ_SECRET_KEY``.

Proven here, against a redis-server of this module's own (the key check is global to a
Redis, and the session's Redis belongs to the session's key):

- ``rotate_secrets`` re-seals connector variables and credentials, certificate keys and
  passphrases, job submissions, authorization states (their code verifier and the sealed
  fields of the connector waiting in them) and the key check, so that a box holding ONLY
  the new key opens every one of them, to the same plaintext; TTLs are kept; a second run
  rewrites nothing; a value sealed under a key that is not configured is reported (key,
  field, when it was sealed) and left byte for byte as it was; writes racing the rotation
  are not lost.
- ``authq secrets rotate``, as a process: progress, a summary, exit 0; exit 1 naming the
  value no key opens and what to do; exit 2 when no configured key opens the stored data.
- The API app (started by aiohttp's test client), a worker's context, a real ``celery``
  worker process, ``authq api`` and ``authq up`` refuse to start with a key that does not
  open the stored secrets, with a message naming AUTHQ_SECRET_KEY; ``authq api`` without
  AUTHQ_SECRET_KEY exits 2 with one line naming it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import trustme
from cryptography.hazmat.primitives import serialization

from authq.redis_server import RedisServer, free_port
from tasks.errors import ConfigError, SecretUnreadable
from tasks.model.records import Certificate, Connector
from tasks.model.webhooks import Webhook
from tasks.security.key_check import KEY_CHECK_TEXT, ensure_key_check, verify_key_check
from tasks.security.rotation import rotate_secrets
from tasks.security.sealing import SecretBox, generate_key
from tasks.settings import Settings
from tasks.storage import schema, states
from tests.support.helpers import PUBLIC_URL, ROOT, TEST_CATALOG, Tenant, authorise_body, save_connector
from tests.support.leakcheck import remember_secret

OLD = generate_key()
NEW = generate_key()
UNKNOWN = generate_key()   # a key no configuration below holds
BOTH = f"{NEW},{OLD}"      # the rotation procedure: the new key first, the old one after it
PASSPHRASE = "rotation-passphrase-81x"


def settings_for(server: RedisServer, key: str | None, tenant: Tenant | None = None) -> Settings:
    return Settings(redis_url=server.url, secret_key=key, catalog=TEST_CATALOG, allow_private_networks=True,
                    public_url=PUBLIC_URL, api_keys=f"{tenant.name}:{tenant.key}" if tenant else "",
                    _env_file=None)  # type: ignore[call-arg]


def env_for(server: RedisServer, key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHQ_")}
    env.update({"AUTHQ_REDIS_URL": server.url, "AUTHQ_CATALOG": str(TEST_CATALOG)})
    if key is not None:
        env["AUTHQ_SECRET_KEY"] = key
    return env


def authq(*args: str, env: dict[str, str], cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "authq", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


async def start_api(aiohttp_client, server: RedisServer, key: str, tenant: Tenant):  # type: ignore[no-untyped-def]
    from api.app import create_app
    from worker.queues import make_job_queue

    settings = settings_for(server, key, tenant)
    return await aiohttp_client(create_app(settings, make_job_queue(settings)))


def encrypted_leaf() -> tuple[str, str]:
    """(certificate PEM, its private key PEM encrypted under PASSPHRASE)."""
    leaf = trustme.CA().issue_cert("client.rotation.test")
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(PASSPHRASE.encode())).decode()
    return leaf.cert_chain_pems[0].bytes().decode(), key_pem


def raw(client: redis.Redis, key: str) -> bytes:
    value = client.get(key)
    assert value is not None, key
    return value


class Stored:
    """One record of every kind that holds secrets, all sealed under OLD (through the API
    where the API makes them, else as the jobs do), with what each secret should open to."""

    def __init__(self, client: redis.Redis, tenant: Tenant) -> None:
        self.client = client
        self.tenant = tenant
        self.plain: dict[str, object] = {}

    async def make(self, aiohttp_client, server: RedisServer) -> Stored:  # type: ignore[no-untyped-def]
        old = SecretBox(OLD)
        api = await start_api(aiohttp_client, server, OLD, self.tenant)   # makes the key check, under OLD
        cert_pem, key_pem = encrypted_leaf()
        answer = await api.post("/api/v1/certificates", json={"certificate": cert_pem + key_pem,
                                                               "passphrase": PASSPHRASE}, headers=self.tenant.headers)
        assert answer.status == 201, await answer.text()
        self.certificate = schema.certificate(self.tenant.name, (await answer.json())["data"]["id"])
        body = authorise_body()
        answer = await api.post("/api/v1/oauth/authorise", json=body, headers=self.tenant.headers)
        assert answer.status in (200, 202), await answer.text()
        self.submission = schema.submission(self.tenant.name, (await answer.json())["data"]["id"])
        self.plain["submission_secret"] = "cs_good_secret_5678"
        self.client.expire(self.submission, 5000)   # as a finished job's submission has
        answer = await api.post("/api/v1/webhooks", json={"url": "https://hooks.example.test/authq"},
                                headers=self.tenant.headers)
        assert answer.status == 201, await answer.text()
        created = (await answer.json())["data"]
        remember_secret(created["secret"])
        self.webhook = schema.webhook(self.tenant.name, created["id"])
        self.plain["webhook_secret"] = created["secret"]
        await api.close()

        tokens = {"access_token": "at-rotation-1", "refresh_token": "rt-rotation-1"}
        connector = save_connector(self.client, OLD, self.tenant, credentials_sealed=old.seal_json(tokens))
        self.connector = schema.connector(self.tenant.name, connector.id)
        self.plain["tokens"] = tokens
        self.raw_state = states.new_state()
        state = states.make_state("oauth", tenant=self.tenant.name, connector_id=connector.id, job_id="job_x",
                                  implementation_id="test-basic", code_verifier_sealed=old.seal("verifier-123"),
                                  candidate=connector.model_dump(mode="json"))
        states.issue(self.client, self.raw_state, state)
        self.state = schema.auth_state(self.raw_state)
        return self

    def all_keys(self) -> list[str]:
        return [self.connector, self.certificate, self.submission, self.state, self.webhook, schema.KEY_CHECK]

    def assert_opened_by(self, box: SecretBox) -> None:
        """Every secret opens with ``box``, to what was stored."""
        connector = Connector.model_validate_json(raw(self.client, self.connector))
        secret = connector.variable("consumer_secret")
        assert secret is not None and secret.value_sealed
        assert box.open(secret.value_sealed) == "cs_good_secret_5678"
        assert box.open_json(connector.credentials_sealed or "") == self.plain["tokens"]
        webhook = Webhook.model_validate_json(raw(self.client, self.webhook))
        assert box.open(webhook.secret_sealed) == self.plain["webhook_secret"]
        certificate = Certificate.model_validate_json(raw(self.client, self.certificate))
        assert "BEGIN PRIVATE KEY" in box.open(certificate.key_sealed)  # opened at upload: no passphrase kept
        assert certificate.passphrase_sealed is None and certificate.key_was_encrypted
        submission = box.open_json(raw(self.client, self.submission).decode())
        assert any(v.get("value") == self.plain["submission_secret"] for v in submission["variables"])
        state = states.load(self.client, self.raw_state)
        assert state is not None and state.candidate is not None
        assert box.open(state.code_verifier_sealed or "") == "verifier-123"
        candidate = Connector.model_validate(state.candidate)
        assert box.open(candidate.variable("consumer_secret").value_sealed or "") == "cs_good_secret_5678"  # type: ignore[union-attr]
        assert box.open_json(candidate.credentials_sealed or "") == self.plain["tokens"]
        verify_key_check(box, raw(self.client, schema.KEY_CHECK))


# --- rotate_secrets ---------------------------------------------------------------------

async def test_rotation_reseals_every_kind_under_the_new_key(aiohttp_client, own_redis, db, tenant) -> None:
    stored = await Stored(db, tenant).make(aiohttp_client, own_redis)
    with pytest.raises(SecretUnreadable):
        stored.assert_opened_by(SecretBox(NEW))            # before: the new key alone opens nothing
    ttls = {key: db.ttl(key) for key in stored.all_keys()}
    assert ttls[stored.state] > 0 and ttls[stored.submission] > 0 and ttls[stored.connector] == -1

    seen: list[int] = []
    report = rotate_secrets(db, SecretBox(BOTH), lambda r: seen.append(r.records_scanned), progress_every=1, batch=1)

    assert report.ok and report.fields_failed == 0 and not report.failures
    assert report.records_rotated == 6 and report.records_unchanged == 0
    # connector: consumer_secret + credentials; certificate: its key; the submission;
    # the state: its verifier + the candidate's consumer_secret + credentials; the webhook's
    # signing secret; the key check.
    assert report.fields_rotated == 2 + 1 + 1 + 3 + 1 + 1
    assert report.scanned_by_kind == {"connector": 1, "certificate": 1, "submission": 1, "state": 1, "webhook": 1,
                                      "key-check": 1}
    assert seen and seen == sorted(seen) and seen[-1] <= report.records_scanned   # progress came, and grew
    stored.assert_opened_by(SecretBox(NEW))                # after: the new key alone opens everything
    for key, ttl in ttls.items():
        assert (db.ttl(key) == -1) if ttl == -1 else (0 < db.ttl(key) <= ttl), key

    before = {key: raw(db, key) for key in stored.all_keys()}
    again = rotate_secrets(db, SecretBox(BOTH))            # idempotent: nothing left to do, nothing written
    assert again.ok and again.records_rotated == 0 and again.fields_rotated == 0
    assert again.records_unchanged == 6 and again.fields_current == report.fields_rotated
    assert {key: raw(db, key) for key in stored.all_keys()} == before
    assert rotate_secrets(db, SecretBox(NEW)).fields_current == report.fields_rotated   # old key gone: fine


async def test_a_value_no_key_opens_is_reported_and_left_as_it_is(db, tenant) -> None:
    ensure_key_check(db, SecretBox(OLD))
    unknown = SecretBox(UNKNOWN)
    lost = save_connector(db, UNKNOWN, tenant)                                    # wholly under a lost key
    mixed = save_connector(db, OLD, tenant, credentials_sealed=unknown.seal_json({"access_token": "x"}))
    lost_key, mixed_key = schema.connector(tenant.name, lost.id), schema.connector(tenant.name, mixed.id)
    lost_before = raw(db, lost_key)
    mixed_before = Connector.model_validate_json(raw(db, mixed_key))

    report = rotate_secrets(db, SecretBox(BOTH))

    assert not report.ok and report.fields_failed == 2 and report.records_failed == 2
    where = {(f.key, f.field) for f in report.failures}
    assert where == {(lost_key, "variables[2].value_sealed"), (mixed_key, "credentials_sealed")}
    assert all(f.sealed_at is not None for f in report.failures)
    assert raw(db, lost_key) == lost_before                                       # byte for byte
    mixed_after = Connector.model_validate_json(raw(db, mixed_key))
    assert mixed_after.credentials_sealed == mixed_before.credentials_sealed      # untouched
    secret = mixed_after.variable("consumer_secret")
    assert secret is not None and SecretBox(NEW).open(secret.value_sealed or "") == "cs_good_secret_5678"
    assert report.fields_rotated == 2   # the mixed connector's variable, and the key check


def test_writes_racing_the_rotation_are_not_lost(own_redis, db, tenant) -> None:
    """A writer keeps rewriting connectors (sealed under OLD, as a process not yet restarted
    would) while rotations run, and checks before each write that the record is still what
    it last wrote: a rotation writing back a value it read before that write would show."""
    ensure_key_check(db, SecretBox(OLD))
    connectors = [save_connector(db, OLD, tenant) for _ in range(4)]
    last = {record.id: record.name for record in connectors}
    lost: list[str] = []
    writes = 0
    stop = threading.Event()

    def writer() -> None:
        nonlocal writes
        client = own_redis.client()
        while not stop.is_set():
            for record in connectors:
                key = schema.connector(tenant.name, record.id)
                current = Connector.model_validate_json(raw(client, key)).name
                if current != last[record.id]:
                    lost.append(f"{record.id}: {last[record.id]} became {current}")
                writes += 1
                last[record.id] = f"name-{writes}"
                client.set(key, record.model_copy(update={"name": last[record.id]}).model_dump_json())
        client.close()

    thread = threading.Thread(target=writer)
    thread.start()
    rotated = 0
    try:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not lost:
            rotated += rotate_secrets(db, SecretBox(BOTH), batch=1).records_rotated
    finally:
        stop.set()
        thread.join()
    assert not lost, lost[:5]
    assert rotated > 0 and writes > 0
    final = rotate_secrets(db, SecretBox(BOTH))
    assert final.ok
    for record in connectors:
        stored = Connector.model_validate_json(raw(db, schema.connector(tenant.name, record.id)))
        assert stored.name == last[record.id]
        assert SecretBox(NEW).open(stored.variable("consumer_secret").value_sealed or "")  # type: ignore[union-attr]


# --- authq secrets rotate ---------------------------------------------------------------

async def test_cli_rotates_with_progress_and_a_summary(aiohttp_client, own_redis, db, tenant) -> None:
    stored = await Stored(db, tenant).make(aiohttp_client, own_redis)
    done = authq("secrets", "rotate", "--progress-every", "1", env=env_for(own_redis, BOTH))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "records checked" in done.stdout and "6 rewritten" in done.stdout
    assert "authq:   … " in done.stdout                               # progress lines
    assert "older key(s) can be removed" in done.stdout
    stored.assert_opened_by(SecretBox(NEW))
    again = authq("secrets", "rotate", env=env_for(own_redis, NEW))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 rewritten, 6 already current" in again.stdout


def test_cli_fails_naming_the_value_no_key_opens(own_redis, db, tenant) -> None:
    ensure_key_check(db, SecretBox(OLD))
    lost = save_connector(db, UNKNOWN, tenant)
    done = authq("secrets", "rotate", env=env_for(own_redis, BOTH))
    assert done.returncode == 1, done.stdout + done.stderr
    assert schema.connector(tenant.name, lost.id) in done.stderr and "variables[2].value_sealed" in done.stderr
    assert "AUTHQ_SECRET_KEY" in done.stderr and "Add that key back" in done.stderr
    assert "records checked" in done.stdout


def test_cli_refuses_keys_that_open_nothing_stored(own_redis, db) -> None:
    ensure_key_check(db, SecretBox(OLD))
    done = authq("secrets", "rotate", env=env_for(own_redis, NEW))   # the old key forgotten
    assert done.returncode == 2
    assert done.stderr.startswith("authq: error:") and "AUTHQ_SECRET_KEY=NEW,OLD" in done.stderr
    verify_key_check(SecretBox(OLD), raw(db, schema.KEY_CHECK))       # nothing was rewritten


# --- the start-up check ---------------------------------------------------------------------

async def test_api_refuses_to_start_with_a_key_that_does_not_open_the_data(aiohttp_client, own_redis, db,
                                                                           tenant) -> None:
    ensure_key_check(db, SecretBox(OLD))
    with pytest.raises(ConfigError, match="AUTHQ_SECRET_KEY does not open the secrets"):
        await start_api(aiohttp_client, own_redis, UNKNOWN, tenant)
    api = await start_api(aiohttp_client, own_redis, BOTH, tenant)    # mid-rotation keys: fine
    assert (await api.get("/healthz")).status == 200


def test_worker_context_refuses_a_key_that_does_not_open_the_data(own_redis, db) -> None:
    from worker.bootstrap import build_context

    ensure_key_check(db, SecretBox(OLD))
    with pytest.raises(ConfigError, match="AUTHQ_SECRET_KEY"):
        build_context(settings_for(own_redis, UNKNOWN))
    with pytest.raises(ConfigError, match="AUTHQ_SECRET_KEY is not set"):
        build_context(settings_for(own_redis, None))
    assert build_context(settings_for(own_redis, OLD)).box.open(raw(db, schema.KEY_CHECK).decode()) == KEY_CHECK_TEXT


def test_data_from_before_the_key_check_is_probed(own_redis, db, tenant) -> None:
    from worker.bootstrap import build_context

    record = save_connector(db, OLD, tenant)                      # stored data, no key check yet
    with pytest.raises(ConfigError, match=schema.connector(tenant.name, record.id)):
        build_context(settings_for(own_redis, UNKNOWN))
    assert db.get(schema.KEY_CHECK) is None                         # not made under the wrong key
    build_context(settings_for(own_redis, OLD))
    verify_key_check(SecretBox(OLD), raw(db, schema.KEY_CHECK))


def test_celery_worker_process_exits_with_a_clear_message(own_redis, db) -> None:
    ensure_key_check(db, SecretBox(OLD))
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker", "worker", "--pool=threads", "-n", f"rot{os.getpid()}@%h",
         "-Q", "authq.interactive", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env_for(own_redis, UNKNOWN), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "worker cannot start: AUTHQ_SECRET_KEY does not open" in done.stdout + done.stderr


def test_authq_api_without_a_secret_key_exits_2_with_one_line(own_redis, db) -> None:
    done = authq("api", "--port", str(free_port()), env=env_for(own_redis, None))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("authq: error:") and "AUTHQ_SECRET_KEY" in lines[0], done.stderr


def test_authq_api_and_up_with_a_wrong_key_exit_2(own_redis, db, tmp_path: Path) -> None:
    ensure_key_check(db, SecretBox(OLD))
    api = authq("api", "--port", str(free_port()), env=env_for(own_redis, UNKNOWN))
    assert api.returncode == 2
    lines = api.stderr.strip().splitlines()
    assert len(lines) == 1 and "AUTHQ_SECRET_KEY does not open" in lines[0], api.stderr
    up = authq("up", "--port", str(free_port()), "--data-dir", str(tmp_path / "data"),
               env=env_for(own_redis, UNKNOWN), cwd=tmp_path)
    assert up.returncode == 2, up.stdout + up.stderr
    assert "authq: error: AUTHQ_SECRET_KEY does not open" in up.stderr
    assert "starting the API" not in up.stdout                    # stopped before any child started
