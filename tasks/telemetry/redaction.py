"""Masking of credential-looking text in whatever authq did not write itself.

Provider answers (an OAuth ``error_description``, an exception message) and tracebacks
can carry tokens: ``scrub()`` replaces what looks like one with ``[REDACTED]`` and leaves
the rest of the text readable. It is a safety net, not a licence: authq never passes a
secret to a log on purpose. ``RedactingFilter`` applies it to every log record a handler
emits (``tasks.telemetry.logs.configure()`` installs it).
"""

from __future__ import annotations

import logging
import re

from tasks.telemetry.log_fields import extras_of

MASK = "[REDACTED]"

# Names whose value is a credential, in a query string / form (name=value), JSON ("name": "value")
# or a Python repr ('name': 'value').
_NAMES = (r"access_token|refresh_token|id_token|client_secret|code|code_verifier|consumer_secret|"
          r"password|passphrase|secret_key|api_key|token")
_ASSIGNED = re.compile(rf"(?i)(?<![A-Za-z0-9_])({_NAMES})(=)([^&\s\"',;)\]}}]+)")
_QUOTED = re.compile(rf"(?i)([\"'])({_NAMES})\1(\s*:\s*)([\"'])(.*?)(?<!\\)\4")
# Authorization header values.
_SCHEME = re.compile(r"(?i)\b(Bearer|Basic)(\s+)[A-Za-z0-9._~+/=-]{6,}")
# user:password@ in a URL.
_USERINFO = re.compile(r"(://[^/\s:@]*:)[^/\s@]+@")
# JWT-like: three base64url segments separated by dots (eyJ… is a JSON header).
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*|"
                  r"(?<![A-Za-z0-9_.-])[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}(?![A-Za-z0-9_.-])")
# WooCommerce consumer keys and secrets.
_WOO = re.compile(r"(?<![A-Za-z0-9_])(?:ck|cs)_[A-Za-z0-9_]{4,}")
# Long, high-entropy runs: 32+ of [A-Za-z0-9_-] holding letters and digits.
_LONG = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{32,}(?![A-Za-z0-9_-])")
# authq's own ids (a type prefix and 128 random bits) and UUIDs (Celery task ids) identify,
# they don't authenticate.
_AUTHQ_ID = re.compile(r"[a-z]{2,8}_[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# What every pattern above needs somewhere in the text: '=' (assigned), ':' (quoted, user
# info), '@', a scheme name, a JWT/Woo prefix, or a run of 16+ token characters. Text with
# none of these (most log lines: "job accepted") is returned after one search, not seven.
_ANY = re.compile(r"(?i)[=:@]|bearer|basic|eyJ|c[ks]_|[A-Za-z0-9_-]{16,}")
# Extras that are ids by contract: logged as they are, so lines stay traceable.
ID_FIELDS = frozenset({"job_id", "connector_id", "request_id", "tenant", "certificate_id", "task_id"})


def _long(match: re.Match[str]) -> str:
    text = match.group(0)
    if _AUTHQ_ID.fullmatch(text) or not (re.search(r"[0-9]", text) and re.search(r"[A-Za-z]", text)):
        return text
    return MASK


def scrub(text: str) -> str:
    """``text`` with every credential-looking substring replaced by ``[REDACTED]``."""
    if not text or not _ANY.search(text):
        return text
    text = _SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _QUOTED.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(1)}{m.group(3)}{m.group(4)}{MASK}{m.group(4)}",
                       text)
    text = _ASSIGNED.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _JWT.sub(MASK, text)
    text = _WOO.sub(MASK, text)
    return _LONG.sub(_long, text)


def scrub_optional(text: str | None) -> str | None:
    return scrub(text) if isinstance(text, str) else text


_PLAIN = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Scrubs a record's message, its formatted exception and stack, and its string extras.

    The record is changed only where something was masked (its ``exc_text`` is filled in, so
    formatters print the scrubbed traceback instead of formatting ``exc_info`` again).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _PLAIN.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        for key, value in extras_of(record).items():
            if isinstance(value, str) and key not in ID_FIELDS:
                cleaned = scrub(value)
                if cleaned != value:
                    setattr(record, key, cleaned)
        return True

