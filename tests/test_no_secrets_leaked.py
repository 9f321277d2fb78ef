"""Redaction (the issue's "must show"): after the suite, neither Redis nor any log holds a secret.

Marked ``runs_last``: the session's ``pytest_collection_modifyitems`` hook (``tests/conftest.py``)
moves it after every other test, whatever its name. It dumps the session Redis (SCAN, then every key by its type)
and reads every log the session wrote (the Celery workers', ``authq up``'s data dirs', and this
process's own logging, the in-process API's), and looks there for every secret the session
registered with ``tests.leakcheck.remember_secret`` - in clear, base64 and URL-encoded.
A failure names the key or file with a masked excerpt, never the secret.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from authq.redis_server import RedisServer
from tests.support.leakcheck import find_leaks, log_files, read_logs, redis_dump, remembered


@pytest.mark.runs_last
def test_no_secret_in_redis_or_logs(redis_server: RedisServer, session_log: Path,
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    secrets = remembered()
    assert secrets, "no secret was registered: the check would prove nothing"
    logs = log_files(tmp_path_factory.getbasetemp())
    assert session_log in logs
    with redis_server.client() as client:
        dump = list(redis_dump(client))
    leaks = find_leaks([*dump, *read_logs(logs)], secrets)
    assert not leaks, (f"{len(leaks)} secret(s) leaked ({len(secrets)} registered, {len(dump)} Redis keys, "
                       f"{len(logs)} log files):\n" + "\n".join(leaks[:50]))
