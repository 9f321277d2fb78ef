"""``authq secrets rotate``: re-seal every secret at rest under the newest key.

What holds ciphertext, and how (``tasks/storage/schema.py`` has the key shapes):

- connectors, certificates, webhook endpoints and authorization states are JSON records whose secrets are the
  string fields named ``*_sealed``, at any depth (a state's ``candidate`` is a connector,
  with its own ``variables[].value_sealed`` and ``credentials_sealed``);
- a job's submission, and the key check (``key_check.py``), are one sealed string each.

Keys are found with ``SCAN`` (a ``MATCH`` per kind, in batches, never ``KEYS``) and read a
batch at a time; a record with something to re-seal is then rewritten on its own, under
``WATCH``/``MULTI``: if a job or the API writes it meanwhile the transaction fails and the
record is read and re-sealed again, so no concurrent update is lost. ``SET ... KEEPTTL``
keeps each key's expiry. A value that no configured key opens is reported and left exactly
as it is. A value already sealed under the newest key is left alone, so a second run (or
an interrupted run started again) rewrites nothing it does not have to.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from cryptography.fernet import InvalidToken

from tasks.security.sealing import SecretBox
from tasks.storage import schema

SEALED_SUFFIX = "_sealed"
SCAN_BATCH = 500          # SCAN COUNT hint, and so the size of each MGET
WRITE_ATTEMPTS = 5        # a record that changes under us this many times in a row is reported
PROGRESS_EVERY = 1000     # records between two progress reports
MAX_LISTED = 50           # unopenable values listed by name (all of them are counted)


@dataclass(frozen=True)
class Kind:
    """One kind of record holding ciphertext: its keys' shape (or its one key), and how it holds it."""

    name: str
    shape: schema.Shape | str   # a key shape, or the name of the one key of its kind
    whole: bool                 # the value is one sealed string (else JSON with *_sealed fields)

    @property
    def match(self) -> str:
        """SCAN MATCH glob (or the one key)."""
        return self.shape if isinstance(self.shape, str) else self.shape.pattern()

    def holds(self, key: str) -> bool:
        """Whether ``key`` is of this kind (the glob also matches neighbouring keys)."""
        return key == self.shape if isinstance(self.shape, str) else self.shape.parse(key) is not None


KINDS: tuple[Kind, ...] = (
    Kind("connector", schema.connector, False),
    Kind("certificate", schema.certificate, False),
    Kind("submission", schema.submission, True),
    Kind("state", schema.auth_state, False),
    Kind("webhook", schema.webhook, False),          # its signing secret (secret_sealed)
    Kind("key-check", schema.KEY_CHECK, True),
)


@dataclass(frozen=True)
class Unopenable:
    """A stored value that no configured key opens."""

    key: str
    field: str                    # "" for a value that is one sealed string, else its JSON path
    sealed_at: datetime | None    # when it was sealed (Fernet tokens carry it in the clear)
    reason: str = "no configured key opens it"

    def describe(self) -> str:
        where = f"{self.key} {self.field}".strip()
        when = f", sealed {self.sealed_at.isoformat(timespec='seconds')}" if self.sealed_at else ""
        return f"{where}: {self.reason}{when}"


@dataclass
class RotationReport:
    records_scanned: int = 0
    records_rotated: int = 0      # written back with every value it could open re-sealed
    records_unchanged: int = 0    # nothing to do: everything already under the newest key (or nothing sealed)
    records_gone: int = 0         # deleted or expired between the scan and the write
    records_failed: int = 0       # hold at least one value no key opens (left as they are)
    fields_rotated: int = 0
    fields_current: int = 0
    fields_failed: int = 0
    failures: list[Unopenable] = field(default_factory=list)   # the first MAX_LISTED
    conflicts: list[str] = field(default_factory=list)        # kept changing: not rotated
    scanned_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.fields_failed and not self.conflicts

    @property
    def oldest_failure(self) -> datetime | None:
        moments = [f.sealed_at for f in self.failures if f.sealed_at]
        return min(moments) if moments else None

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in self.scanned_by_kind.items() if n)
        return (f"{self.records_scanned} records checked ({kinds or 'none'}): {self.records_rotated} rewritten, "
                f"{self.records_unchanged} already current, {self.records_failed} holding values no key opens, "
                f"{self.records_gone} gone meanwhile; "
                f"{self.fields_rotated} secrets re-sealed, {self.fields_current} already under the newest key, "
                f"{self.fields_failed} that no key opens, {len(self.conflicts)} records that kept changing")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def sealed_at(token: str) -> datetime | None:
    """The time inside a Fernet token (readable without the key), or None if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    if len(raw) < 9 or raw[0] != 0x80:
        return None
    return datetime.fromtimestamp(int.from_bytes(raw[1:9], "big"), UTC)


def sealed_fields(node: Any, path: str = "") -> Iterator[tuple[Any, str | int, str]]:
    """Every ``*_sealed`` string in a JSON document: (container, index in it, path)."""
    if isinstance(node, dict):
        for name, value in node.items():
            here = f"{path}.{name}" if path else name
            if isinstance(value, str) and name.endswith(SEALED_SUFFIX):
                yield node, name, here
            elif isinstance(value, (dict, list)):
                yield from sealed_fields(value, here)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, (dict, list)):
                yield from sealed_fields(value, f"{path}[{index}]")


def sealed_values(kind: Kind, raw: bytes | str) -> list[tuple[str, str]]:
    """(path, sealed) for every sealed value of a stored record (for probing a key)."""
    try:
        text = _text(raw)
        if kind.whole:
            return [("", text)] if text else []
        doc = json.loads(text)
    except ValueError:   # UnicodeDecodeError included: not one of ours
        return []
    return [(path, container[index]) for container, index, path in sealed_fields(doc) if container[index]]


@dataclass
class _Plan:
    """What re-sealing one stored value comes to."""

    new_raw: str | None = None    # the value to write, when anything was re-sealed
    gone: bool = False            # the key no longer exists
    rotated: int = 0
    current: int = 0
    failed: list[Unopenable] = field(default_factory=list)


def _reseal(box: SecretBox, sealed: str) -> tuple[str | None, bool]:
    """(new token, opened): None when already current; (None, False) when no key opens it."""
    if box.is_current(sealed):
        return None, True
    try:
        return box.rotate(sealed), True
    except InvalidToken:
        return None, False


def _plan(kind: Kind, key: str, raw: bytes | str, box: SecretBox) -> _Plan:
    plan = _Plan()
    try:
        text = _text(raw)
    except UnicodeDecodeError:
        plan.failed.append(Unopenable(key, "", None, "not text: left as it is"))
        return plan
    if kind.whole:
        if not text:
            return plan
        new, opened = _reseal(box, text)
        if not opened:
            plan.failed.append(Unopenable(key, "", sealed_at(text)))
        elif new is None:
            plan.current += 1
        else:
            plan.rotated += 1
            plan.new_raw = new
        return plan
    try:
        doc = json.loads(text)
    except ValueError:
        plan.failed.append(Unopenable(key, "", None, "not JSON: left as it is"))
        return plan
    for container, index, path in list(sealed_fields(doc)):
        sealed = container[index]
        if not sealed:
            continue
        new, opened = _reseal(box, sealed)
        if not opened:
            plan.failed.append(Unopenable(key, path, sealed_at(sealed)))
        elif new is None:
            plan.current += 1
        else:
            plan.rotated += 1
            container[index] = new
    if plan.rotated:
        plan.new_raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return plan


def _rewrite(client: redis.Redis, kind: Kind, key: str, box: SecretBox) -> _Plan | None:
    """Re-read ``key`` under WATCH and write it re-sealed; None if it kept changing under us."""
    for _ in range(WRITE_ATTEMPTS):
        with client.pipeline() as pipe:
            try:
                pipe.watch(key)  # type: ignore[no-untyped-call]
                raw = pipe.get(key)
                if raw is None:
                    return _Plan(gone=True)
                plan = _plan(kind, key, raw, box)
                if plan.new_raw is None:
                    return plan
                pipe.multi()
                pipe.set(key, plan.new_raw, keepttl=True)
                pipe.execute()
                return plan
            except redis.WatchError:
                continue   # written meanwhile: read the new value and re-seal that
    return None


def scan_keys(client: redis.Redis, kind: Kind, batch: int = SCAN_BATCH) -> Iterator[list[str]]:
    """The keys of one kind, a SCAN batch at a time (string keys of the exact shape only)."""
    if isinstance(kind.shape, str):   # one known key: no need to scan for it
        if client.type(kind.shape) in (b"string", "string"):
            yield [kind.shape]
        return
    cursor = 0
    while True:
        cursor, names = client.scan(cursor, match=kind.match, count=batch, _type="STRING")
        found = [name for name in map(_text, names) if kind.holds(name)]
        if found:
            yield found
        if int(cursor) == 0:
            return


def rotate_secrets(client: redis.Redis, box: SecretBox,
                   progress: Callable[[RotationReport], None] | None = None, *,
                   progress_every: int = PROGRESS_EVERY, batch: int = SCAN_BATCH) -> RotationReport:
    """Re-seal every sealed value in Redis under ``box``'s newest key; see the module doc."""
    report = RotationReport()
    next_progress = progress_every

    def count(plan: _Plan) -> None:
        report.fields_rotated += plan.rotated
        report.fields_current += plan.current
        report.fields_failed += len(plan.failed)
        if plan.failed:
            report.records_failed += 1
            report.failures.extend(plan.failed[: max(0, MAX_LISTED - len(report.failures))])

    for kind in KINDS:
        report.scanned_by_kind.setdefault(kind.name, 0)
        for names in scan_keys(client, kind, batch):
            for key, raw in zip(names, client.mget(names), strict=True):
                report.records_scanned += 1
                report.scanned_by_kind[kind.name] += 1
                plan = _Plan(gone=True) if raw is None else _plan(kind, key, raw, box)
                if plan.new_raw is not None:    # something to re-seal: do it atomically
                    fresh = _rewrite(client, kind, key, box)
                    if fresh is None:
                        report.conflicts.append(key)
                        continue
                    plan = fresh
                if plan.gone:
                    report.records_gone += 1
                    continue
                if plan.new_raw is not None:
                    report.records_rotated += 1
                elif not plan.failed:
                    report.records_unchanged += 1
                count(plan)
            if progress is not None and report.records_scanned >= next_progress:
                next_progress = report.records_scanned + progress_every
                progress(report)
    return report
