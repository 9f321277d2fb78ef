"""``GET /connectors`` with Patchworks-style filters (contract §5): a comma means "or", several
filters must all hold, the count and the page links are of the filtered list, and an unknown
filter or status is a 422 (never ignored: ignoring it would answer with every connector)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tasks.model.records import utcnow
from tests.support.helpers import save_connector

CONNECTORS = "/api/v1/connectors"


@pytest.fixture
def fleet(redis_client, secret_key, tenants):  # type: ignore[no-untyped-def]
    """The tenant's connectors, oldest first: statuses and systems to filter on, and another
    tenant's expired one that must never be listed."""
    owner, other = tenants
    start = utcnow() - timedelta(hours=1)
    made = []
    for i, (status, system, session) in enumerate([
            ("authorised", "shop", None), ("expired", "shop", "ses_" + "1" * 32), ("failed", "crm", None),
            ("expired", "crm", None), ("pending", "shop", "ses_" + "1" * 32), ("expired", "shop", None)]):
        made.append(save_connector(redis_client, secret_key, owner, status=status, system=system,
                                   session_id=session, created_at=start + timedelta(seconds=i)))
    save_connector(redis_client, secret_key, other, status="expired")
    return made


async def _list(client, tenant, **params):  # type: ignore[no-untyped-def]
    answer = await client.get(CONNECTORS, params=params, headers=tenant.headers)
    return answer.status, await answer.json()


async def test_a_status_filter_lists_only_those_of_the_tenant(client, tenant, fleet) -> None:
    status, body = await _list(client, tenant, **{"filter[status]": "expired"})
    assert status == 200
    assert [c["id"] for c in body["data"]] == [c.id for c in fleet if c.status == "expired"]
    assert body["meta"]["total"] == 3


async def test_a_comma_is_or_and_filters_are_and(client, tenant, fleet) -> None:
    _, body = await _list(client, tenant, **{"filter[status]": "expired,failed", "filter[system]": "crm"})
    assert [c["id"] for c in body["data"]] == [fleet[2].id, fleet[3].id]
    _, body = await _list(client, tenant, **{"filter[session_id]": "ses_" + "1" * 32})
    assert [c["id"] for c in body["data"]] == [fleet[1].id, fleet[4].id]
    _, body = await _list(client, tenant, **{"filter[authentication_implementation_id]": "test-basic",
                                              "filter[status]": "authorised"})
    assert [c["id"] for c in body["data"]] == [fleet[0].id]
    _, body = await _list(client, tenant, **{"filter[system]": "nothing-like-it"})
    assert body["data"] == [] and body["meta"]["total"] == 0


async def test_a_filtered_list_pages_and_its_links_keep_the_filter(client, tenant, fleet) -> None:
    expired = [c.id for c in fleet if c.status == "expired"]
    _, first = await _list(client, tenant, **{"filter[status]": "expired", "per_page": "2"})
    assert [c["id"] for c in first["data"]] == expired[:2]
    assert first["meta"]["total"] == 3 and first["meta"]["last_page"] == 2
    answer = await client.get(first["links"]["next"], headers=tenant.headers)
    second = await answer.json()
    assert [c["id"] for c in second["data"]] == expired[2:]
    assert second["meta"]["current_page"] == 2 and second["links"]["next"] is None


@pytest.mark.parametrize(("params", "field"), [
    ({"filter[colour]": "red"}, "filter.colour"),
    ({"filter": "expired"}, "filter.filter"),
    ({"filter[status]": "expired,gone"}, "filter.status"),
    ({"filter[status]": " , "}, "filter.status"),
    ({"filter[system]": ",".join(f"s{i}" for i in range(51))}, "filter.system"),
])
async def test_an_unknown_filter_or_status_is_a_422_at_its_name(client, tenant, fleet, params, field) -> None:
    status, body = await _list(client, tenant, **params)
    assert status == 422 and list(body["errors"]) == [field], body


async def test_without_a_filter_the_list_is_unchanged(client, tenant, fleet) -> None:
    _, body = await _list(client, tenant, per_page="100")
    assert [c["id"] for c in body["data"]] == [c.id for c in fleet] and body["meta"]["total"] == 6
