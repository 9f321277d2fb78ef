"""Jobs run in-process (no Celery): a context on the real Redis, and jobs stored as the API stores them."""

from __future__ import annotations

from tasks.jobs.context import JobContext
from tasks.model.catalog import load_catalog
from tasks.model.records import Job, new_id, utcnow
from tasks.provider.gate import Gate
from tasks.provider.transport import Outbound
from tasks.security.sealing import SecretBox, generate_key
from tasks.storage import schema
from tasks.storage.store import Store
from tasks.validation.submission import validate_authorise
from tests.support.helpers import TEST_CATALOG, authorise_body

CHECK_PATH = "/wp-json/wc/v3/system_status"


def make_context(redis_client, *, allow_private: bool = True,  # type: ignore[no-untyped-def]
                 max_attempts: int = 5, gated: bool = False) -> JobContext:
    """``gated``: outbound requests pass the connector's gate (rate limit, pool, a provider's block), as in a worker."""
    outbound = Outbound(5, allow_private=allow_private, gate=Gate(redis_client) if gated else None)
    return JobContext(store=Store(redis_client, job_ttl_seconds=3600), box=SecretBox(generate_key()),
                      catalog=load_catalog(TEST_CATALOG), outbound=outbound, max_attempts=max_attempts)


def queue_job(ctx: JobContext, tenant: str, base_url: str, **job_fields: object) -> Job:
    """Store a job and its sealed submission exactly as the API does before publishing it."""
    body = authorise_body()
    body["variables"][0]["value"] = base_url  # type: ignore[index]
    validated = validate_authorise(body, ctx.catalog, ctx.box).model_dump(exclude_unset=True)
    job = Job(id=new_id("job"), tenant=tenant, type="authorise", connector_id=new_id("con"), created_at=utcnow(),
              **job_fields)  # type: ignore[arg-type]
    ctx.store.redis.set(schema.job(tenant, job.id), job.model_dump_json())
    ctx.store.redis.set(schema.submission(tenant, job.id), ctx.box.seal_json(validated))
    return job
