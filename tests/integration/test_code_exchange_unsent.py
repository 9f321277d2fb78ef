"""An authorization code is spent only when it may have reached the provider.

The exchange is sent at most once (a code used twice revokes the grant), so the job must know
whether a failed exchange went out. A failure before anything was sent — the token host does not
resolve, the guard refuses it, the connection or TLS fails, no permit yet — leaves the code unspent
and the job's next attempt sends it. A provider's 5xx / 429 answer says it did not serve the request:
unspent too. A request that went out and got no usable answer (no answer before the deadline, a cut
connection) may have spent the code: the job fails at once asking for a new authorisation instead of
sending it again.

Both settings of AUTHQ_ALLOW_PRIVATE_NETWORKS are exercised with a name that does not resolve
(``nonexistent.invalid``): through the API and the session's workers (private networks allowed),
and in-process with a context that refuses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from tasks.errors import RetryLater
from tasks.jobs.context import JobContext
from tasks.jobs.runner import run_job
from tasks.model.catalog import load_catalog
from tasks.model.records import Job, new_id, utcnow
from tasks.provider.transport import Outbound
from tasks.security.sealing import SecretBox, generate_key
from tasks.storage import schema, states
from tasks.storage.store import Store
from tasks.validation.submission import validate_authorise
from tests.support.helpers import REDIRECT_URI, TEST_CATALOG, Tenant
from tests.support.oauth_helpers import CALLBACK, consent, oauth_body, pkce_client, query_of, start
from tests.support.oauth_server import OAuthServer
from tests.support.raw_servers import raw_server

UNRESOLVABLE = "https://nonexistent.invalid"


# --- through the API and the session's workers (private networks allowed) ------------------

async def wait_for(client: Any, tenant: Tenant, job_id: str, done: Any, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = await client.get(f"/api/v1/jobs/{job_id}", headers=tenant.headers)
        job = (await answer.json())["data"]
        if done(job):
            return job  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"job {job_id} did not get there: {job}"
        await asyncio.sleep(0.1)


async def test_an_unresolvable_token_host_leaves_the_code_unspent(client, tenant, workers, redis_client):  # type: ignore[no-untyped-def]
    job = await start(client, tenant, oauth_body(UNRESOLVABLE, client_id="acme-unresolvable"))
    state = query_of(job["result"]["next_action"]["url"])["state"]
    answer = await client.post(CALLBACK, json={"state": state, "code": "code-never-sent"}, headers=tenant.headers)
    assert answer.status == 202, await answer.text()
    job_id = (await answer.json())["data"]["id"]
    second = await wait_for(client, tenant, job_id, lambda j: j["attempts"] >= 2 and j["error"] is not None)
    assert second["error"]["code"] == "provider_unreachable", second
    assert "does not resolve" in second["error"]["message"]
    assert redis_client.get(states.exchange_key(state)) is None, "a code that was never sent is marked spent"


# --- in-process, with a context that refuses private networks -------------------------------

def make_context(redis_client: redis.Redis, outbound: Outbound) -> JobContext:
    return JobContext(store=Store(redis_client, job_ttl_seconds=3600), box=SecretBox(generate_key()),
                      catalog=load_catalog(TEST_CATALOG), outbound=outbound, redirect_uri=REDIRECT_URI)


def stored_job(ctx: JobContext, tenant: str, job_type: str, connector_id: str, request: dict[str, Any]) -> Job:
    """Store a job and its sealed request as the API does before queueing it."""
    job = Job(id=new_id("job"), tenant=tenant, type=job_type, connector_id=connector_id,  # type: ignore[arg-type]
              created_at=utcnow())
    ctx.store.redis.set(schema.job(tenant, job.id), job.stored_json())
    ctx.store.redis.set(schema.submission(tenant, job.id), ctx.box.seal_json(request))
    return job


def authorise(ctx: JobContext, tenant: str, base_url: str, client_id: str) -> str:
    """Run an authorise job; the authorize URL it answered."""
    body = validate_authorise(oauth_body(base_url, client_id=client_id), ctx.catalog, ctx.box)
    job = stored_job(ctx, tenant, "authorise", new_id("con"), body.model_dump(exclude_unset=True))
    ended = run_job(ctx, tenant, job.id)
    assert ended is not None and ended.status == "succeeded", ended
    return str(ended.result["next_action"]["url"])  # type: ignore[index]


def callback(ctx: JobContext, tenant: str, params: dict[str, str]) -> Job:
    """What the callback endpoint does: claim the state for a new authenticate job, store it."""
    state = states.load(ctx.store.redis, params["state"])
    assert state is not None
    job = stored_job(ctx, tenant, "authenticate", state.connector_id, params)
    assert ctx.store.run(states.claim_state(params["state"], state, job.id))  # as the API claims it
    return job


def attempt(ctx: JobContext, tenant: str, job: Job) -> Job:
    """One run of the job, as a worker would make it; the job as stored afterwards."""
    with contextlib.suppress(RetryLater):
        run_job(ctx, tenant, job.id)
    stored = ctx.store.job(tenant, job.id)
    assert stored is not None
    return stored


def test_an_unresolvable_token_host_leaves_the_code_unspent_with_private_networks_refused(
        redis_client: redis.Redis, tenant: Tenant) -> None:
    ctx = make_context(redis_client, Outbound(5, allow_private=False))
    state = query_of(authorise(ctx, tenant.name, UNRESOLVABLE, "acme-refused"))["state"]
    job = callback(ctx, tenant.name, {"state": state, "code": "code-never-sent"})
    for number in (1, 2):
        seen = attempt(ctx, tenant.name, job)
        assert (seen.status, seen.attempts) == ("retrying", number), seen
        assert seen.error is not None and seen.error["code"] == "provider_unreachable", seen.error
        assert redis_client.get(states.exchange_key(state)) is None, "a code that was never sent is marked spent"


def test_the_retry_exchanges_a_code_whose_first_attempt_did_not_resolve(
        redis_client: redis.Redis, tenant: Tenant, fresh_oauth: OAuthServer, test_ca: Any, ca_bundle: Path) -> None:
    port = urlsplit(fresh_oauth.https_url).port  # its certificate names 127.0.0.1 and localhost
    lookups: list[str] = []

    def resolve(host: str, port_: int) -> list[str]:
        """The token host's DNS is down at first, then answers the OAuth server's address."""
        lookups.append(host)
        if len(lookups) == 1:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return ["127.0.0.1"]

    def only_the_oauth_server(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port_: int) -> bool:
        return str(ip) == "127.0.0.1" and port_ == port

    ctx = make_context(redis_client, Outbound(5, allow_private=False, ca_bundle=ca_bundle, allow=only_the_oauth_server,
                                              resolve=resolve))
    cid = pkce_client(fresh_oauth)
    authorize_url = authorise(ctx, tenant.name, f"https://localhost:{port}", cid)
    params = consent(urlunsplit(urlsplit(authorize_url)._replace(netloc=f"127.0.0.1:{port}")), test_ca)
    job = callback(ctx, tenant.name, {"state": params["state"], "code": params["code"]})

    first = attempt(ctx, tenant.name, job)
    assert first.status == "retrying" and first.error is not None and first.error["code"] == "provider_unreachable"
    assert fresh_oauth.count("/token") == 0
    second = attempt(ctx, tenant.name, job)
    assert second.status == "succeeded", second.error
    assert lookups == ["localhost", "localhost"]
    (exchange,) = fresh_oauth.records("/token")
    assert exchange.status == 200 and exchange.form["code"] == params["code"]
    connector = ctx.store.connector(tenant.name, str(second.connector_id))
    assert connector is not None and connector.status == "authorised"


@pytest.mark.parametrize("behaviour", ["trickle_head", "trickle_body"])
def test_an_exchange_that_went_out_unanswered_spends_the_code(
        redis_client: redis.Redis, tenant: Tenant, behaviour: str) -> None:
    with raw_server(behaviour=behaviour, interval=0.3) as token_endpoint:
        ctx = make_context(redis_client, Outbound(1, allow_private=True))
        state = query_of(authorise(ctx, tenant.name, token_endpoint.url(), "acme-unanswered"))["state"]
        job = callback(ctx, tenant.name, {"state": state, "code": "code-sent-once"})
        ended = attempt(ctx, tenant.name, job)
        assert ended.status == "failed" and ended.error is not None, ended
        assert ended.error["code"] == "provider_unreachable" and ended.error["retryable"] is False
        assert "start the authorisation again" in ended.error["message"]
        assert attempt(ctx, tenant.name, job).status == "failed"
        assert len(token_endpoint.requests) == 1 and "code=code-sent-once" in token_endpoint.requests[0].text
        connector = ctx.store.connector(tenant.name, str(ended.connector_id))
        assert connector is not None and connector.status == "failed"


def test_a_503_from_the_token_endpoint_leaves_the_code_unspent(redis_client: redis.Redis, tenant: Tenant) -> None:
    with raw_server(status=503, body=b'{"error": "temporarily_unavailable"}') as token_endpoint:
        ctx = make_context(redis_client, Outbound(5, allow_private=True))
        state = query_of(authorise(ctx, tenant.name, token_endpoint.url(), "acme-503"))["state"]
        job = callback(ctx, tenant.name, {"state": state, "code": "code-declined"})
        seen = attempt(ctx, tenant.name, job)
        assert seen.status == "retrying" and seen.error is not None and seen.error["code"] == "provider_unreachable"
        assert redis_client.get(states.exchange_key(state)) is None
