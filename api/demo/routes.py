"""The demo provider's routes, under ``/demo/``; added only with ``AUTHQ_DEMO`` (contract §13).

They are not endpoints of authq's API: no API key, and not in its OpenAPI description."""

from __future__ import annotations

from aiohttp import web

from api.demo import views
from tasks.demo import facts


def setup_demo(app: web.Application) -> None:
    app.cleanup_ctx.append(views.demo_store)
    router = app.router
    # GETs without HEAD twins, as the API's own routes (docs/decisions.md: HEAD is not served).
    router.add_get(f"{facts.PREFIX}/", views.index, allow_head=False)
    router.add_get(facts.AUTHORIZE_PATH, views.authorize, allow_head=False)
    router.add_post(facts.AUTHORIZE_PATH, views.decide)
    router.add_post(facts.TOKEN_PATH, views.token)
    router.add_get(facts.WOO_AUTHORIZE_PATH, views.store_authorize, allow_head=False)
    router.add_post(facts.WOO_AUTHORIZE_PATH, views.store_decide)
    router.add_get(f"{facts.API_PATH}/me", views.me, allow_head=False)
    router.add_get(f"{facts.API_PATH}/orders", views.orders, allow_head=False)
