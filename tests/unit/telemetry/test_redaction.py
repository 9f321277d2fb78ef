"""Redaction: provider text and tracebacks are scrubbed of credential-looking substrings
before they reach a job's error or a log line (tasks/telemetry/redaction.py, tasks/telemetry/logs.py)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from tasks.errors import ProviderError
from tasks.model.records import new_id
from tasks.telemetry.logs import ConsoleFormatter, JsonFormatter, configure
from tasks.telemetry.redaction import MASK, RedactingFilter, scrub
from tests.support.helpers import ROOT
from tests.support.leakcheck import find_leaks, forms

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVlLWhlcmU"
LONG = "Q2hlY2tfdGhpc190b2tlbi0xMjM0NTY3ODkwYWJjZGVm"


@pytest.mark.parametrize(("text", "secret"), [
    ("Authorization: Bearer abcDEF123456789xyz", "abcDEF123456789xyz"),
    ("basic Y2tfZ29vZDpjc19nb29k", "Y2tfZ29vZDpjc19nb29k"),
    ("POST /token grant_type=refresh_token&refresh_token=r-123abc&x=1", "r-123abc"),
    ("GET /cb?code=SplxlOBeZQQYbYS6WxSbIA&state=xyz", "SplxlOBeZQQYbYS6WxSbIA"),
    ("client_secret=s3cr3t-value; next", "s3cr3t-value"),
    ('{"access_token": "tok-9f8e7d", "token_type": "bearer"}', "tok-9f8e7d"),
    ("{'refresh_token': 'rt-0a1b2c'}", "rt-0a1b2c"),
    (f"invalid token {JWT} given", JWT),
    (f"the token {LONG} is not valid", LONG),
    ("keys ck_4f1a2b3c4d5e and cs_9a8b7c6d5e4f", "cs_9a8b7c6d5e4f"),
    ("Connected to redis://:hunter2pass@127.0.0.1:6379/0", "hunter2pass"),  # Celery's own log line
])
def test_scrub_masks_credentials(text: str, secret: str) -> None:
    cleaned = scrub(text)
    assert secret not in cleaned
    assert MASK in cleaned


@pytest.mark.parametrize("text", [
    "The user denied access.",
    "The provider answered the token refresh with HTTP 400.",
    f"job {new_id('job')} of connector {new_id('con')} failed",
    "Task authq.run_job[69af3eb9-20c4-491e-b294-10dedd6fe0d4] received",
    "authentication_implementation_id is not in the catalog",
    "could not reach client-rsa.example.test:8443",
    "error_code=credentials_rejected status=failed",
    "",
])
def test_scrub_leaves_ordinary_text_alone(text: str) -> None:
    assert scrub(text) == text


def test_provider_error_keeps_the_description_but_not_its_tokens() -> None:
    error = ProviderError("The provider refused the token refresh: invalid_grant.", error="invalid_grant",
                          description=f"Refresh token {LONG} was revoked")
    provider = error.as_error()["provider"]
    assert provider["error"] == "invalid_grant"
    assert provider["error_description"] == f"Refresh token {MASK} was revoked"
    assert ProviderError("m", error="e").as_error()["provider"] == {"error": "e", "error_description": None}


def _record(msg: str, *args: object, exc: BaseException | None = None, **extra: object) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    record = logging.LogRecord("authq.jobs", logging.ERROR, __file__, 1, msg, args or None, exc_info)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_filter_scrubs_message_exception_and_extras_but_keeps_ids() -> None:
    job_id = new_id("job")
    try:
        raise RuntimeError(f"provider said: access_token={LONG}")
    except RuntimeError as exc:
        record = _record("refresh failed for %s with Bearer %s", "acme", "abc123DEF456ghi", exc=exc,
                         job_id=job_id, request_id="5cb7198b5418a021cbd01c9a59d9d9ff", detail=f"code={LONG}")
    assert RedactingFilter().filter(record) is True
    for formatter in (JsonFormatter(), ConsoleFormatter()):
        text = formatter.format(record)
        assert LONG not in text and "abc123DEF456ghi" not in text
        assert job_id in text and "RuntimeError" in text and "refresh failed for acme" in text
    line = json.loads(JsonFormatter().format(record))
    assert line["job_id"] == job_id
    assert line["request_id"] == "5cb7198b5418a021cbd01c9a59d9d9ff"  # ids are kept, whatever they look like
    assert line["detail"] == f"code={MASK}"
    assert line["event"] == f"refresh failed for acme with Bearer {MASK}"
    assert f"access_token={MASK}" in line["exception"]


def test_configure_installs_the_filter() -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        configure("INFO", json_lines=True)
        stream = io.StringIO()
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        logging.getLogger("authq.test").warning("token=%s", LONG, extra={"job_id": "job_1"})
        assert LONG not in stream.getvalue() and "job_1" in stream.getvalue()
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def test_leak_check_finds_encoded_secrets_and_never_prints_them() -> None:
    secret = "a-secret-of/some+length"
    import base64
    from urllib.parse import quote

    for hidden in (secret, quote(secret, safe=""), base64.b64encode(b"x" + secret.encode() + b"yz").decode()):
        leaks = find_leaks([("log x", f"line before {hidden} line after")], [secret])
        assert leaks and all(secret not in leak for leak in leaks)
    assert not find_leaks([("log x", "nothing to see")], [secret])
    assert "clear" in forms(secret) and "url-encoded" in forms(secret)


def test_authqs_logging_is_set_up_for_authqs_workers_only() -> None:
    """A Celery worker of another app, in a process that imported ``worker`` (bench/noop.py
    does), keeps Celery's own logging; authq's worker gets authq's (JSON, scrubbed, one
    line per job). Run in a fresh interpreter: Celery's signals are process-wide."""
    import subprocess
    import sys

    script = """
from types import SimpleNamespace
from celery import Celery
from celery.signals import celeryd_init, setup_logging
import worker
other = Celery("other", set_as_current=False)
celeryd_init.send(sender="other@host", instance=SimpleNamespace(app=other), conf=None, options={})
print(len(setup_logging.receivers))
celeryd_init.send(sender="authq@host", instance=SimpleNamespace(app=worker.app), conf=None, options={})
print(len(setup_logging.receivers))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert out == ["0", "1"]
