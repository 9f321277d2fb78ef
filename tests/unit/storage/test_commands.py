"""The store's operations (``tasks/storage/commands.py``), sent by the sync adapter (the
workers' ``Store``) and the asyncio one (the API's ``ApiStore``), against a Redis of their own
(so that its command counts are this test's): either adapter writes the same thing, and the
hot paths keep their round trips (accept: one script call; poll: one GET; a worker's job: a
start script and an end batch)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis
from redis.asyncio import Redis

from api.store import ApiStore
from authq.redis_server import RedisServer
from tasks.model.records import Connector, Job, new_id, utcnow
from tasks.storage import commands, schema
from tasks.storage.store import Store


@pytest.fixture
def store(db: redis.Redis) -> Store:
    return Store(db, job_ttl_seconds=3600)


@pytest.fixture
async def api(own_redis: RedisServer, db: redis.Redis) -> AsyncIterator[ApiStore]:
    client = Redis.from_url(own_redis.url)
    yield ApiStore(client)
    await client.aclose()


def sent(db: redis.Redis) -> Counter[str]:
    """Commands the server has run so far, by name (INFO itself left out). A script's own
    commands are counted too: a round trip is the one EVALSHA, and the rest ran inside it."""
    stats = db.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()
                    if name != "cmdstat_info"})


def new_job(tenant: str) -> Job:
    return Job(id=new_id("job"), tenant=tenant, type="authorise", connector_id=new_id("con"), created_at=utcnow())


def stored(db: redis.Redis, job: Job) -> dict[str, object]:
    """What a created job left in Redis, by kind of key."""
    return {"job": db.get(schema.job(job.tenant, job.id)), "submission": db.get(schema.submission(job.tenant, job.id)),
            "active": db.smembers(schema.active_jobs(job.tenant)), "queue": db.lrange(f"queue-{job.tenant}", 0, -1)}


async def test_a_job_is_created_the_same_way_whichever_side_creates_it(db: redis.Redis, store: Store,
                                                                        api: ApiStore) -> None:
    by_worker, by_api = new_job("worker-side"), new_job("api-side")
    assert store.create_job(by_worker, "sealed", (f"queue-{by_worker.tenant}", "message"), cap=1)
    assert await api.create_job(by_api, by_api.stored_json(), "sealed", (f"queue-{by_api.tenant}", "message"), cap=1)
    for job in (by_worker, by_api):
        assert stored(db, job) == {"job": job.stored_json().encode(), "submission": b"sealed",
                                   "active": {job.id.encode()}, "queue": [b"message"]}
    # The tenant's cap: refused, and nothing written (neither record nor message).
    assert not store.create_job(new_job("worker-side"), "sealed", (f"queue-{by_worker.tenant}", "again"), cap=1)
    refused = new_job("api-side")
    assert not await api.create_job(refused, refused.stored_json(), "sealed", (f"queue-{refused.tenant}", "again"),
                                    cap=1)
    assert db.dbsize() == 8 and db.llen("queue-api-side") == 1   # 4 keys a tenant: no more
    # Without a cap or a message (a worker's own job: a scheduled refresh), the same script.
    before = sent(db)
    assert store.create_job(new_job("worker-side"), "sealed")
    assert (sent(db) - before) == Counter({"evalsha": 1, "set": 2, "sadd": 1})
    assert db.scard(schema.active_jobs("worker-side")) == 2


async def test_the_hot_paths_keep_their_round_trips(db: redis.Redis, store: Store, api: ApiStore) -> None:
    warm = new_job("hot")  # the first call of each pays for the connection and the script's load
    await api.create_job(warm, warm.stored_json(), "sealed", ("queue-hot", "message"), cap=100)
    await api.job_json("hot", warm.id)
    store.save_job(store.start_job("hot", warm.id).job or warm)

    job = new_job("hot")
    before = sent(db)
    assert await api.create_job(job, job.stored_json(), "sealed", ("queue-hot", "message"), cap=100)
    # accept: one script call (the cap's count, the record, its request, the active set, the message)
    assert sent(db) - before == Counter({"evalsha": 1, "scard": 1, "set": 2, "sadd": 1, "lpush": 1})
    before = sent(db)
    assert await api.job_json("hot", job.id) == job.stored_json().encode()
    assert sent(db) - before == Counter({"get": 1})                        # poll: one GET
    before = sent(db)
    start = store.start_job("hot", job.id, schema.job_lease("hot", job.id), "token", 30_000)
    assert start.job is not None and start.sealed == "sealed" and start.starts == 1
    ended = start.job.model_copy(update={"status": "succeeded", "finished_at": utcnow()})
    assert store.save_job(ended, also=lambda batch: batch.release_lease(schema.job_lease("hot", job.id), "token"))
    # a job: the start script (lease, read, count, deferred seconds) and the end batch (record, the
    # sealed request and deferred seconds deleted, the count's expiry, release, notice)
    assert sent(db) - before == Counter({"evalsha": 2, "set": 2, "get": 4, "incr": 1, "expire": 2, "srem": 1,
                                         "publish": 1, "del": 3})
    assert db.exists(schema.submission("hot", job.id)) == 0
    assert db.exists(schema.job_lease("hot", job.id)) == 0 and not db.sismember(schema.active_jobs("hot"), job.id)


async def test_an_id_from_outside_names_no_other_key(db: redis.Redis, store: Store, api: ApiStore) -> None:
    """``GET /jobs/{id}`` with ``job_1:submission`` must not serve the sealed request, nor a
    ``DELETE`` of ``con_1:refresh-lock`` remove a lock: such an id is not any record's."""
    job = new_job("outside")
    store.create_job(job, "sealed request")
    db.set(schema.refresh_lock("outside", "con_1"), "token")
    before = sent(db)
    assert await api.job_json("outside", f"{job.id}:submission") is None
    assert await api.job("outside", f"{job.id}:starts") is None
    assert await api.connector("outside", "con_1:refresh-lock") is None
    assert not await api.delete_connector("outside", "con_1:refresh-lock")
    assert not await api.delete_certificate("outside", f"{job.id}:submission")
    assert store.job("outside", f"{job.id}:submission") is None
    assert sent(db) - before == Counter()                                  # not even asked
    assert db.get(schema.refresh_lock("outside", "con_1")) == b"token"
    assert db.get(schema.submission("outside", job.id)) == b"sealed request"


def connector(tenant: str, version: int = 1) -> Connector:
    now = utcnow()
    return Connector.model_validate({
        "id": "con_cas", "tenant": tenant, "name": "n", "authentication_implementation_id": "impl", "type": "oauth2",
        "system": "s", "timezone": "UTC", "date_format": "Y-m-d", "rate_limit": {"unit": "second", "duration": 1},
        "status": "authorised", "created_at": now, "updated_at": now, "credential_version": version,
        "credentials": {"expires_at": now + timedelta(hours=1)}})


async def test_a_checked_write_behaves_alike_through_either_adapter(db: redis.Redis, store: Store,
                                                                    api: ApiStore) -> None:
    async def through(adapter: str, op):  # type: ignore[no-untyped-def]
        return store.run(op) if adapter == "sync" else await api.run(op)

    for tenant in ("sync", "async"):
        def run(op, adapter: str = tenant):  # type: ignore[no-untyped-def]
            return through(adapter, op)

        assert not await run(commands.replace_connector_if_exists(connector(tenant)))    # nothing to replace
        assert db.exists(schema.connector(tenant, "con_cas")) == 0
        await run(commands.save_connector(connector(tenant, version=1)))
        assert not await run(commands.replace_connector_if(connector(tenant, version=3), expected_version=2))
        assert Connector.model_validate_json(db.get(schema.connector(tenant, "con_cas"))).credential_version == 1
        assert await run(commands.replace_connector_if(connector(tenant, version=2), expected_version=1))
        assert Connector.model_validate_json(db.get(schema.connector(tenant, "con_cas"))).credential_version == 2
        assert await run(commands.replace_connector_if_exists(connector(tenant, version=5)))
        assert db.zscore(schema.refresh_schedule(tenant), "con_cas") is not None
        assert db.zscore(schema.REFRESH_TENANTS, tenant) is not None
        assert db.zrange(schema.connectors(tenant), 0, -1) == [b"con_cas"]


async def test_pages_and_deletes_through_the_api(db: redis.Redis, store: Store, api: ApiStore) -> None:
    for version in range(3):
        store.save_connector(connector("paged", version).model_copy(update={"id": f"con_{version}"}))
    items, total = await api.connectors("paged", 2, 2)
    assert total == 3 and [c.id for c in items] == ["con_2"]
    assert await api.connectors("paged", 9, 2) == ([], 3)
    assert await api.delete_connector("paged", "con_2")
    assert not await api.delete_connector("paged", "con_2")
    assert db.zscore(schema.refresh_schedule("paged"), "con_2") is None
    assert (await api.connectors("paged", 1, 10))[1] == 2
