"""The proxy-latency benchmark's code, exercised: the open-loop generator (``bench/fixed_rate.py``)
against real loopback servers, and a tiny whole run of ``bench/use_latency.py``.

The generator is held to what makes its figures honest: a server slower than the rate builds a
backlog, and every request's latency counts from when it was due (a closed-loop tool would
report the server's own 50 ms); answers framed either way (``Content-Length``, chunked) are read
to their end on keep-alive connections."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from bench.fixed_rate import build_c, command
from tests.support.helpers import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(params=["python", "c"])
def binary(request, tmp_path_factory) -> Path | None:  # type: ignore[no-untyped-def]
    """Each generator: bench/fixed_rate.py (None) and bench/fixed_rate.c, built as the bench builds it."""
    if request.param == "python":
        return None
    built = build_c(tmp_path_factory.mktemp("fixed-rate"))
    assert built is not None, "the C generator did not build (cc is installed on this machine)"
    return built


async def generate(binary: Path | None, url: str, rate: float, seconds: float, connections: int,
                   method: str = "GET") -> dict:  # type: ignore[type-arg]
    argv = command(url, rate, seconds, connections, {}, binary, method=method, warmup=0)
    process = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    [line] = [x for x in out.decode().splitlines() if x.startswith("FIXEDRATE ")]
    result = json.loads(line[len("FIXEDRATE "):])
    assert result["generator"] == ("python" if binary is None else "c")
    return result  # type: ignore[no-any-return]


@pytest.fixture
async def server(aiohttp_server):  # type: ignore[no-untyped-def]
    seen: list[str] = []

    async def slow(request: web.Request) -> web.Response:
        seen.append(request.path)
        await asyncio.sleep(0.05)
        return web.json_response({"ok": True})

    async def chunked(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"a" * 10, b"0\r\n\r\n", b"b" * 70_000):  # a chunk that looks like the last one, and a big one
            await response.write(part)
        await response.write_eof()
        return response

    async def plain(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(body=b"x" * 100_000, status=201 if request.method == "POST" else 200)

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/chunked", chunked)
    app.router.add_route("*", "/plain", plain)
    srv = await aiohttp_server(app)
    srv.seen = seen
    return srv


async def test_latency_counts_from_the_due_time_when_the_server_falls_behind(server, binary) -> None:  # type: ignore[no-untyped-def]
    # One connection to a 50 ms server: 20 answers a second, asked for 40. The last requests were due
    # up to a second before they could even be sent.
    result = await generate(binary, str(server.make_url("/slow")), 40, 1, 1)
    assert result["sent"] == 40 and result["answered"] == 40 and result["errors"] == 0
    assert len(server.seen) == 40
    assert result["p50_ms"] > 300 and result["max_ms"] > 800  # a closed-loop count would say about 50
    assert result["late"] > 30  # almost all left after their time: the run says so


async def test_answers_are_read_whole_whatever_their_framing(server, binary) -> None:  # type: ignore[no-untyped-def]
    for path in ("/chunked", "/plain"):
        result = await generate(binary, str(server.make_url(path)), 200, 1, 4)
        assert result["sent"] == 200 and result["answered"] == 200, result
        assert result["non_2xx"] == 0 and result["errors"] == 0
        assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    post = await generate(binary, str(server.make_url("/plain")), 50, 1, 2, method="POST")
    assert post["answered"] == 50 and post["non_2xx"] == 0  # 201 is a 2xx


def test_a_tiny_run_of_the_benchmark_writes_its_figure(tmp_path: Path) -> None:
    out = tmp_path / "use-latency.json"
    done = subprocess.run([sys.executable, "-m", "bench.use_latency", "--rounds", "1", "--seconds", "1",
                           "--throughput-seconds", "1", "--rate-cap", "100", "--connections", "8", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    figure = json.loads(out.read_text())["figure"]
    assert figure["forwarder_max_rate"] > 100 and figure["rate"] == 100
    for side in ("proxy", "forwarder"):
        [round_] = figure["rounds"][side]
        assert round_["sent"] == 100 and round_["answered"] == 100 and round_["non_2xx"] == 0
        assert 0 < figure[side]["p50_ms"] <= figure[side]["p99_ms"]
    assert figure["added_p99_ms"] == figure["proxy"]["p99_ms"] - figure["forwarder"]["p99_ms"]
    assert "added" in done.stdout and ("MET" in done.stdout or "MISSED" in done.stdout)
