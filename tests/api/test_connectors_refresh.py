"""``POST /api/v1/connectors/{id}/refresh`` before any job runs: a connector that was never
authorised has no credentials to refresh, and the API says so at once (409, with its status),
instead of queueing a job that fails later; an authorised one is queued as usual."""

from __future__ import annotations

from tasks.model.records import utcnow
from tests.support.helpers import save_connector


def refresh(connector_id: str) -> str:
    return f"/api/v1/connectors/{connector_id}/refresh"


async def test_refreshing_a_connector_never_authorised_is_a_409_naming_its_status(client, tenant, redis_client,
                                                                                  secret_key):
    for status in ("pending", "failed"):
        connector = save_connector(redis_client, secret_key, tenant, status=status, authorised_at=None,
                                   authentication_implementation_id="test-oauth", type="oauth2_authorization_code")
        answer = await client.post(refresh(connector.id), headers=tenant.headers)
        assert answer.status == 409, await answer.text()
        body = await answer.json()
        assert body["status"] == status and "never been authorised" in body["message"]
        assert set(body) == {"message", "status"}


async def test_an_authorised_connector_is_queued_for_refresh(client, tenant, redis_client, secret_key):
    connector = save_connector(redis_client, secret_key, tenant, status="authorised", authorised_at=utcnow(),
                               authentication_implementation_id="test-oauth", type="oauth2_authorization_code")
    answer = await client.post(refresh(connector.id), headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    assert (await answer.json())["data"]["type"] == "refresh"
