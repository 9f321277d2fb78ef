"""The benchmark suite's pure parts, on made-up numbers: no processes, nothing timed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import cast

from bench import profile, roundtrip
from bench.report import Figure, Target, percentile, summary, table


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 50) is None


def test_table_quotes_medians_ratios_and_targets() -> None:
    accept = Figure("accept_rate", "accept rate", "req/s", ours=[700.0, 900.0, 800.0],
                    reference=[1000.0, 1200.0, 1000.0], target=Target("ratio_min", 0.70))
    latency = Figure("latency_p99", "latency p99", "ms", ours=[120.0, 80.0, 90.0], reference=[5.0, 6.0, 7.0],
                     target=Target("max", 100.0, "ms"))
    rss = Figure("api_rss", "API RSS", "MB", ours=[None], reference=[40.0], target=Target("max", 100.0, "MB"))
    assert accept.ours_median == 800.0 and accept.reference_median == 1000.0
    assert accept.ratio == 0.8 and accept.met is True
    assert latency.met is True  # the median p99, 90 ms, is within 100 ms
    assert rss.met is None
    text = table([accept, latency, rss])
    assert "800 (700-900)" in text and "1,000 (1,000-1,200)" in text and "0.80" in text
    assert ">= 70% of ref" in text and "<= 100 ms" in text and "MET" in text
    assert summary([accept, latency, rss]) == {"met": ["accept_rate", "latency_p99"], "missed": [],
                                               "unknown": ["api_rss"]}
    accept.ours = [100.0]
    assert accept.met is False and summary([accept])["missed"] == ["accept_rate"]


def test_collapsed_stacks_are_summarised_for_the_main_thread() -> None:
    text = "\n".join([
        "thread (10): MainThread;run_forever (asyncio/base_events.py:1);EpollSelector.select (selectors.py:2) 50",
        "thread (10): MainThread;run_forever (asyncio/base_events.py:1);handler (api/views/jobs.py:3);"
        "Redis.get (redis/asyncio/client.py:4) 30",
        "thread (10): MainThread;run_forever (asyncio/base_events.py:1);handler (api/views/jobs.py:3) 20",
        "thread (11): other;Thread.wait (threading.py:5) 99",
    ])
    summary_ = profile.parse_collapsed(text, pid=10).summary()
    assert summary_["samples"] == 100 and summary_["idle_pct_of_all"] == 50.0
    assert summary_["self"][0] == {"frame": "Redis.get (redis/asyncio/client.py:4)", "pct": 60.0}
    assert {"component": "authq api/", "pct": 40.0} in summary_["components_self"]
    assert summary_["authq_tree"][0] == {"depth": 0, "frame": "handler (api/views/jobs.py:3)", "pct": 100.0}
    assert summary_["authq_tree"][1]["frame"].startswith("Redis.get")
    assert "handler (api/views/jobs.py:3)" in profile.render("poll", summary_)


def test_a_workers_profile_counts_every_thread() -> None:
    """A worker's jobs run in its pool's threads, sampled with ``--gil``: all threads count."""
    text = "\n".join([
        "thread (10): MainThread;asynloop (celery/worker/loops.py:1);Transport.on_readable (kombu/redis.py:2) 25",
        "thread (11): ThreadPoolExecutor-0_0;_worker (concurrent/futures/thread.py:3);"
        "run_job (tasks/jobs/runner.py:4) 75",
    ])
    summary_ = profile.parse_collapsed(text, pid=None).summary("of the samples holding the GIL")
    assert summary_["samples"] == 100 and summary_["note"] == "of the samples holding the GIL"
    assert {"component": "authq tasks/", "pct": 75.0} in summary_["components_self"]
    assert profile.parse_collapsed(text, pid=10).samples == 25  # the main thread alone
    assert profile.render("worker", summary_).startswith("worker: 100 samples, 0.0% idle (waiting for work); of the")


def test_a_round_trip_is_split_by_the_finished_records_stamps() -> None:
    phases = roundtrip.Phases()
    sent = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    job = {"created_at": "2026-01-01T12:00:00.002Z", "started_at": "2026-01-01T12:00:00.010Z",
           "finished_at": "2026-01-01T12:00:00.011Z"}
    phases.add(sent, sent + 0.020, job)
    phases.add(sent, sent + 0.020, {**job, "finished_at": None})  # unfinished: not counted
    parts = phases.result()
    p50s = [round(parts[name]["p50"] or 0, 3) for name in ("accept", "queue", "run", "answer")]
    assert p50s == [2.0, 8.0, 1.0, 9.0]
    assert all(part["n"] == 1 for part in parts.values())


def test_the_bench_catalog_seals_a_password_and_calls_nobody() -> None:
    from bench.run import AUTHORISE_BODY, CATALOG, IMPLEMENTATION
    from tasks.flows.authorise import authorise_needs_provider
    from tasks.jobs.context import JobContext
    from tasks.model.catalog import load_catalog
    from tasks.security.sealing import SecretBox, generate_key
    from tasks.validation.submission import validate_authorise

    catalog = load_catalog(CATALOG)
    impl = catalog.implementation(IMPLEMENTATION)
    assert impl is not None and impl.type == "basic" and impl.check is None
    password = impl.variable(impl.password_variable)
    assert password is not None and password.is_secret
    body = validate_authorise(json.loads(AUTHORISE_BODY), catalog, SecretBox(generate_key()))
    assert {v.key for v in body.variables} == {impl.username_variable, impl.password_variable}
    # Run from its message's copy, as a job that needs no provider is: nothing leaves the machine.
    ctx = cast(JobContext, SimpleNamespace(catalog=catalog))
    assert authorise_needs_provider(ctx, body.model_dump(exclude_unset=True)) is False


def test_slow_provider_figure_is_measured_against_its_slots_over_the_provider_delay() -> None:
    from bench import slow_provider

    figures = slow_provider.figures(8)
    threads = figures["slow_provider"]
    assert slow_provider.DELAY == 0.2 and slow_provider.PROCESSES == 2
    assert threads.target == Target("ratio_min", 0.8)
    assert "16 / 0.2 = 80 jobs/s" in threads.note   # slots = 2 processes x 8 threads
    threads.ours, threads.reference = [66.0, 62.0, 64.0], [80.0, 80.0, 80.0]
    assert threads.ratio == 0.8 and threads.met is True
    threads.ours = [9.5]  # what two one-job-at-a-time workers do
    assert threads.met is False
    assert figures["slow_provider_solo"].target is None  # information only
