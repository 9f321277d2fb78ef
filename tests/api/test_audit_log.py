"""The audit log (contract §12) end to end: real API, real workers, a real provider. An authorise
that succeeds, a reauthorise and a delete each leave one event, newest first, naming the key
that asked (its id) and the client's address; the log pages and filters as a list does, refuses
a bad filter with 422, is the tenant's own, and never holds a secret value."""

from __future__ import annotations

import secrets

from tasks.model.api_keys import static_key_id
from tasks.storage.api_keys import create_key
from tests.support.helpers import Tenant, basic_body, poll_job
from tests.support.leakcheck import remember_secret
from tests.support.provider import GOOD_KEY, GOOD_SECRET

EVENTS = "/api/v1/audit-events"


async def events(client, tenant: Tenant, query: str = "") -> dict:  # type: ignore[no-untyped-def,type-arg]
    answer = await client.get(f"{EVENTS}{query}", headers=tenant.headers)
    assert answer.status == 200, await answer.text()
    return dict(await answer.json())


async def finished(client, tenant: Tenant, answer) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert answer.status == 202, await answer.text()
    job = await poll_job(client, tenant, (await answer.json())["data"]["id"])
    assert job["status"] == "succeeded", job
    return job


async def test_authorise_reauthorise_and_delete_are_audited_with_their_actor(  # type: ignore[no-untyped-def]
        client, tenant, tenants, workers, fresh_provider, redis_client) -> None:
    assert (await events(client, tenant))["data"] == []
    job = await finished(client, tenant, await client.post("/api/v1/oauth/authorise", json=basic_body(fresh_provider),
                                                           headers=tenant.headers))
    connector_id = job["connector_id"]
    # The reauthorise is asked with another key of the tenant: its event names that key.
    other, raw = create_key(redis_client, tenant.name)
    remember_secret(raw)
    rekey = Tenant(tenant.name, raw)
    again = await finished(client, rekey, await client.patch(
        f"/api/v1/oauth/{connector_id}/reauthorise", json={"name": "Renamed shop"}, headers=rekey.headers))
    assert (await client.delete(f"/api/v1/connectors/{connector_id}", headers=tenant.headers)).status == 204

    page = await events(client, tenant, f"?connector_id={connector_id}")
    static = static_key_id(tenant.key)
    assert [(e["type"], e["actor"], e["connector_id"]) for e in page["data"]] == [
        ("connector.deleted", {"api_key_id": static, "ip": "127.0.0.1"}, connector_id),
        ("connector.reauthorised", {"api_key_id": other.id, "ip": "127.0.0.1"}, connector_id),
        ("connector.created", {"api_key_id": static, "ip": "127.0.0.1"}, connector_id)]
    deleted, reauthorised, made = page["data"]
    assert made["details"] == {"job_id": job["id"], "job_type": "authorise", "status": "authorised"}
    assert reauthorised["details"] == {"job_id": again["id"], "job_type": "reauthorise", "status": "authorised"}
    assert deleted["details"] == {}
    assert made["id"] < reauthorised["id"] < deleted["id"] and made["at"] <= reauthorised["at"] <= deleted["at"]
    assert all(e["at"].endswith("Z") and e["id"].startswith("evt_") for e in page["data"])

    # A delete of a connector that is gone deletes nothing and is not audited.
    assert (await client.delete(f"/api/v1/connectors/{connector_id}", headers=tenant.headers)).status == 404
    whole = await events(client, tenant)
    assert [e["type"] for e in whole["data"]] == ["connector.deleted", "connector.reauthorised", "api_key.created",
                                                 "connector.created"]   # the second key's creation, unfiltered
    assert (await events(client, tenants[1]))["data"] == []                 # another tenant's log is its own

    # No secret value anywhere: not in the answer, not in what Redis keeps.
    text = await (await client.get(f"{EVENTS}?per_page=100", headers=tenant.headers)).text()
    kept = b"".join(m for key in redis_client.scan_iter(match=f"authq:t:{tenant.name}:audit*")
                    for m in redis_client.zrange(key, 0, -1))
    for secret in (GOOD_SECRET, tenant.key, raw):
        assert secret not in text and secret.encode() not in kept
    assert GOOD_KEY not in text   # not even the variables that are not secret: details are ids and statuses


async def test_pages_are_newest_first_and_filters_are_kept_and_checked(  # type: ignore[no-untyped-def]
        client, tenant, workers, fresh_provider) -> None:
    made = []
    for _ in range(3):
        job = await finished(client, tenant, await client.post(
            "/api/v1/oauth/authorise", json=basic_body(fresh_provider), headers=tenant.headers))
        made.append(job["connector_id"])
    assert (await client.delete(f"/api/v1/connectors/{made[0]}", headers=tenant.headers)).status == 204

    everything = await events(client, tenant)
    assert [(e["type"], e["connector_id"]) for e in everything["data"]] == [
        ("connector.deleted", made[0]), ("connector.created", made[2]), ("connector.created", made[1]),
        ("connector.created", made[0])]
    second = await events(client, tenant, "?type=connector.created&per_page=1&page=2")
    assert [e["connector_id"] for e in second["data"]] == [made[1]]
    assert second["meta"] == {"current_page": 2, "per_page": 1, "total": 3, "last_page": 3, "from": 2, "to": 2}
    assert second["links"] == {"first": f"{EVENTS}?page=1&per_page=1&type=connector.created",
                               "last": f"{EVENTS}?page=3&per_page=1&type=connector.created",
                               "prev": f"{EVENTS}?page=1&per_page=1&type=connector.created",
                               "next": f"{EVENTS}?page=3&per_page=1&type=connector.created"}
    both = await events(client, tenant, f"?connector_id={made[0]}&type=connector.deleted")
    assert [e["type"] for e in both["data"]] == ["connector.deleted"] and both["meta"]["total"] == 1
    nobody = await events(client, tenant, f"?connector_id=con_{secrets.token_hex(16)}")
    assert nobody["data"] == [] and nobody["meta"]["total"] == 0

    answer = await client.get(f"{EVENTS}?type=connector.exploded&connector_id=con_1&colour=red&per_page=0",
                              headers=tenant.headers)
    assert answer.status == 422
    assert set((await answer.json())["errors"]) == {"type", "connector_id", "colour", "per_page"}
    for query in ("?type=", "?connector_id=job_" + "0" * 32, "?page=0", "?filter[type]=connector.created"):
        assert (await client.get(f"{EVENTS}{query}", headers=tenant.headers)).status == 422, query


async def test_a_failed_authorise_audits_the_connector_it_left_failed(  # type: ignore[no-untyped-def]
        client, tenant, workers, fresh_provider) -> None:
    body = basic_body(fresh_provider)
    body["variables"][2]["value"] = "cs_wrong_secret_0000"  # type: ignore[index]
    answer = await client.post("/api/v1/oauth/authorise", json=body, headers=tenant.headers)
    job = await poll_job(client, tenant, (await answer.json())["data"]["id"])
    assert job["status"] == "failed" and job["error"]["code"] == "credentials_rejected"
    # test-basic has a credential check: its connector is stored pending first, and left failed.
    connector = await client.get(f"/api/v1/connectors/{job['connector_id']}", headers=tenant.headers)
    assert connector.status == 200 and (await connector.json())["data"]["status"] == "failed"
    page = await events(client, tenant)
    assert [(e["type"], e["connector_id"], e["details"]) for e in page["data"]] == [
        ("connector.created", job["connector_id"], {"job_id": job["id"], "job_type": "authorise"})]
