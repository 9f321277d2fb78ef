"""The webhook endpoints' own answers (contract §10, §3): the secret shown once, validation with
clear 422s that change nothing, https only unless private networks are allowed, ids of the
documented shape, per tenant, audited; and the signature any Standard Webhooks library verifies."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook as Verifier

from api.app import create_app
from tasks.model.webhooks import Event
from tasks.security import webhook_signing
from tasks.settings import Settings, parse_retry_schedule
from tasks.storage import schema
from tests.support.leakcheck import remember_secret
from worker.queues import make_job_queue

HOOKS = "/api/v1/webhooks"
URL = "https://platform.example.test/hooks/authq"


async def created(client, tenant, **body: object) -> dict:  # type: ignore[no-untyped-def,type-arg]
    answer = await client.post(HOOKS, json={"url": URL, **body}, headers=tenant.headers)
    assert answer.status == 201, await answer.text()
    data = (await answer.json())["data"]
    remember_secret(data["secret"])
    assert answer.headers["Location"] == f"{HOOKS}/{data['id']}"
    return dict(data)


async def test_the_secret_is_shown_once_and_sealed_at_rest(client, tenant, redis_client) -> None:
    data = await created(client, tenant, description="alerts", events=["connector.expired", "job.failed"])
    assert data["id"].startswith("whk_") and len(data["id"]) == 36
    assert data["secret"].startswith("whsec_") and len(base64.b64decode(data["secret"][6:])) == 32
    assert {k: data[k] for k in ("url", "events", "description", "disabled")} == {
        "url": URL, "events": ["connector.expired", "job.failed"], "description": "alerts", "disabled": False}
    shown = await (await client.get(f"{HOOKS}/{data['id']}", headers=tenant.headers)).json()
    assert shown["data"] == {k: v for k, v in data.items() if k != "secret"}
    listed = await (await client.get(HOOKS, headers=tenant.headers)).json()
    assert listed["data"] == [shown["data"]] and listed["meta"]["total"] == 1
    stored = redis_client.get(schema.webhook(tenant.name, data["id"]))
    assert stored is not None and data["secret"].encode() not in stored
    assert data["secret"][6:].encode() not in stored


async def test_events_default_to_every_type_but_ping(client, tenant) -> None:
    data = await created(client, tenant)
    assert data["events"] == ["connector.authorised", "connector.failed", "connector.expired", "connector.deleted",
                              "job.succeeded", "job.failed"]


@pytest.mark.parametrize(("body", "field"), [
    ({}, "url"),
    ({"url": "ftp://platform.example.test/x"}, "url"),
    ({"url": "https://user:pw@platform.example.test/x"}, "url"),
    ({"url": "https://platform.example.test/a\\b"}, "url"),
    ({"url": 7}, "url"),
    ({"url": URL, "events": ["connector.exploded"]}, "events.0"),
    ({"url": URL, "events": []}, "events"),
    ({"url": URL, "events": ["job.failed", "job.failed"]}, "events"),
    ({"url": URL, "description": "x" * 256}, "description"),
])
async def test_a_bad_body_is_a_422_at_its_field_and_registers_nothing(client, tenant, body, field) -> None:
    answer = await client.post(HOOKS, json=body, headers=tenant.headers)
    assert answer.status == 422, await answer.text()
    assert field in (await answer.json())["errors"]
    assert (await (await client.get(HOOKS, headers=tenant.headers)).json())["data"] == []


async def test_plain_http_is_refused_unless_private_networks_are_allowed(aiohttp_client, settings: Settings,
                                                                         tenant) -> None:
    public = settings.model_copy(update={"allow_private_networks": False})
    strict = await aiohttp_client(create_app(public, make_job_queue(public)))
    answer = await strict.post(HOOKS, json={"url": "http://platform.example.test/hooks"}, headers=tenant.headers)
    assert answer.status == 422
    assert (await answer.json())["errors"] == {"url": ["The url must be https://."]}
    assert (await strict.post(HOOKS, json={"url": URL}, headers=tenant.headers)).status == 201


async def test_another_tenants_or_a_misshapen_id_is_a_404(client, tenants) -> None:
    mine, theirs = tenants
    data = await created(client, mine)
    for path in (f"{HOOKS}/{data['id']}", f"{HOOKS}/{data['id']}/deliveries", f"{HOOKS}/{data['id']}/test"):
        method = client.post if path.endswith("/test") else client.get
        assert (await method(path, headers=theirs.headers)).status == 404
    for bad in (f"whk_{secrets.token_hex(16)}", f"{data['id']}:deliveries", "whk_1", f"con_{data['id'][4:]}"):
        assert (await client.get(f"{HOOKS}/{bad}", headers=mine.headers)).status == 404
    assert (await client.delete(f"{HOOKS}/{data['id']}", headers=theirs.headers)).status == 404
    assert (await client.get(f"{HOOKS}/{data['id']}", headers=mine.headers)).status == 200


async def test_create_and_delete_are_audited_and_a_ping_is_logged(client, tenant) -> None:
    data = await created(client, tenant)
    ping = await client.post(f"{HOOKS}/{data['id']}/test", headers=tenant.headers)
    assert ping.status == 202
    sent = (await ping.json())["data"]
    assert sent["type"] == "ping" and sent["status"] == "pending" and sent["event_id"].startswith("msg_")
    log = await (await client.get(f"{HOOKS}/{data['id']}/deliveries", headers=tenant.headers)).json()
    assert [d["event_id"] for d in log["data"]] == [sent["event_id"]]
    assert (await client.delete(f"{HOOKS}/{data['id']}", headers=tenant.headers)).status == 204
    assert (await client.get(f"{HOOKS}/{data['id']}", headers=tenant.headers)).status == 404
    assert (await client.delete(f"{HOOKS}/{data['id']}", headers=tenant.headers)).status == 404
    events = (await (await client.get("/api/v1/audit-events", headers=tenant.headers)).json())["data"]
    assert [(e["type"], e["details"]) for e in events] == [("webhook.deleted", {"webhook_id": data["id"]}),
                                                           ("webhook.created", {"webhook_id": data["id"]})]


def test_authqs_signature_is_what_the_standard_webhooks_library_verifies() -> None:
    secret = webhook_signing.new_secret()
    event = Event.ping("whk_" + "0" * 32)
    now = int(datetime.now(UTC).timestamp())
    headers = webhook_signing.headers(secret, event.id, now, event.body)
    assert Verifier(secret).verify(event.body, headers) == json.loads(event.body)
    tampered = event.body.replace("whk_0", "whk_1")
    with pytest.raises(Exception, match="No matching signature"):
        Verifier(secret).verify(tampered, headers)


@pytest.mark.parametrize("bad", ["5,soon", "0", "-1", "5," * 51])
def test_a_retry_schedule_that_is_not_positive_seconds_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="AUTHQ_WEBHOOK_RETRY_SCHEDULE"):
        parse_retry_schedule(bad)
    assert parse_retry_schedule("5, 300,1800") == (5.0, 300.0, 1800.0)
    assert Settings(_env_file=None).webhook_retry_intervals == (5, 300, 1800, 7200, 18000, 36000, 36000)  # type: ignore[call-arg]
