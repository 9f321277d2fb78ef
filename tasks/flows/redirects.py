"""Flows that need the end user: the job answers a redirect and leaves a single-use state.

Authorization code: the redirect goes to the provider's authorize URL (state + PKCE S256).
OAuth 1.0a: a request token is fetched first (with ``oauth_callback``); the redirect carries it,
and it is the state (its secret sealed beside it).
WooCommerce app auth: it goes to ``{store_url}/wc-auth/v1/authorize`` with ``user_id`` set
to the state. The connector stays ``pending`` (or, for a reauthorise, unchanged: the new
settings wait in the state until the callback's job replaces the connector in one step).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from tasks.flows.oauth1 import authorize_redirect, fetch_request_token
from tasks.flows.oauth2 import authorize_url, new_code_verifier
from tasks.jobs.context import JobContext
from tasks.model.catalog import Implementation
from tasks.model.records import Connector, Job
from tasks.provider.guard import render_url
from tasks.storage import states
from tasks.validation.variables import plain_values

WOO_AUTHORIZE = "{{store_url}}/wc-auth/v1/authorize"


def _return_url(ctx: JobContext, connector: Connector) -> str | None:
    if not connector.session_id:
        return None
    session = ctx.store.session(connector.tenant, connector.session_id)
    return session.return_url if session else None


def begin(ctx: JobContext, job: Job, connector: Connector, impl: Implementation, *,
          candidate: bool) -> dict[str, Any]:
    """Issue the state and answer the ``next_action`` redirect."""
    raw = states.new_state()
    sealed_secret = None
    if impl.type == "oauth1":
        raw, secret = fetch_request_token(ctx, connector, impl)
        sealed_secret = ctx.box.seal(secret)
    common = {"tenant": job.tenant, "connector_id": connector.id, "job_id": job.id,
              "implementation_id": impl.id, "return_url": _return_url(ctx, connector),
              "session_id": connector.session_id,
              "candidate": connector.model_dump(mode="json") if candidate else None,
              "credential_version": connector.credential_version}
    if impl.type == "oauth2_authorization_code":
        verifier = new_code_verifier() if impl.pkce else None
        values = plain_values(connector.variables, ctx.box)
        state = states.make_state(
            "oauth", code_verifier_sealed=ctx.box.seal(verifier) if verifier else None,
            redirect_uri=ctx.redirect_uri, issuer=render_url(impl.issuer, values) if impl.issuer else None, **common)
        url = authorize_url(ctx, connector, impl, raw, verifier)
    elif impl.type == "oauth1":
        state = states.make_state("oauth1", request_token_secret_sealed=sealed_secret,
                                  redirect_uri=ctx.redirect_uri, **common)
        url = authorize_redirect(impl, connector, ctx, raw)
    else:
        store_url = render_url(WOO_AUTHORIZE, plain_values(connector.variables, ctx.box))
        state = states.make_state("woo", **common)
        landing = f"{ctx.public_url}/api/v1/oauth/woo-app-auth"
        url = store_url + "?" + urlencode({
            "app_name": connector.name, "scope": impl.scope, "user_id": raw,
            "return_url": state.return_url or landing, "callback_url": landing,
        })
    states.issue(ctx.store.redis, raw, state)
    return {"type": "redirect", "url": url}
