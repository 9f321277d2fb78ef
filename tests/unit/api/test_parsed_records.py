"""``api/parsed_records.py``: a connector's stored JSON is parsed once and the record shared
while the bytes stay the same; changed bytes are a new record; at most ``kept`` are kept; and a
shared record cannot be changed in place (``Connector`` is frozen)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.parsed_records import ParsedConnectors
from tasks.model.records import Connector, RateLimit, new_id, utcnow


def stored(name: str) -> bytes:
    now = utcnow()
    return Connector(id=new_id("con"), tenant="acme", name=name, authentication_implementation_id="impl", type="basic",
                     system="S", timezone="UTC", date_format="Y-m-d", rate_limit=RateLimit(unit="second", duration=5),
                     created_at=now, updated_at=now).model_dump_json().encode()


def test_the_same_bytes_are_one_record_and_changed_bytes_a_new_one() -> None:
    parse = ParsedConnectors(kept=2)
    first = stored("one")
    record = parse(first)
    assert parse(bytes(first)) is record  # equal bytes from another read: the kept record
    changed = parse(first.replace(b'"one"', b'"two"'))
    assert changed is not record and changed.name == "two" and record.name == "one"


def test_at_most_kept_records_are_kept() -> None:
    parse = ParsedConnectors(kept=2)
    raws = [stored(str(i)) for i in range(3)]
    records = [parse(raw) for raw in raws]
    assert parse(raws[2]) is records[2] and parse(raws[1]) is records[1]
    assert parse(raws[0]) is not records[0]  # forgotten, parsed again
    assert parse(raws[0]) == records[0]


def test_a_shared_record_cannot_be_changed_in_place() -> None:
    record = ParsedConnectors()(stored("one"))
    with pytest.raises(ValidationError):
        record.status = "failed"  # type: ignore[misc]
    assert record.model_copy(update={"status": "failed"}).status == "failed"


def test_the_latest_read_of_each_connector_is_kept_with_its_jsons_sha1() -> None:
    import hashlib

    parse = ParsedConnectors(kept=2)
    first = stored("one")
    record = parse(first)
    assert parse.latest("acme", record.id) == (record, hashlib.sha1(first).hexdigest())
    assert parse.latest("other-tenant", record.id) is None  # by the record's own tenant
    changed = first.replace(b'"one"', b'"two"')
    newer = parse(changed)
    assert parse.latest("acme", record.id) == (newer, hashlib.sha1(changed).hexdigest())
    parse(first)  # an older read coming back later is the latest read
    assert parse.latest("acme", record.id) == (record, hashlib.sha1(first).hexdigest())
    others = [parse(stored(str(i))) for i in range(2)]
    assert parse.latest("acme", record.id) is None  # at most kept
    assert parse.latest("acme", others[1].id) is not None
