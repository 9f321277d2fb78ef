"""One attempt of one webhook delivery, as a worker makes it (contract §10).

``deliver`` is everything the ``authq.deliver_webhook`` task does. It begins the attempt
(``webhook_queue.begin``: the delivery's lease and a slot of its endpoint; an endpoint whose
slots are all taken puts the delivery off by a second rather than hold this thread), posts the
message, signed (Standard Webhooks), through the same guarded transport as every provider
request (``Outbound``: the URL's name resolved once, every address checked, the connection
made to exactly that address, one deadline: ``AUTHQ_WEBHOOK_TIMEOUT_SECONDS``), and stores the
end in one batch:

- a ``2xx`` delivers;
- a ``410 Gone`` fails the delivery and disables the endpoint (nothing more is sent to it);
- anything else (another status, ``429``, a timeout, a refused connection, a destination the
  guard refuses) is tried again after the schedule's next interval, or the answer's
  ``Retry-After`` when longer; after the last interval the delivery is ``failed``.

The message is the delivery's stored bytes; ``webhook-id`` is the event's id on every attempt
and ``webhook-timestamp`` the attempt's time, so a receiver can drop repeats and stale replays.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import httpx2

from tasks.errors import AuthqError, JobFailed
from tasks.model.records import utcnow
from tasks.model.webhooks import Delivery, Webhook
from tasks.provider.transport import Outbound, retry_after_seconds
from tasks.security import webhook_signing
from tasks.security.sealing import SecretBox
from tasks.storage import webhook_queue
from tasks.storage.store import Store

log = logging.getLogger("authq.webhooks")

# (tenant, webhook id, message id): hand a delivery to a worker (Celery's producer, in the worker).
PublishDelivery = Callable[[str, str, str], None]
BUSY_WAIT = 0.3        # an endpoint's slots all taken: wait this long for one, then put the delivery off ...
BUSY_PUT_OFF = 1.0     # ... by this much (and up to half as much again, at random)
LAST_ERROR_AT_MOST = 500


@dataclass
class WebhookSender:
    """What an attempt needs: the store, the secret box, the guarded transport, the settings."""

    store: Store
    box: SecretBox
    outbound: Outbound          # with AUTHQ_WEBHOOK_TIMEOUT_SECONDS as its deadline, and no gate
    schedule: tuple[float, ...]
    slots: int                  # AUTHQ_WEBHOOK_ENDPOINT_CONCURRENCY

    @property
    def timeout(self) -> float:
        return self.outbound.timeout

    def claim_until(self) -> float:
        return time.time() + webhook_queue.claim_seconds(self.timeout)


@dataclass
class Answer:
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None


def post(outbound: Outbound, webhook: Webhook, delivery: Delivery, secret: str) -> Answer:
    """One POST of the message; the endpoint's status (or why there is none)."""
    headers = webhook_signing.headers(secret, delivery.event_id, int(time.time()), delivery.body)
    headers["Content-Type"] = "application/json"
    try:
        with (httpx2.Client(**outbound.client_options()) as client,
              client.stream("POST", webhook.url, content=delivery.body.encode(), headers=headers) as response):
            answer = Answer(response.status_code, retry_after=retry_after_seconds(response))
            try:
                for _ in response.iter_raw():  # read (at most 1 MiB) and dropped: only the status counts
                    pass
            except (AuthqError, httpx2.HTTPError):
                pass
    except JobFailed as exc:  # refused by the guard, not sent, or no answer in time
        return Answer(error=f"{exc.code}: {exc.message}".replace("the provider", "the endpoint")
                      .replace("The provider", "The endpoint"))
    except httpx2.HTTPError as exc:
        return Answer(error=f"The endpoint could not be reached ({type(exc).__name__}).")
    if not 200 <= (answer.status or 0) < 300:
        answer.error = f"The endpoint answered HTTP {answer.status}."
    return answer


def _next(sender: WebhookSender, delivery: Delivery, answer: Answer) -> str:
    """Set the delivery's state after this attempt; the outcome counted."""
    now = utcnow()
    delivery.attempts += 1
    delivery.last_status_code = answer.status
    delivery.last_error = answer.error[:LAST_ERROR_AT_MOST] if answer.error else None
    if answer.status is not None and 200 <= answer.status < 300:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = "delivered", now, None
        return "delivered"
    if answer.status == 410:
        delivery.status, delivery.next_attempt_at = "failed", None
        delivery.last_error = "The endpoint answered 410 Gone: it is disabled, and nothing more is sent to it."
        return "gone"
    if delivery.attempts > len(sender.schedule):
        delivery.status, delivery.next_attempt_at = "failed", None
        return "failed"
    wait = max(sender.schedule[delivery.attempts - 1], answer.retry_after or 0.0)
    delivery.status, delivery.next_attempt_at = "retrying", now + timedelta(seconds=wait)
    return "retried"


def deliver(sender: WebhookSender, tenant: str, webhook_id: str, message_id: str) -> str:
    """Make one attempt of the delivery if it is still due; what happened (for the log)."""
    store = sender.store
    token = secrets.token_hex(16)
    lease = sender.timeout + 10.0
    waited_until = time.monotonic() + BUSY_WAIT
    while True:
        state = store.run(webhook_queue.begin(tenant, webhook_id, message_id, token, lease, sender.slots,
                                              sender.claim_until()))
        if state == webhook_queue.RUNNING:
            return "running elsewhere"
        if state == webhook_queue.BEGUN:
            break
        if time.monotonic() > waited_until:
            later = time.time() + BUSY_PUT_OFF * (1 + random.random() / 2)  # noqa: S311 - spreading, not a secret
            store.run(webhook_queue.put_off(tenant, webhook_id, message_id, later))
            return "endpoint busy"
        time.sleep(0.02)
    delivery, webhook = store.run(webhook_queue.attempt_records(tenant, webhook_id, message_id))
    if delivery is None or delivery.final:
        store.run(webhook_queue.drop(tenant, webhook_id, message_id, token))
        return "nothing to send"
    if webhook is None or webhook.disabled:
        delivery.status, delivery.next_attempt_at = "failed", None
        delivery.last_error = ("The endpoint was deleted." if webhook is None
                               else "The endpoint is disabled (it answered 410 Gone).")
        store.run(webhook_queue.finish(tenant, delivery, token, "failed", None))
        return "endpoint gone"
    started = time.monotonic()
    answer = post(sender.outbound, webhook, delivery, sender.box.open(webhook.secret_sealed))
    seconds = time.monotonic() - started
    outcome = _next(sender, delivery, answer)
    disable = webhook.model_copy(update={"disabled": True}) if outcome == "gone" else None
    store.run(webhook_queue.finish(tenant, delivery, token, outcome, seconds, disable))
    log.info("webhook attempt", extra={"tenant": tenant, "webhook_id": webhook_id, "event_id": message_id,
                                       "outcome": outcome, "status_code": answer.status,
                                       "attempts": delivery.attempts, "seconds": round(seconds, 4)})
    return outcome


def hand_over(sender: WebhookSender, members: list[str], publish: PublishDelivery | None) -> None:
    """Deliveries just written (a job's end): claimed and handed to workers now, not at the next
    scan. A failure here only leaves them to the scan."""
    if publish is None or not members:
        return
    try:
        for tenant, webhook_id, message_id in sender.store.run(webhook_queue.claim(members, sender.claim_until())):
            publish(tenant, webhook_id, message_id)
    except Exception:  # noqa: BLE001 - the scan hands them over once their claim runs out
        log.warning("webhook deliveries not handed over at once; the scan will", exc_info=True)
