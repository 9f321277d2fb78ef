"""The audit log's storage (``tasks/storage/audit.py``) and the API keys' (``api_keys.py``),
against a real Redis: an event lands with the change it records or not at all, in a batch, a
transaction or a pipeline; pages are newest first and filtered from their own sets; 90 days
are kept; a key's creation and revocation are audited, and its last use is noted at most once
a minute."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis

from tasks.errors import NotFound
from tasks.model.api_keys import ApiKey, static_key_id
from tasks.model.audit import Actor, AuditEvent
from tasks.model.records import new_id, utcnow
from tasks.storage import api_keys, audit, commands, schema
from tasks.storage.batch import Batch
from tasks.storage.steps import Script, Transaction
from tasks.storage.store import run

ALICE = Actor(api_key_id="key_" + "a" * 32, ip="192.0.2.7")


def event(type_: str = "connector.created", connector_id: str | None = None, ago: timedelta = timedelta(0),
          **details: str) -> AuditEvent:
    made = AuditEvent.new(type_, ALICE, connector_id, **details)  # type: ignore[arg-type]
    return made.model_copy(update={"at": made.at - ago})


def page(db: redis.Redis, tenant: str, number: int = 1, per_page: int = 15, connector_id: str | None = None,
         type_: str | None = None) -> tuple[list[str], int]:
    found, total = run(db, audit.events(tenant, number, per_page, connector_id, type_))  # type: ignore[arg-type]
    return [e.id for e in found], total


def test_an_event_is_written_by_a_batch_a_transaction_and_a_pipeline_and_reads_back_whole(db: redis.Redis) -> None:
    con = new_id("con")
    written = [event("connector.created", con, job_id="job_1", status="pending"),
               event("connector.deleted", con), event("api_key.created", None, api_key_id="key_x")]
    batch = Batch()
    audit.record(batch, "acme", written[0])
    assert run(db, batch.op())
    tx = Transaction()
    audit.record(tx, "acme", written[1])
    run(db, iter_step(tx))
    with db.pipeline() as pipe:
        audit.record(pipe, "acme", written[2])
        pipe.execute()
    found, total = run(db, audit.events("acme", 1, 15))
    assert total == 3 and found == sorted(written, key=lambda e: e.id, reverse=True)   # newest first, whole
    assert found[-1].view() == {"id": written[0].id, "type": "connector.created", "at": found[-1].view()["at"],
                                "actor": {"api_key_id": ALICE.api_key_id, "ip": "192.0.2.7"},
                                "connector_id": con, "details": {"job_id": "job_1", "status": "pending"}}
    assert found[-1].view()["at"].endswith("Z")
    assert run(db, audit.events("other", 1, 15)) == ([], 0)   # another tenant's log is its own


def iter_step(step: Transaction | Script):  # type: ignore[no-untyped-def]
    yield step


def test_the_script_form_writes_what_record_writes(db: redis.Redis) -> None:
    """``recorded`` (one EVALSHA: what the API sends for a credentials read) stores the event in
    the same three sets, trims what is older than 90 days and sets their expiry, as ``record``."""
    con = new_id("con")
    old, read = event("credentials.read", con, ago=timedelta(days=91), type="bearer"), event("credentials.read", con,
                                                                                             type="bearer")
    db.zadd(schema.audit_events("acme"), {old.stored(): round(old.at.timestamp() * 1000)})  # in the log before
    run(db, iter_step(audit.recorded("acme", read)))
    assert page(db, "acme") == ([read.id], 1)  # the old one trimmed by this write
    assert page(db, "acme", connector_id=con) == ([read.id], 1)
    assert page(db, "acme", type_="credentials.read") == ([read.id], 1)
    for key in (schema.audit_events("acme"), schema.audit_by_connector("acme", con),
                schema.audit_by_type("acme", "credentials.read")):
        assert db.zcard(key) == 1 and db.ttl(key) > audit.KEPT_SECONDS - 60
    found, _ = run(db, audit.events("acme", 1, 15))
    assert found == [read]


def test_a_batch_whose_guard_fails_writes_no_event(db: redis.Redis) -> None:
    batch = Batch()
    batch.expect_present("authq:t:acme:connector:con_missing")
    audit.record(batch, "acme", event())
    assert run(db, batch.op()) is False
    assert run(db, audit.events("acme", 1, 15)) == ([], 0)


def test_pages_are_newest_first_and_filters_read_their_own_sets(db: redis.Redis) -> None:
    one, two = new_id("con"), new_id("con")
    made = []
    for i in range(7):
        made.append(event("connector.refreshed" if i % 2 else "connector.created", one if i < 5 else two,
                          ago=timedelta(seconds=70 - i * 10)))
    for e in made:
        batch = Batch()
        audit.record(batch, "acme", e)
        run(db, batch.op())
    newest = [e.id for e in reversed(made)]
    assert page(db, "acme", 1, 3) == (newest[:3], 7)
    assert page(db, "acme", 3, 3) == (newest[6:], 7)
    assert page(db, "acme", 4, 3) == ([], 7)
    assert page(db, "acme", connector_id=two) == ([made[6].id, made[5].id], 2)
    assert page(db, "acme", type_="connector.refreshed") == ([made[5].id, made[3].id, made[1].id], 3)
    assert page(db, "acme", connector_id=one, type_="connector.refreshed") == ([made[3].id, made[1].id], 2)
    assert page(db, "acme", 2, 1, connector_id=one, type_="connector.refreshed") == ([made[1].id], 2)
    assert page(db, "acme", connector_id=new_id("con")) == ([], 0)
    assert db.ttl(schema.audit_by_connector("acme", one)) > audit.KEPT_SECONDS - 60


def test_ninety_days_are_kept(db: redis.Redis) -> None:
    old, recent = event(ago=timedelta(days=91)), event(ago=timedelta(days=89))
    for e in (old, recent):  # the recent one's write trims the old one
        batch = Batch()
        audit.record(batch, "acme", e)
        run(db, batch.op())
    assert page(db, "acme") == ([recent.id], 1)
    assert db.zcard(schema.audit_events("acme")) == 1


def test_a_connectors_deletion_writes_its_event_only_if_there_was_one(db: redis.Redis) -> None:
    con = new_id("con")
    db.set(schema.connector("acme", con), "{}")
    db.zadd(schema.connectors("acme"), {con: 1})
    deleted = event("connector.deleted", con)
    assert run(db, commands.delete_connector("acme", con, deleted))
    assert not db.exists(schema.connector("acme", con)) and db.zcard(schema.connectors("acme")) == 0
    assert not run(db, commands.delete_connector("acme", con, event("connector.deleted", con)))
    assert page(db, "acme") == ([deleted.id], 1)


def test_a_keys_creation_and_revocation_are_audited_and_a_revoked_key_is_gone(db: redis.Redis) -> None:
    record, raw = api_keys.create_key(db, "acme", ["proxy", "credentials"])
    assert record.id.startswith("key_") and len(record.id) == 36
    stored = run(db, commands.api_key(schema.hash_api_key(raw)))
    assert stored is not None and stored.scopes == ["proxy", "credentials"] and stored.tenant == "acme"
    assert api_keys.revoke_key(db, record.id).id == record.id
    assert run(db, commands.api_key(schema.hash_api_key(raw))) is None
    with pytest.raises(NotFound):
        api_keys.revoke_key(db, record.id)
    found, _ = run(db, audit.events("acme", 1, 15))
    assert [(e.type, e.details) for e in found] == [
        ("api_key.revoked", {"api_key_id": record.id, "scopes": ["proxy", "credentials"]}),
        ("api_key.created", {"api_key_id": record.id, "scopes": ["proxy", "credentials"]})]
    assert all(e.actor == Actor() and raw not in e.stored() for e in found)


def test_keys_are_listed_with_their_last_use_and_never_the_key(db: redis.Redis) -> None:
    first, _ = api_keys.create_key(db, "acme")
    second, _ = api_keys.create_key(db, "beta", ["manage"])
    static = ApiKey(id=static_key_id("aq_static"), tenant="acme", static=True)
    assert run(db, api_keys.touch(first.id, 1_000_000.0))
    listed = api_keys.list_keys(db, [static])
    stored = sorted([first, second], key=lambda k: (k.created_at, k.id))   # (the same millisecond: by id)
    assert [(k.key.id, k.key.scopes) for k in listed] == [(static.id, ["manage", "proxy"])] + [
        (k.id, k.scopes) for k in stored]
    used = {k.key.id: k.last_used_at.timestamp() if k.last_used_at else None for k in listed}
    assert used == {static.id: None, first.id: 1_000_000.0, second.id: None}
    assert [k.key.id for k in api_keys.list_keys(db, [static], tenant="beta")] == [second.id]


def test_a_keys_use_is_noted_at_most_once_a_minute(db: redis.Redis) -> None:
    now = utcnow().timestamp()
    assert run(db, api_keys.touch("key_1", now))
    assert not run(db, api_keys.touch("key_1", now + 59))     # another process, within the minute: no write
    assert float(db.hget(schema.API_KEYS_USED, "key_1") or 0) == pytest.approx(now)
    assert run(db, api_keys.touch("key_1", now + 60))
    assert float(db.hget(schema.API_KEYS_USED, "key_1") or 0) == pytest.approx(now + 60)
