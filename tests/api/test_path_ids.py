"""Ids in paths have their documented shape, or the answer is a 404 like an unknown id's
(contract §3): a path id never reaches another Redis key than its own record's.

The shapes: ``job_``, ``con_``, ``crt_``, ``ses_`` and 32 lower-case hex digits; pool ids are
integers. Each endpoint with an id in its path is tried with the record's own id followed by a
key suffix (``:submission``, ``:starts``, ``:refresh-lock``...), with other prefixes, lengths
and characters; every answer must be the 404 an unknown id of that kind gets, and no key may
change.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from tasks.storage import schema
from tests.support.helpers import Tenant, authorise_body, save_connector

V1 = "/api/v1"
HEX = "0" * 32
# Keys that live beside a record (tasks/storage/schema.py) and malformed ids of every sort.
SUFFIXES = [":submission", ":starts", ":refresh-lock", ":lease", ":x", "/", "%3Asubmission"]


def malformed(kind: str) -> list[str]:
    return [f"{kind}_{HEX[:31]}", f"{kind}_{HEX}0", f"{kind}_{HEX[:31]}g", f"{kind}_{HEX.upper()[:31]}A",
            f"{kind.upper()}_{HEX}", f"x{kind}_{HEX}", HEX, f"{kind}{HEX}", "*", f"{kind}_*", f"{kind}_..", " "]


async def _not_found(answer, kind_message: str) -> None:  # type: ignore[no-untyped-def]
    text = await answer.text()
    assert answer.status == 404, text
    assert json.loads(text) == {"message": kind_message}


async def _submitted_job(client, tenant: Tenant) -> str:  # type: ignore[no-untyped-def]
    answer = await client.post(f"{V1}/oauth/authorise", json=authorise_body(), headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    return str((await answer.json())["data"]["id"])


async def _settled(client, tenant: Tenant, job_id: str, redis_client) -> None:  # type: ignore[no-untyped-def]
    """When the session's workers run (an earlier test started them), they take the job and
    write its keys as it runs: let it end first, so that every key change seen afterwards is
    the probes' doing. With no workers the job stays queued and nothing moves."""
    if redis_client.zcard(schema.WORKERS):
        answer = await client.get(f"{V1}/jobs/{job_id}", headers={**tenant.headers, "Prefer": "wait=10"})
        assert answer.status == 200, await answer.text()


async def test_a_job_id_with_a_key_suffix_is_404_on_every_job_endpoint(client, tenant, redis_client):
    """``GET /jobs/{id}:submission`` once answered the sealed request; ``Prefer: wait`` a 500."""
    job_id = await _submitted_job(client, tenant)
    await _settled(client, tenant, job_id, redis_client)
    before = {k: redis_client.dump(k) for k in redis_client.scan_iter(match=f"authq:t:{tenant.name}:*")}
    for suffix in SUFFIXES:
        raw = quote(job_id + suffix, safe=":%")
        for headers in ({}, {"Prefer": "wait=0"}, {"Prefer": "wait=1"}):
            await _not_found(await client.get(f"{V1}/jobs/{raw}", headers={**tenant.headers, **headers}),
                             "Job not found.")
        await _not_found(await client.get(f"{V1}/jobs/{raw}/events", headers=tenant.headers), "Job not found.")
    after = {k: redis_client.dump(k) for k in redis_client.scan_iter(match=f"authq:t:{tenant.name}:*")}
    assert after.keys() == before.keys()
    # The record itself still answers: the check is of the shape, not of the job.
    assert (await client.get(f"{V1}/jobs/{job_id}", headers=tenant.headers)).status == 200


@pytest.mark.parametrize("raw", malformed("job"))
async def test_a_malformed_job_id_is_404(client, tenant, raw):
    path = quote(raw, safe="")
    await _not_found(await client.get(f"{V1}/jobs/{path}", headers=tenant.headers), "Job not found.")
    await _not_found(await client.get(f"{V1}/jobs/{path}", headers={**tenant.headers, "Prefer": "wait=1"}),
                     "Job not found.")
    await _not_found(await client.get(f"{V1}/jobs/{path}/events", headers=tenant.headers), "Job not found.")


async def test_a_connector_id_with_a_key_suffix_changes_nothing(client, tenant, redis_client, secret_key):
    """``DELETE /connectors/{id}:refresh-lock`` once removed a running refresh's lock."""
    connector = save_connector(redis_client, secret_key, tenant)
    lock = schema.refresh_lock(tenant.name, connector.id)
    redis_client.set(lock, "job_running", ex=60)
    try:
        for suffix in SUFFIXES:
            raw = quote(connector.id + suffix, safe=":%")
            for method, path, body in (("GET", f"{V1}/connectors/{raw}", None),
                                       ("DELETE", f"{V1}/connectors/{raw}", None),
                                       ("POST", f"{V1}/connectors/{raw}/refresh", {}),
                                       ("PATCH", f"{V1}/oauth/{raw}/reauthorise", {"name": "renamed"})):
                answer = await client.request(method, path, json=body, headers=tenant.headers)
                await _not_found(answer, "Connector not found.")
        assert redis_client.get(lock) == b"job_running"
        assert list(redis_client.scan_iter(match=f"authq:t:{tenant.name}:job:*")) == []
    finally:
        redis_client.delete(lock)
    assert (await client.get(f"{V1}/connectors/{connector.id}", headers=tenant.headers)).status == 200


@pytest.mark.parametrize("raw", malformed("con"))
async def test_a_malformed_connector_id_is_404(client, tenant, raw):
    path = quote(raw, safe="")
    for method, url in (("GET", f"{V1}/connectors/{path}"), ("DELETE", f"{V1}/connectors/{path}"),
                        ("POST", f"{V1}/connectors/{path}/refresh"), ("PATCH", f"{V1}/oauth/{path}/reauthorise")):
        answer = await client.request(method, url, json={}, headers=tenant.headers)
        await _not_found(answer, "Connector not found.")


@pytest.mark.parametrize(("collection", "kind", "message"), [
    ("certificates", "crt", "Certificate not found."), ("sessions", "ses", "Session not found.")])
async def test_a_malformed_certificate_or_session_id_is_404(client, tenant, collection, kind, message):
    methods = ("GET", "DELETE") if collection == "certificates" else ("GET",)
    for raw in [*malformed(kind), *(f"{kind}_{HEX}{suffix}" for suffix in SUFFIXES)]:
        for method in methods:
            answer = await client.request(method, f"{V1}/{collection}/{quote(raw, safe=':%')}", headers=tenant.headers)
            await _not_found(answer, message)


async def test_a_session_id_with_a_key_suffix_is_404(client, tenant, redis_client):
    answer = await client.post(f"{V1}/sessions", json={"end_user_id": "u-1"}, headers=tenant.headers)
    session_id = (await answer.json())["data"]["id"]
    for suffix in SUFFIXES:
        answer = await client.get(f"{V1}/sessions/{quote(session_id + suffix, safe=':%')}", headers=tenant.headers)
        await _not_found(answer, "Session not found.")
    assert (await client.get(f"{V1}/sessions/{session_id}", headers=tenant.headers)).status == 200


@pytest.mark.parametrize("raw", ["1:x", "01", "001", "1.0", "-1", "+1", "²", "١", "1" * 20, "0x1", " 1", "1 "])
async def test_a_pool_id_that_is_not_an_integer_is_404(client, tenant, raw):
    """Pool 1 exists: an id that only reads as 1 (``01``, ``١``) must not reach it."""
    made = await client.post(f"{V1}/connection-pools", json={"name": "one", "limit": 1}, headers=tenant.headers)
    assert (await made.json())["data"]["id"] == 1
    for method in ("GET", "DELETE"):
        answer = await client.request(method, f"{V1}/connection-pools/{quote(raw, safe='')}", headers=tenant.headers)
        await _not_found(answer, "Connection pool not found.")
