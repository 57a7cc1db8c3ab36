"""Receiving Stripe webhooks: verify, store, claim once, queue processing; replay.

The endpoint only verifies the signature, stores the delivery and the event, and queues processing — it
answers in milliseconds. Processing (integrations.stripe.processing, run by the task in integrations.stripe.tasks)
locks the event's row, so an event delivered twice at the same moment is applied once; a failure is recorded and
retried with exponential backoff (the task, and a beat sweep for retries that were lost), and any event can be
replayed from the UI.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.json_input import json_value_problem
from integrations.stripe.apply import HANDLED_TYPES, stripe_customer_id_of
from integrations.stripe.event_models import StripeEvent, StripeWebhookDelivery
from integrations.stripe.tasks import queue_processing

logger = logging.getLogger(__name__)

SIGNATURE_TOLERANCE_SECONDS = 300
MAX_EVENT_ID_LENGTH = 255
MAX_EVENT_TYPE_LENGTH = 100
LATEST_CREATED = int(datetime(3000, 1, 1, tzinfo=UTC).timestamp())
KEPT_HEADERS = ("Content-Type", "User-Agent", "Content-Length")
"""The request headers a delivery's log row keeps. Never Stripe-Signature nor Authorization: a signature is a
credential for its body (and the customer export hands these rows out); the row keeps what the log needs
instead — the signature's `t=` (signed_at) and which configured secret verified it (signature_secret)."""


class WebhookRejected(Exception):
    """A delivery that cannot be accepted; `status` and the message go back to Stripe and into the log."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def verify_signature(payload: bytes, header: str | None, secrets: list[str], *, now: float | None = None) -> int:
    """Accept the payload if its Stripe-Signature matches a configured secret and was made within ±300 s → the
    position (1 = first) in `secrets` of the secret that verified it, so the log shows when a rotation's old
    secret stops being used.

    The stripe library checks the HMAC (`v1` = HMAC-SHA256 of `"<t>.<payload>"`) but refuses only timestamps
    that are too old; a timestamp from the future (a replay prepared in advance, or a skewed clock) is refused
    here as well, so the window is symmetric.
    """
    if not secrets:
        raise WebhookRejected("Stripe webhooks are not configured: set STRIPE_WEBHOOK_SECRETS.", status=503)
    if not header:
        raise WebhookRejected("Missing Stripe-Signature header.")
    text = payload.decode("utf-8", errors="replace")
    last_error = "signature does not match"
    verified_by: int | None = None
    for position, secret in enumerate(secrets, start=1):
        try:
            stripe.WebhookSignature.verify_header(text, header, secret, tolerance=None)
        except stripe.SignatureVerificationError as error:
            last_error = str(error.user_message or error)
        else:
            verified_by = position
            break
    if verified_by is None:
        raise WebhookRejected(f"Invalid Stripe-Signature: {last_error}.")
    skew = int((timezone.now().timestamp() if now is None else now) - _signed_at(header))
    if skew > SIGNATURE_TOLERANCE_SECONDS:
        raise WebhookRejected(
            f"Invalid Stripe-Signature: its timestamp is {skew} s old, outside the tolerance of "
            f"±{SIGNATURE_TOLERANCE_SECONDS} s."
        )
    if -skew > SIGNATURE_TOLERANCE_SECONDS:
        raise WebhookRejected(
            f"Invalid Stripe-Signature: its timestamp is {-skew} s in the future, outside the tolerance of "
            f"±{SIGNATURE_TOLERANCE_SECONDS} s (check this server's clock)."
        )
    return verified_by


def _signed_at(header: str) -> int:
    """The `t=` of a Stripe-Signature header the library has just verified, read as the library reads it (the
    first `t`, up to a second `=`)."""
    return int(next(parts[1] for parts in (item.split("=", 2) for item in header.split(",")) if parts[0] == "t"))


def signature_time(header: str | None) -> datetime | None:
    """When a Stripe-Signature header, verified or not, says it was signed (its first `t=`), for the delivery
    log; None when there is no readable Unix time in it."""
    for item in (header or "").split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            stamp = value.strip()
            if stamp.isascii() and stamp.isdigit() and int(stamp) < LATEST_CREATED:
                return datetime.fromtimestamp(int(stamp), tz=UTC)
            return None
    return None


@dataclass
class Receipt:
    """What the endpoint answers: the event's id, the stored row (None when ignored), whether it was new, and
    why it was ignored (empty when it was not)."""

    event_id: str
    event: StripeEvent | None
    duplicate: bool = False
    ignored_reason: str = ""


def _parse(payload: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise WebhookRejected(f"The body is not valid JSON: {error}.") from error
    # Too deep to store (a JSONField encodes with Python's recursive json), or a NUL PostgreSQL cannot store.
    problem = json_value_problem(event)
    if problem is not None:
        raise WebhookRejected(problem)
    if not isinstance(event, dict) or event.get("object") != "event":
        raise WebhookRejected("The body is not a Stripe event object.")
    missing = [key for key in ("id", "type", "created", "data") if key not in event]
    if missing or not isinstance(event.get("data"), dict) or not isinstance(event["data"].get("object"), dict):
        raise WebhookRejected(f"The event lacks {', '.join(missing) or 'data.object'}.")
    if not isinstance(event["type"], str) or not 0 < len(event["type"]) <= MAX_EVENT_TYPE_LENGTH:
        raise WebhookRejected(f"The event type must be a string of 1 to {MAX_EVENT_TYPE_LENGTH} characters.")
    if not isinstance(event["id"], str) or not 0 < len(event["id"]) <= MAX_EVENT_ID_LENGTH:
        raise WebhookRejected(f"The event id must be a string of 1 to {MAX_EVENT_ID_LENGTH} characters.")
    created = event["created"]
    if isinstance(created, bool) or not isinstance(created, int) or not 0 <= created < LATEST_CREATED:
        raise WebhookRejected("The event's created must be a Unix time in seconds.")
    return event


def webhook_receive(*, payload: bytes, headers: dict[str, str]) -> Receipt:
    """Verify, store and claim a delivery; queue its processing when the event is new (or not done yet).

    Every delivery is logged, including rejected ones, before the rejection is raised. A well-formed, signed
    event of a type Trialloop does not handle is accepted and logged as ignored, nothing stored or processed:
    Stripe retries any answer other than 2xx for three days and then disables the endpoint, so refusing a type
    would cost every other event.
    """
    # PostgreSQL text and jsonb cannot hold NUL: a raw NUL byte (never valid JSON) is logged as U+FFFD.
    kept_headers = {name: headers[name].replace("\x00", "\ufffd") for name in KEPT_HEADERS if name in headers}
    signature = headers.get("Stripe-Signature")
    delivery = StripeWebhookDelivery(
        received_at=timezone.now(),
        headers=kept_headers,
        signed_at=signature_time(signature),
        body=payload.decode("utf-8", errors="replace").replace("\x00", "\ufffd")[
            : StripeWebhookDelivery.MAX_BODY_CHARS
        ],
        status_code=200,
    )
    try:
        delivery.signature_secret = verify_signature(payload, signature, list(settings.STRIPE_WEBHOOK_SECRETS))
        delivery.signature_valid = True
        event = _parse(payload)
    except WebhookRejected as rejection:
        delivery.status_code, delivery.error = rejection.status, rejection.message
        delivery.outcome = StripeWebhookDelivery.Outcome.REJECTED
        delivery.save()
        raise
    event_id, event_type = str(event["id"]), str(event["type"])
    delivery.event_type = event_type
    delivery.stripe_customer_id = stripe_customer_id_of(event)[:255]
    if event_type not in HANDLED_TYPES:
        delivery.outcome = StripeWebhookDelivery.Outcome.IGNORED
        delivery.save()
        return Receipt(
            event_id=event_id,
            event=None,
            ignored_reason=f"Trialloop does not use {event_type!r} events: accepted and ignored. Remove the type "
            "from the endpoint's events to save the traffic.",
        )
    with transaction.atomic():
        try:
            with transaction.atomic():
                stored = StripeEvent.objects.create(
                    event_id=event_id,
                    type=event_type,
                    created=datetime.fromtimestamp(int(event["created"]), tz=UTC),
                    livemode=bool(event.get("livemode")),
                    payload=event,
                    object_id=str(event["data"]["object"].get("id", ""))[:255],
                    stripe_customer_id=delivery.stripe_customer_id,
                )
            duplicate = False
        except IntegrityError:
            stored = StripeEvent.objects.get(event_id=event_id)
            duplicate = True
        delivery.event = stored
        if duplicate:
            delivery.outcome = StripeWebhookDelivery.Outcome.DUPLICATE
        delivery.save()
        if stored.status in (StripeEvent.Status.PENDING, StripeEvent.Status.FAILED):
            queue_processing(stored.pk)
    return Receipt(event_id=event_id, event=stored, duplicate=duplicate)


def stripe_event_replay(*, event: StripeEvent) -> None:
    """Process an event again from its stored payload (after a fix, or to re-check a failure)."""
    StripeEvent.objects.filter(pk=event.pk).update(status=StripeEvent.Status.PENDING, next_attempt_at=None)
    queue_processing(event.pk)
