"""The fields a log record carries beyond the standard ones: what callers passed as ``extra``,
and those of the ``log_context`` it was logged in (a job's ``request_id``, for every line of
its run)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_context: ContextVar[dict[str, object] | None] = ContextVar("authq_log_context", default=None)

# Attributes every LogRecord has: anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def extras_of(record: logging.LogRecord) -> dict[str, object]:
    fields = vars(record)
    extra = fields.keys() - _STANDARD  # a set operation in C: most of a record's ~25 fields are standard
    own = {k: v for k, v in fields.items() if k in extra and not k.startswith("_")}
    context = _context.get()
    return own if not context else {**context, **own}


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Add ``fields`` to every line logged in the block (``None`` values are left out)."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)
