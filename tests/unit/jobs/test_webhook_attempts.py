"""What an attempt's answer does to a delivery: the schedule, a longer Retry-After, the last
attempt, 410 (tasks/jobs/webhook_delivery.py); and which events a job's end emits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tasks.errors import ErrorCode, JobFailed
from tasks.flows.outcome import Outcome
from tasks.jobs import webhook_delivery
from tasks.jobs.webhook_delivery import Answer, WebhookSender
from tasks.jobs.webhook_events import connector_event_type
from tasks.model.records import Job, utcnow
from tasks.model.webhooks import Delivery, Event


def sender(schedule: tuple[float, ...]) -> WebhookSender:
    return WebhookSender(store=None, box=None, outbound=None, schedule=schedule, slots=4)  # type: ignore[arg-type]


def delivery(attempts: int = 0) -> Delivery:
    event = Event.ping("whk_" + "0" * 32)
    return Delivery(event_id=event.id, webhook_id="whk_" + "0" * 32, type="ping", body=event.body,
                    created_at=event.at, attempts=attempts)


def wait_of(found: Delivery) -> float:
    assert found.next_attempt_at is not None
    return (found.next_attempt_at - utcnow()).total_seconds()


def test_a_failed_attempt_waits_the_schedules_next_interval_or_a_longer_retry_after() -> None:
    found = delivery()
    assert webhook_delivery._next(sender((5.0, 300.0)), found, Answer(500, "HTTP 500")) == "retried"
    assert found.status == "retrying" and found.attempts == 1 and 4.5 < wait_of(found) <= 5.0
    assert webhook_delivery._next(sender((5.0, 300.0)), found, Answer(429, "HTTP 429", retry_after=3.0)) == "retried"
    assert 299 < wait_of(found) <= 300     # the schedule's 300 s is longer than Retry-After: 3
    found = delivery()
    webhook_delivery._next(sender((5.0,)), found, Answer(429, "HTTP 429", retry_after=60.0))
    assert 59 < wait_of(found) <= 60       # Retry-After: 60 is longer than the schedule's 5 s


def test_after_the_last_interval_the_delivery_is_failed() -> None:
    found = delivery(attempts=2)
    assert webhook_delivery._next(sender((5.0, 300.0)), found, Answer(None, "refused")) == "failed"
    assert found.status == "failed" and found.attempts == 3 and found.next_attempt_at is None


@pytest.mark.parametrize(("status", "outcome", "final"), [(200, "delivered", "delivered"), (204, "delivered",
                                                          "delivered"), (410, "gone", "failed")])
def test_a_2xx_delivers_and_a_410_fails_for_good(status: int, outcome: str, final: str) -> None:
    found = delivery()
    assert webhook_delivery._next(sender((5.0,)), found, Answer(status)) == outcome
    assert found.status == final and found.next_attempt_at is None
    assert (found.delivered_at is not None) == (final == "delivered")


def job(type_: str, result: dict[str, Any] | None = None) -> Job:
    return Job(id="job_1", tenant="t", type=type_, connector_id="con_1", created_at=utcnow() - timedelta(seconds=1),
               result=result)  # type: ignore[arg-type]


def test_which_connector_event_a_jobs_end_emits() -> None:
    authorised = {"connector": {"status": "authorised"}, "next_action": None}
    redirect = {"connector": {"status": "pending"}, "next_action": {"type": "redirect", "url": "https://x"}}
    assert connector_event_type(job("authorise", authorised), Outcome(authorised)) == "connector.authorised"
    assert connector_event_type(job("authenticate", authorised), Outcome(authorised)) == "connector.authorised"
    assert connector_event_type(job("authorise", redirect), Outcome(redirect)) is None
    assert connector_event_type(job("refresh", authorised), Outcome(authorised)) is None   # refreshed: no event
    assert connector_event_type(job("authorise"), JobFailed(ErrorCode.CREDENTIALS_REJECTED, "no")) == \
        "connector.failed"
    assert connector_event_type(job("reauthorise"), JobFailed(ErrorCode.CREDENTIALS_REJECTED, "no")) is None
    expired = JobFailed(ErrorCode.PROVIDER_ERROR, "refused")
    expired.change = "connector.expired"
    assert connector_event_type(job("refresh"), expired) == "connector.expired"
