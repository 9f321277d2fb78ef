"""``api/proxy_plans.py``: what a proxied request derives from its connector record (its
implementation, the base URL rendered, its credentials ready to inject) is worked out once per
record and never outlives it: a changed record gets a plan of its own."""

from __future__ import annotations

from api.proxy_plans import ProxyPlans
from tasks.model.catalog import Catalog, Implementation
from tasks.model.records import Connector, Credentials, RateLimit, Variable, new_id, utcnow
from tasks.security.sealing import SecretBox, generate_key

IMPL = Implementation.model_validate({
    "id": "shop-token", "system": "Shop", "type": "token", "base_url": "{{store_url}}/api/v2",
    "variables": [{"key": "store_url", "label": "Store"}, {"key": "token", "label": "Token", "secret": True}]})


def connector(box: SecretBox, store_url: str, token: str) -> Connector:
    now = utcnow()
    return Connector(id=new_id("con"), tenant="acme", name="c", authentication_implementation_id="shop-token",
                     type="token", system="Shop", timezone="UTC", date_format="Y-m-d", status="authorised",
                     rate_limit=RateLimit(unit="second", duration=5), created_at=now, updated_at=now,
                     variables=[Variable(id=new_id("var"), key="store_url", value=store_url)],
                     credentials=Credentials(token_type="bearer"), credentials_sealed=box.seal_json({"token": token}))


def test_a_plan_is_worked_out_once_per_record_and_anew_for_a_changed_one() -> None:
    box = SecretBox(generate_key())
    plans = ProxyPlans(Catalog(implementations=[IMPL]), box)
    record = connector(box, "https://shop.example/", "tok-1")
    plan = plans.of(record)
    assert plan.impl is not None and plan.impl.id == "shop-token"
    assert plan.base == "https://shop.example/api/v2" and plan.base_refused is None
    assert plan.usable is not None and plan.usable["headers"] == {"Authorization": "Bearer tok-1"}
    assert plans.of(record) is plan
    changed = record.model_copy(update={"credentials_sealed": box.seal_json({"token": "tok-2"})})
    assert plans.of(changed).usable["headers"] == {"Authorization": "Bearer tok-2"}  # type: ignore[index]
    assert plans.of(record) is plan


def test_a_base_url_that_cannot_be_rendered_is_kept_as_its_refusal() -> None:
    box = SecretBox(generate_key())
    plans = ProxyPlans(Catalog(implementations=[IMPL]), box)
    plan = plans.of(connector(box, "ftp://shop.example", "tok"))
    assert plan.base is None and plan.base_refused is not None and "http(s)" in plan.base_refused
    unknown = connector(box, "https://shop.example", "tok").model_copy(
        update={"authentication_implementation_id": "gone"})
    assert plans.of(unknown).impl is None


def test_at_most_kept_plans_are_kept() -> None:
    box = SecretBox(generate_key())
    plans = ProxyPlans(Catalog(implementations=[IMPL]), box, kept=2)
    records = [connector(box, f"https://{i}.example", "tok") for i in range(3)]
    first = plans.of(records[0])
    for record in records[1:]:
        plans.of(record)
    assert plans.of(records[0]) is not first and plans.of(records[0]) == first
