"""API fuzzing: schemathesis against the service's own ``GET /api/openapi.json``.

The real app (``create_app`` with the real job queue, on the session's real Redis) listens
on a loopback port in a thread of its own; schemathesis loads the document the app serves
and generates requests for every operation it describes, both ones that fit the schemas
(positive) and ones that break them (negative), always with a valid API key.

Every answer must be: not a 5xx; for a 4xx, a JSON object with a string ``message`` (the
contract's error shape); a status code the document declares for that operation.

Hostile inputs schemathesis does not make are sent to every operation of the document too:
malformed ids in every path parameter (a valid id with a Redis key's suffix, other prefixes,
lengths, characters), bodies nested deeper than 32 levels (up to 200,000), two media types
in ``Content-Type``, and repeated ``Content-Type`` header lines (which aiohttp's own parser
answers, 400 in plain text, before the app: not a 5xx, and no traceback logged).

Bounded and reproducible: ``derandomize`` (the same examples every run), a fixed number of
examples per operation and mode, no example database. Jobs the fuzzer creates stay queued
(no workers run here), so no generated ``base_url`` is ever called.
"""

from __future__ import annotations

import http.client
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import redis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import status_code_conformance

from tasks.settings import Settings
from tasks.storage import schema
from tests.support.helpers import Tenant
from tests.support.served_app import serve_in_thread

EXAMPLES_PER_MODE = 20
REQUEST_TIMEOUT = 15.0
FAKE_WORKER = "fuzz-heartbeat@test"
_WAIT = re.compile(r"(wait\s*=\s*)\d+(?:\.\d+)?", re.I)


@pytest.fixture
def api_url(settings: Settings, tenants: tuple[Tenant, Tenant]) -> Iterator[str]:
    from api.app import create_app
    from worker.queues import make_job_queue

    # The fuzzer sends one key's requests as fast as it can make them: its rate limit is raised
    # (not turned off) so every answer is the endpoint's own, not a 429. Its keys have every
    # scope, so every endpoint's own answer is what is fuzzed (tests/api/test_scopes.py has the 403s).
    keys = SecretStr(",".join(f"{t.name}:{t.key}:manage+proxy+credentials" for t in tenants))
    fuzzed = settings.model_copy(update={"api_rate_limit": 1_000_000.0, "api_keys": keys})
    yield from serve_in_thread(create_app(fuzzed, make_job_queue(fuzzed)), "fuzz-api")
    # Webhook endpoints the fuzzer registered have generated URLs: none may outlive the test
    # (the session's workers would deliver to them).
    with redis.Redis.from_url(settings.require_redis_url()) as client:
        for t in tenants:
            client.delete(schema.webhook_subscriptions(t.name), schema.webhook_subscriptions_version(t.name))
        for member in client.zrange(schema.WEBHOOK_DUE, 0, -1):
            if schema.due_parts(member)[0] in {t.name for t in tenants}:
                client.zrem(schema.WEBHOOK_DUE, member)


@pytest.fixture
def worker_heartbeat(redis_client: redis.Redis) -> Iterator[None]:
    """``GET /readyz`` answers 503 when no worker was seen in 30 s, by design. No worker runs
    here (it would call the generated ``base_url``s), so one heartbeat is written as a worker
    writes it (``Store.heartbeat``) and removed after: the test keeps "no 5xx" unconditional."""
    redis_client.zadd(schema.WORKERS, {FAKE_WORKER: time.time() + 120})
    try:
        yield
    finally:
        redis_client.zrem(schema.WORKERS, FAKE_WORKER)


@dataclass
class Stats:
    operations: int = 0
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_mode: Counter[tuple[str, int]] = field(default_factory=Counter)
    per_operation: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    without_negative: list[str] = field(default_factory=list)


def _header(response: schemathesis.Response, name: str) -> str:
    values = response.headers.get(name.lower()) or [""]  # schemathesis: lower-case names, list values
    return values[0]


def _declared_html(operation, status: int) -> bool:
    """The browser-facing callback pages answer errors as HTML pages, and say so in the document."""
    declared = operation.definition.raw.get("responses", {}).get(str(status), {})
    return "text/html" in declared.get("content", {})


def _problems_of(case: schemathesis.Case, response: schemathesis.Response) -> list[str]:
    found = []
    status = response.status_code
    content_type = _header(response, "Content-Type")
    if status >= 500:
        found.append(f"{status} server error: {response.text[:300]}")
    elif status >= 400:
        if _declared_html(case.operation, status):
            if not content_type.startswith("text/html"):
                found.append(f"{status} declared as an HTML page but sent as {content_type!r}")
        else:
            try:
                body = response.json()
            except ValueError:
                body = None
            if not (isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]):
                found.append(f"{status} without a JSON message ({content_type!r}): {response.text[:300]!r}")
    try:
        case.validate_response(response, checks=[status_code_conformance])
    except Exception as exc:  # schemathesis raises a failure group naming the check
        found.append(f"status_code_conformance: {str(exc).strip().splitlines()[0]} ({status})")
    return found


def _fuzz_operation(operation, mode: GenerationMode, base_url: str, session: requests.Session,
                    tenant: Tenant, stats: Stats) -> None:
    @hsettings(max_examples=EXAMPLES_PER_MODE, deadline=None, derandomize=True, database=None,
               phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
               print_blob=False)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        # A generated `Prefer: wait=N` would hold the answer N s for a job no worker runs:
        # keep the header (its parsing is fuzzed) but make any wait zero.
        for name in list(case.headers or {}):
            if name.lower() == "prefer" and isinstance(case.headers[name], str):
                case.headers[name] = _WAIT.sub(r"\g<1>0", case.headers[name])
        response = case.call(base_url=base_url, session=session, headers=tenant.headers, timeout=REQUEST_TIMEOUT)
        stats.requests += 1
        stats.statuses[response.status_code] += 1
        stats.by_mode[(mode.value, response.status_code)] += 1
        stats.per_operation[operation.label] += 1
        for problem in _problems_of(case, response):
            stats.problems.append(f"{operation.label} [{mode.value}] {problem}\n    {case.as_curl_command()}")

    try:
        run()
    except Unsatisfiable:
        # An operation with nothing to break (no parameters, no body: GET /healthz) has no
        # negative cases at all; anywhere else it is a real failure.
        if mode is not GenerationMode.NEGATIVE:
            raise
        stats.without_negative.append(operation.label)


def test_fuzz_every_operation(api_url: str, tenant: Tenant, worker_heartbeat: None) -> None:
    schema = schemathesis.openapi.from_url(f"{api_url}/api/openapi.json", timeout=REQUEST_TIMEOUT)
    stats = Stats()
    started = time.monotonic()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            stats.operations += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz_operation(operation, mode, api_url, session, tenant, stats)
    elapsed = time.monotonic() - started

    print(f"\nfuzzed {stats.operations} operations with {stats.requests} requests in {elapsed:.1f}s; "
          f"statuses: {dict(sorted(stats.statuses.items()))}; no negative cases possible for "
          f"{stats.without_negative}; by mode: {dict(sorted(stats.by_mode.items()))}")
    document = requests.get(f"{api_url}/api/openapi.json", timeout=REQUEST_TIMEOUT).json()
    described = {f"{method.upper()} {path}" for path, methods in document["paths"].items() for method in methods}
    # Schemathesis leaves out the document's own operation (it has just been fetched, above).
    assert set(stats.per_operation) == described - {"GET /api/openapi.json"}, "every operation was fuzzed"
    assert not stats.problems, f"{len(stats.problems)} problem(s):\n" + "\n".join(stats.problems[:40])


# -- hostile inputs, sent to every operation of the document -------------------------------

HEX = "0123456789abcdef" * 2
MALFORMED_IDS = [f"job_{HEX}:submission", f"con_{HEX}:refresh-lock", f"crt_{HEX}:x", f"ses_{HEX}0", f"pmt_{HEX[:31]}",
                 f"whk_{HEX.upper()}", HEX, "1:starts", "01", "-1", "1e3", "²", "*", "..%2F..", "%00", "%0d%0aX-A: b",
                 "a" * 5000, "\u0661", "con_" + "g" * 32, " "]
DEPTHS = [33, 100, 5000, 200_000]


def _nested(depth: int) -> bytes:
    half = depth // 2
    return b'{"a":' * half + b"[" * (depth - half) + b"1" + b"]" * (depth - half) + b"}" * half


def _declared(document: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any] | None:
    responses = document["paths"][path][method.lower()].get("responses", {})
    return responses.get(str(status), responses.get("default"))  # type: ignore[no-any-return]


def _judge(document: dict[str, Any], path: str, method: str, response: requests.Response, sent: str) -> list[str]:
    status = response.status_code
    where = f"{method} {path} ({sent}): {status}"
    declared = _declared(document, path, method, status)
    if status >= 500:
        return [f"{where} server error: {response.text[:200]}"]
    if declared is None:
        return [f"{where} is not a status the document declares"]
    if status >= 400 and "text/html" not in declared.get("content", {}):
        try:
            body = response.json()
        except ValueError:
            body = None
        if not (isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]):
            return [f"{where} without a JSON message: {response.text[:200]!r}"]
    return []


def _raw_request(base_url: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> int:
    """A request with repeated header lines (requests and aiohttp's client join or refuse them)."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=REQUEST_TIMEOUT)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in [*headers, ("Content-Length", str(len(body)))]:
            connection.putheader(name, value)
        connection.endheaders(body)
        return connection.getresponse().status
    finally:
        connection.close()


def _concrete(path: str, value: str = "1") -> str:
    """``path`` with ``value`` in each id parameter; the proxy's ``{path}`` (not an id) is ``x``."""
    return re.sub(r"\{([^}:]+)[^}]*\}", lambda m: "x" if m.group(1) == "path" else value, path)


def test_fuzz_hostile_inputs(api_url: str, tenant: Tenant, worker_heartbeat: None, caplog) -> None:
    document = requests.get(f"{api_url}/api/openapi.json", timeout=REQUEST_TIMEOUT).json()
    operations = [(path, method.upper()) for path, methods in document["paths"].items() for method in methods]
    problems: list[str] = []
    sent = 0
    with requests.Session() as session, caplog.at_level(logging.INFO):
        for path, method in operations:
            has_body = "requestBody" in document["paths"][path][method.lower()]
            body = b"{}" if has_body else None
            json_headers = {**tenant.headers, "Content-Type": "application/json"}
            for raw_id in MALFORMED_IDS if "{" in path else []:
                url = api_url + _concrete(path, quote(raw_id, safe="%:*"))
                answer = session.request(method, url, data=body, headers=json_headers, timeout=REQUEST_TIMEOUT)
                sent += 1
                if answer.status_code not in (404, 401, 405) or answer.status_code >= 500:
                    problems.append(f"{method} {path} with id {raw_id!r}: {answer.status_code}, not 404")
                problems += _judge(document, path, method, answer, f"id {raw_id[:30]!r}")
            if not has_body:
                continue
            url = api_url + _concrete(path, f"con_{HEX}")
            for depth in DEPTHS:
                answer = session.request(method, url, data=_nested(depth), headers=json_headers,
                                         timeout=REQUEST_TIMEOUT)
                sent += 1
                if answer.status_code not in (400, 404):  # 404: the connector of the path does not exist
                    problems.append(f"{method} {path} nested {depth} deep: {answer.status_code}")
                problems += _judge(document, path, method, answer, f"nested {depth}")
            joined = {**tenant.headers, "Content-Type": "application/json, text/plain"}
            answer = session.request(method, url, data=b"{}", headers=joined, timeout=REQUEST_TIMEOUT)
            sent += 1
            if answer.status_code not in (400, 404):
                problems.append(f"{method} {path} with two media types: {answer.status_code}")
            problems += _judge(document, path, method, answer, "two media types")
        for path, method in operations:  # repeated header lines: refused by aiohttp's parser, before any route
            lines = [*tenant.headers.items(), ("Content-Type", "application/json"), ("Content-Type", "text/plain")]
            status = _raw_request(api_url, method, _concrete(path), lines, b"{}")
            sent += 1
            if status != 400:
                problems.append(f"{method} {path} with two Content-Type lines: {status}, not 400")
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    print(f"\nsent {sent} hostile requests to {len(operations)} operations")
    assert not tracebacks, tracebacks[:5]
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:40])
