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
from datetime import datetime, timezone

from .redaction import RedactingFilter

# Attributes every LogRecord has: anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def extras_of(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
                    .replace("+00:00", "Z"),
            "level": record.levelname.lower(), "logger": record.name, "event": record.getMessage(),
        }
        line.update(extras_of(record))
        if record.exc_info or record.exc_text:
            line["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in extras_of(record).items())
        text = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        text = f"{text}  {extras}" if extras else text
        if record.exc_info or record.exc_text:
            text += "\n" + (record.exc_text or self.formatException(record.exc_info))
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
