"""Without AUTHQ_DEMO (``authq up`` without ``--demo``) none of the demo exists (contract §13):
its paths answer 404, the catalog has no demo entry, ``GET /`` names no demo, and an authorise
of a demo implementation is a 422 like any unknown one."""

from __future__ import annotations

from tests.support.helpers import authorise_body


async def test_no_demo_paths(client) -> None:  # type: ignore[no-untyped-def]
    for method, path in (("GET", "/demo/"), ("GET", "/demo/oauth/authorize"), ("POST", "/demo/oauth/token"),
                         ("GET", "/demo/shop/wc-auth/v1/authorize"), ("GET", "/demo/api/me")):
        answer = await client.request(method, path)
        assert answer.status == 404, (method, path)


async def test_no_demo_in_the_catalog_or_the_index(client, tenant) -> None:  # type: ignore[no-untyped-def]
    answer = await client.post("/api/v1/oauth/authorise", headers=tenant.headers,
                               json=authorise_body(authentication_implementation_id="demo-basic", variables=[]))
    assert answer.status == 422
    assert "authentication_implementation_id" in (await answer.json())["errors"]
    root = await client.get("/")
    assert root.status == 200 and "demo" not in await root.json()
    page = await client.get("/", headers={"Accept": "text/html"})
    assert "/demo/" not in await page.text() and 'href="/api/docs"' in await page.text()
