"""Sending deliveries: a flush sends one destination's due deliveries in order (one signed POST per webhook
message, or `/v1/batch` posts for a Segment destination), records every outcome, and backs off on failure; the
beat sweep starts flushes for every destination with something due."""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from django.db.models import F
from django.utils import timezone

from config.locks import task_lock
from config.retry import RetryPolicy
from integrations.destinations.models import Destination, DestinationDelivery
from integrations.destinations.outbound_http import HttpResult, http_post
from integrations.destinations.payloads import (
    ID_HEADER,
    SEGMENT_BATCH_BYTES,
    SEGMENT_BATCH_CALLS,
    SEGMENT_CALL_BYTES,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    USER_AGENT,
    segment_batch_url,
    signing_secrets,
    webhook_signature,
)

# Backoff before try n + 1: 30 s × 4^(n − 1), at most 12 h, ± 20 %: 30 s, 2 min, 8 min, 32 min, 2 h, 8.5 h,
# 12 h — eight tries spread over about a day.
DELIVERY_RETRY = RetryPolicy(first=30, growth=4, cap=12 * 3600, jitter=0.2)

FLUSH_CHUNK = 200
FLUSH_BUDGET_SECONDS = 50.0
FLUSH_LOCK_TTL = timedelta(minutes=5)
MAX_ERROR_CHARS = 2000


def delivery_backoff(attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """How long to wait after `attempts` failed tries (DELIVERY_RETRY, the project's retry policy): ± 20 %
    jitter so deliveries that failed together do not all come back at the same moment."""
    return DELIVERY_RETRY.wait(attempts, rng=rng)


_RECORDED_FIELDS = [
    "status", "attempts", "next_attempt_at", "last_attempt_at", "last_failed_at", "last_status_code", "last_error",
    "delivered_at",
]  # fmt: skip


def _record(deliveries: Sequence[DestinationDelivery], result: HttpResult, now: datetime) -> None:
    """Write one attempt's outcome on each delivery it carried, in one UPDATE: a success is the same for every
    delivery (one plain UPDATE by id, the common case, paid after every webhook sent); failures differ per
    delivery (attempts, backoff with jitter) and are written by bulk_update."""
    for delivery in deliveries:
        delivery.attempts += 1
        delivery.last_attempt_at, delivery.last_status_code = now, result.status
        if result.ok:
            delivery.status, delivery.delivered_at = DestinationDelivery.Status.DELIVERED, now
            delivery.next_attempt_at, delivery.last_error = None, ""
            continue
        delivery.last_failed_at, delivery.last_error = now, result.error[:MAX_ERROR_CHARS]
        if result.permanent or delivery.attempts >= DestinationDelivery.MAX_ATTEMPTS:
            delivery.status, delivery.next_attempt_at = DestinationDelivery.Status.FAILED, None
        else:
            delivery.next_attempt_at = now + delivery_backoff(delivery.attempts)
    if result.ok:
        DestinationDelivery.objects.filter(pk__in=[delivery.pk for delivery in deliveries]).update(
            status=DestinationDelivery.Status.DELIVERED,
            attempts=F("attempts") + 1,
            next_attempt_at=None,
            last_attempt_at=now,
            last_status_code=result.status,
            last_error="",
            delivered_at=now,
        )
        return
    DestinationDelivery.objects.bulk_update(deliveries, _RECORDED_FIELDS)


def _skip(deliveries: Sequence[DestinationDelivery], reason: str) -> None:
    for delivery in deliveries:
        delivery.status, delivery.last_error, delivery.next_attempt_at = (
            DestinationDelivery.Status.SKIPPED,
            reason,
            None,
        )
    DestinationDelivery.objects.bulk_update(deliveries, ["status", "last_error", "next_attempt_at"])


def _webhook_send(destination: Destination, delivery: DestinationDelivery) -> HttpResult:
    now = timezone.now()
    body = orjson.dumps(delivery.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        ID_HEADER: delivery.idempotency_key,
        TIMESTAMP_HEADER: str(int(now.timestamp())),
        SIGNATURE_HEADER: webhook_signature(signing_secrets(destination, now), delivery.idempotency_key, body, now),
        "Trialloop-Kind": delivery.kind,
        "Trialloop-Attempt": str(delivery.attempts + 1),
    }
    return http_post(destination.url, body, headers)


def _segment_send(destination: Destination, deliveries: Sequence[DestinationDelivery]) -> HttpResult:
    # No sentAt: our clock is the server's own, so `timestamp` stands as given and receivers apply no skew
    # correction (which would shift every event by the time the request took).
    calls = [call for delivery in deliveries for call in delivery.payload["messages"]]
    body = orjson.dumps({"batch": calls})
    credentials = base64.b64encode(f"{destination.write_key}:".encode()).decode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "Authorization": f"Basic {credentials}"}
    return http_post(segment_batch_url(destination.url), body, headers)


def _segment_batches(
    deliveries: Sequence[DestinationDelivery],
) -> tuple[list[list[DestinationDelivery]], list[DestinationDelivery]]:
    """Pack deliveries, in order, into batches of at most SEGMENT_BATCH_CALLS calls and SEGMENT_BATCH_BYTES;
    also returns the deliveries with a call over Segment's 32 KB limit, which no batch can carry."""
    batches: list[list[DestinationDelivery]] = []
    too_large: list[DestinationDelivery] = []
    current: list[DestinationDelivery] = []
    calls = size = 0
    for delivery in deliveries:
        sizes = [len(orjson.dumps(call)) + 1 for call in delivery.payload["messages"]]  # 1: the comma
        if any(one > SEGMENT_CALL_BYTES for one in sizes):
            too_large.append(delivery)
            continue
        if current and (calls + len(sizes) > SEGMENT_BATCH_CALLS or size + sum(sizes) > SEGMENT_BATCH_BYTES):
            batches.append(current)
            current, calls, size = [], 0, 0
        current.append(delivery)
        calls, size = calls + len(sizes), size + sum(sizes)
    if current:
        batches.append(current)
    return batches, too_large


@dataclass
class FlushResult:
    """What one flush of a destination did; `more` means it stopped for time with deliveries still due."""

    delivered: int = 0
    failed: int = 0
    retrying: int = 0
    skipped: int = 0
    more: bool = False


def _tally(result: FlushResult, deliveries: Sequence[DestinationDelivery]) -> None:
    for delivery in deliveries:
        if delivery.status == DestinationDelivery.Status.DELIVERED:
            result.delivered += 1
        elif delivery.status == DestinationDelivery.Status.FAILED:
            result.failed += 1
        else:
            result.retrying += 1


def _due(destination_id: int) -> list[DestinationDelivery]:
    return list(
        DestinationDelivery.objects.filter(
            destination_id=destination_id,
            status=DestinationDelivery.Status.PENDING,
            next_attempt_at__lte=timezone.now(),
            destination__is_paused=False,
        )
        .select_related("customer")
        .order_by("next_attempt_at", "id")[:FLUSH_CHUNK]
    )


def _send_chunk(destination: Destination, due: list[DestinationDelivery], result: FlushResult, deadline: float) -> bool:
    """Send one chunk of due deliveries; False when a transient failure says to stop for now, or the run's
    time is up (then `result.more` is set)."""
    withheld = [d for d in due if d.customer is not None and not d.customer.has_consent(destination.consent_category)]
    if withheld:
        _skip(withheld, f"The customer withdrew consent for “{destination.consent_category}” before it was sent.")
        result.skipped += len(withheld)
    withheld_ids = {delivery.pk for delivery in withheld}
    sendable = [delivery for delivery in due if delivery.pk not in withheld_ids]
    if destination.kind == Destination.Kind.SEGMENT:
        groups, too_large = _segment_batches(sendable)
        if too_large:
            _record(
                too_large, HttpResult(status=None, error="A call is larger than 32 KB.", refused=True), timezone.now()
            )
            _tally(result, too_large)
    else:
        groups = [[delivery] for delivery in sendable]
    for group in groups:
        if destination.kind == Destination.Kind.SEGMENT:
            outcome = _segment_send(destination, group)
        else:
            outcome = _webhook_send(destination, group[0])
        _record(group, outcome, timezone.now())
        _tally(result, group)
        if not outcome.ok and not outcome.permanent:
            return False
        if time.monotonic() >= deadline:
            result.more = True
            return False
    return True


def destination_flush(*, destination_id: int) -> FlushResult:
    """Send a destination's due deliveries, oldest first, and record each outcome.

    One flush per destination at a time (a database lease), so nothing is sent twice by two workers. A
    transient failure ends the run: the receiver is tried again by the next run rather than once per waiting
    delivery. A run stops after FLUSH_BUDGET_SECONDS (well inside its lease) with `more` set, for the task to
    queue the next one.
    """
    result = FlushResult()
    with task_lock(f"destination flush {destination_id}", ttl=FLUSH_LOCK_TTL) as acquired:
        if not acquired:
            return result
        destination = Destination.objects.filter(pk=destination_id).first()
        if destination is None:
            return result
        deadline = time.monotonic() + FLUSH_BUDGET_SECONDS
        while True:
            due = _due(destination_id)
            if not due or not _send_chunk(destination, due, result, deadline):
                return result
