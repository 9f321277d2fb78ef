"""Logging: one line per event, JSON when not on a terminal, readable when on one.

Call ``configure()`` once at an entrypoint. Fields passed as ``extra={...}`` (job_id,
connector_id, tenant, request_id …) become keys of the line; nothing here reads secrets,
and callers never pass them. Every line still goes through ``redaction.RedactingFilter``:
provider text and tracebacks are scrubbed of anything that looks like a credential.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from tasks.telemetry.log_fields import extras_of
from tasks.telemetry.redaction import RedactingFilter


def _utc_timestamp(created: float, _cache: dict[int, str] = {}) -> str:  # noqa: B006 - the cache
    """``2026-11-28T12:00:00.123Z``; the seconds part is formatted once per second."""
    whole = int(created)
    text = _cache.get(whole)
    if text is None:
        _cache.clear()
        text = _cache[whole] = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{int((created - whole) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": _utc_timestamp(record.created),
            "level": record.levelname.lower(), "logger": record.name, "event": record.getMessage(),
        }
        line.update(extras_of(record))
        if record.exc_text:
            line["exception"] = record.exc_text
        elif record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in extras_of(record).items())
        text = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        text = f"{text}  {extras}" if extras else text
        if record.exc_text:
            text += "\n" + record.exc_text
        elif record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(level: str = "INFO", json_lines: bool | None = None) -> None:
    stream = sys.stderr
    use_json = (not stream.isatty()) if json_lines is None else json_lines
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Fields no formatter here prints, which every record would otherwise look up (the
    # caller's frame, thread and process names): the logging HOWTO's "Optimization".
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
