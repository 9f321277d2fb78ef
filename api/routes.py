"""URL wiring only."""

from __future__ import annotations

from aiohttp import web

from api.views import certificates, connectors, docs, jobs, oauth, ops, pools, sessions

V1 = "/api/v1"


def setup_routes(app: web.Application) -> None:
    app.add_routes([
        web.post(f"{V1}/oauth/authorise", oauth.authorise),
        web.patch(f"{V1}/oauth/{{connector}}/reauthorise", oauth.reauthorise),
        web.post(f"{V1}/oauth/authenticate", oauth.authenticate),
        web.get(f"{V1}/oauth/authenticate", oauth.authenticate_redirect, allow_head=False),
        web.get(f"{V1}/oauth/authenticate/status", oauth.authenticate_status, allow_head=False),
        web.post(f"{V1}/oauth/woo-app-auth", oauth.woo_app_auth),
        web.get(f"{V1}/oauth/woo-app-auth", oauth.woo_return, allow_head=False),
        web.get(f"{V1}/jobs/{{job}}", jobs.show, allow_head=False),
        web.get(f"{V1}/jobs/{{job}}/events", jobs.events, allow_head=False),
        web.post(f"{V1}/connection-pools", pools.create),
        web.get(f"{V1}/connection-pools", pools.index, allow_head=False),
        web.get(f"{V1}/connection-pools/{{pool}}", pools.show, allow_head=False),
        web.delete(f"{V1}/connection-pools/{{pool}}", pools.delete),
        web.post(f"{V1}/certificates", certificates.create),
        web.get(f"{V1}/certificates", certificates.index, allow_head=False),
        web.get(f"{V1}/certificates/{{certificate}}", certificates.show, allow_head=False),
        web.delete(f"{V1}/certificates/{{certificate}}", certificates.delete),
        web.post(f"{V1}/sessions", sessions.create),
        web.get(f"{V1}/sessions/{{session}}", sessions.show, allow_head=False),
        web.get(f"{V1}/connectors", connectors.index, allow_head=False),
        web.get(f"{V1}/connectors/{{connector}}", connectors.show, allow_head=False),
        web.delete(f"{V1}/connectors/{{connector}}", connectors.delete),
        web.post(f"{V1}/connectors/{{connector}}/refresh", connectors.refresh),
        web.get("/healthz", ops.healthz, allow_head=False),
        web.get("/readyz", ops.readyz, allow_head=False),
        web.get("/metrics", ops.metrics, allow_head=False),
        web.get("/api/openapi.json", docs.openapi_json, allow_head=False),
        web.get("/api/docs", docs.page, allow_head=False),
        web.get("/api/docs/static/{file}", docs.static, allow_head=False),
    ])
