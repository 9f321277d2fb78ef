from __future__ import annotations

from tests.support.helpers import authorise_body, poll_job


async def test_basic_authorise_end_to_end(client, tenant, workers, fresh_provider):
    body = authorise_body()
    body["variables"][0]["value"] = fresh_provider.base_url
    answer = await client.post("/api/v1/oauth/authorise", json=body, headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    job = (await answer.json())["data"]
    done = await poll_job(client, tenant, job["id"])
    assert done["status"] == "succeeded", done
